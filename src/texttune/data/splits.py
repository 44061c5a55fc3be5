"""Sub-sampling and held-out validation splits, seeded so reruns see the same rows."""

from __future__ import annotations

from texttune.data.sources import Table
from texttune.errors import DataError


def take(table: Table, limit: int | None, *, shuffle_seed: int | None = None) -> Table:
    """At most ``limit`` rows: the first ones, or a seeded random subset when ``shuffle_seed`` is set."""
    if limit is None or limit >= len(table):
        return table
    rows = table.rows.shuffle(seed=shuffle_seed) if shuffle_seed is not None else table.rows
    # Row locations no longer match after a shuffle; report rows by their new index.
    locate = table.locate if shuffle_seed is None else (lambda i: f"{table.name} (sampled row {i + 1})")
    return Table(rows.select(range(limit)), table.name, locate)


def holdout(table: Table, fraction: float, *, seed: int) -> tuple[Table, Table]:
    """Split off a seeded ``fraction`` of the rows as validation data: (train, validation)."""
    n_val = max(1, round(len(table) * fraction))
    if len(table) - n_val < 1:
        raise DataError(
            f"{table.name}: {len(table)} rows are too few to hold out {fraction:.0%} for validation; "
            "pass a validation file"
        )
    parts = table.rows.train_test_split(test_size=n_val, seed=seed, shuffle=True)
    train = Table(parts["train"], f"{table.name} (train part)", lambda i: f"{table.name} (train part, row {i + 1})")
    val = Table(parts["test"], f"{table.name} (held-out part)", lambda i: f"{table.name} (held-out row {i + 1})")
    return train, val


def drop_rows(table: Table, rows: set[int]) -> Table:
    """``table`` without the rows at these indices; the rest keep pointing at their own file lines."""
    if not rows:
        return table
    kept = [i for i in range(len(table)) if i not in rows]
    return Table(table.rows.select(kept), table.name, lambda i: table.locate(kept[i]))
