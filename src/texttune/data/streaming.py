"""``--streaming``: training rows read from JSONL or Parquet files as they are needed.

The files (one path or glob patterns, e.g. ``shards/*.jsonl``, comma-separated)
are opened with ``datasets.load_dataset(..., streaming=True)``: an
``IterableDataset`` that reads a block at a time, so a corpus of any size trains
in the memory of a few blocks plus the shuffle buffer. Nothing is converted or
cached; the number of rows is never known, which is why streaming runs are
counted in optimizer steps (``--max-steps``).

The first :data:`SAMPLE_ROWS` rows are also read into a small table: the task
learns from it what it needs before training (target lengths, labels), and
``data_stats.json`` describes it.
"""

from __future__ import annotations

import functools
import glob
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from texttune.data.columns import ColumnRole, resolve_columns, select_columns
from texttune.data.sources import Table
from texttune.errors import DataError, choices

#: Rows read up front for the task's learn() step and the data statistics.
SAMPLE_ROWS = 1000
STREAM_FORMATS = {".jsonl": "json", ".ndjson": "json", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}


@dataclass
class Stream:
    """Training rows as a stream, with column roles already mapped, and a sample of its first rows."""

    rows: Any  # datasets.IterableDataset, columns named by the task's column keys
    sample: Table
    name: str
    files: list[str]


def stream_files(patterns: str) -> tuple[list[str], str]:
    """The files matched by comma-separated paths or glob patterns, and their ``datasets`` builder."""
    files: list[str] = []
    for pattern in (p.strip() for p in str(patterns).split(",") if p.strip()):
        matched = sorted(glob.glob(pattern, recursive=True))
        if not matched:
            raise DataError(f"--streaming: no file matches {pattern!r}")
        files += matched
    kinds = {STREAM_FORMATS.get(Path(f).suffix.lower()) for f in files}
    if None in kinds or len(kinds) != 1:
        odd = next(f for f in files if STREAM_FORMATS.get(Path(f).suffix.lower()) is None) if None in kinds else files[0]
        raise DataError(f"--streaming reads JSONL or Parquet files, all of one kind ({choices(STREAM_FORMATS)}); "
                        f"got {odd!r} among {len(files)} file(s)")
    return files, kinds.pop()  # type: ignore[return-value]


def open_stream(patterns: str, *, roles: Sequence[ColumnRole], overrides: dict[str, str]) -> Stream:
    """Open the training files as a stream whose columns are named like a loaded table's."""
    from datasets import Dataset, load_dataset

    files, builder = stream_files(patterns)
    name = files[0] if len(files) == 1 else f"{len(files)} files ({patterns})"
    try:
        stream = load_dataset(builder, data_files=files, split="train", streaming=True)
        first = list(itertools.islice(iter(stream), SAMPLE_ROWS))
    except Exception as exc:  # pyarrow / json errors of many kinds
        raise DataError(f"{name}: cannot read as a {builder.upper()} stream ({type(exc).__name__}: {str(exc)[:300]})") from None
    if not first:
        raise DataError(f"{name}: no data rows")
    sample_name = f"{name} (first {len(first)} rows)"
    raw = Table(Dataset.from_list(first), sample_name, lambda i: f"{sample_name} row {i + 1}")
    keys = {r.role: r.column_key for r in roles}
    chosen = resolve_columns(raw, roles, overrides)  # role -> file column (nested columns are not flattened here)
    # A stream cannot be checked up front like a table: rows whose text cells are empty are skipped.
    text_columns = [chosen[r.role] for r in roles if r.kind == "text" and r.role in chosen]
    kept = [row for row in first if _has_text(row, keys=text_columns)]
    if not kept:
        raise DataError(f"{sample_name}: no row has text in every column {text_columns}")
    sample = select_columns(Table(Dataset.from_list(kept), sample_name, raw.locate), roles, overrides)
    rows = stream.select_columns(list(dict.fromkeys(chosen.values())))
    rows = rows.rename_columns({column: keys[role] for role, column in chosen.items() if column != keys[role]})
    rows = rows.filter(functools.partial(_has_text, keys=[keys[r.role] for r in roles if r.kind == "text" and r.role in chosen]))
    return Stream(rows=rows, sample=sample, name=name, files=files)


def _has_text(row: dict[str, Any], *, keys: list[str]) -> bool:
    return all(isinstance(row[k], str) and bool(row[k].strip()) for k in keys)
