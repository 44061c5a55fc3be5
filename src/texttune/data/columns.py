"""Map a table's columns onto a task's column roles and check every cell.

A task declares roles (summarization: ``text`` and ``summary``) with default
column names; users override them with ``--<role>-column``. The result is a
dataset whose columns are exactly the role names, so tasks never see the user's
naming. Cells are checked here, once, so a NaN in row 9,812 is reported before
a model is loaded rather than as a tokenizer crash an hour in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from texttune.data.sources import Table
from texttune.errors import DataError


@dataclass(frozen=True)
class ColumnRole:
    """One column a task reads: its role name, default column names and kind of value."""

    role: str
    defaults: tuple[str, ...]
    kind: str = "text"  # "text": non-empty string; "any": checked by the task
    required: bool = True
    help: str = ""
    key: str | None = None  # the column's name inside texttune; the role name when None

    @property
    def column_key(self) -> str:
        return self.key or self.role

    @property
    def flag(self) -> str:
        """The option that names this role's column: ``--text-pair-column`` for role ``text_pair``."""
        return f"--{self.role.replace('_', '-')}-column"


def _flatten_structs(table: Table, keep: frozenset[str] = frozenset()) -> Table:
    """Expose ``{"translation": {"en": ..., "fr": ...}}`` style cells as columns ``en``, ``fr``.

    Columns in ``keep`` (those a role names itself, e.g. SQuAD's ``answers``
    ``{"text": [...], "answer_start": [...]}``) are one value, not a group of columns.
    """
    from datasets import concatenate_datasets

    rows = table.rows
    struct_columns = [name for name, feature in rows.features.items() if isinstance(feature, dict) and name not in keep]
    if not struct_columns:
        return table
    kept = [name for name in rows.column_names if name in keep]
    flat = rows.remove_columns(kept).flatten()  # "translation.en"
    if kept:
        flat = concatenate_datasets([flat, rows.select_columns(kept)], axis=1)
    renames = {}
    for column in flat.column_names:
        parent, _, child = column.partition(".")
        if parent in struct_columns and child and child not in flat.column_names and child not in renames.values():
            renames[column] = child
    return Table(flat.rename_columns(renames), table.name, table.locate)


def _separator_hint(available: Sequence[str]) -> str:
    """A hint when a whole header landed in one column: a TSV named .csv, a semicolon CSV..."""
    if len(available) == 1 and any(sep in available[0] for sep in (",", "\t", ";", "|")):
        return (". The header was read as one column: is the separator right? "
                ".csv files are read as comma-separated, .tsv as tab-separated")
    return ""


def resolve_columns(table: Table, roles: Sequence[ColumnRole], overrides: dict[str, str]) -> dict[str, str]:
    """Pick the column name for each role: the user's choice, else the first default present."""
    available = table.rows.column_names
    unknown_roles = set(overrides) - {r.role for r in roles}
    if unknown_roles:
        valid = ", ".join(r.flag for r in roles)
        raise DataError(f"options {sorted(unknown_roles)} are not columns of this task; valid: {valid}")
    chosen: dict[str, str] = {}
    for role in roles:
        if role.role in overrides:
            name = overrides[role.role]
            if name not in available:
                raise DataError(
                    f"{table.name}: no column {name!r} (from {role.flag}); "
                    f"available columns: {', '.join(map(repr, available))}{_separator_hint(available)}"
                )
            chosen[role.role] = name
            continue
        found = next((name for name in role.defaults if name in available), None)
        if found is None:
            if not role.required:
                continue
            raise DataError(
                f"{table.name}: no {role.role} column (looked for {', '.join(map(repr, role.defaults))}); "
                f"available columns: {', '.join(map(repr, available))}. Choose one with {role.flag}"
                f"{_separator_hint(available)}"
            )
        chosen[role.role] = found
    return chosen


def _bad_text(value: Any) -> str | None:
    """Why a cell is not usable text, or None when it is."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "is empty (missing/NaN)"
    if not isinstance(value, str):
        return f"is not text ({type(value).__name__}: {str(value)[:40]!r})"
    if not value.strip():
        return "is an empty string"
    return None


def select_columns(table: Table, roles: Sequence[ColumnRole], overrides: dict[str, str]) -> Table:
    """Return a table whose columns are the roles' names, after checking every text cell.

    Raises :class:`DataError` naming the first bad cell's line/row and column, and
    how many cells in that column are bad.
    """
    named = {*overrides.values(), *(name for role in roles for name in role.defaults)}
    table = _flatten_structs(table, keep=frozenset(named))
    chosen = resolve_columns(table, roles, overrides)
    rows = table.rows.select_columns(list(dict.fromkeys(chosen.values())))
    for role in roles:
        if role.kind != "text" or role.role not in chosen:
            continue
        column = chosen[role.role]
        values = rows[column]
        bad = [(i, why) for i, v in enumerate(values) if (why := _bad_text(v)) is not None]
        if bad:
            i, why = bad[0]
            more = f" ({len(bad)} bad cells in this column)" if len(bad) > 1 else ""
            raise DataError(f"{table.locate(i)}: column {column!r} {why}{more}; fix or remove these rows")
    if len(set(chosen.values())) < len(chosen):
        raise DataError(f"{table.name}: one column is used for two roles: {chosen}")
    keys = {r.role: r.column_key for r in roles}
    # Renaming keeps the Arrow table (memory-mapped for saved datasets) as it is.
    renames = {column: keys[role] for role, column in chosen.items() if column != keys[role]}
    return Table(rows.rename_columns(renames), table.name, table.locate)
