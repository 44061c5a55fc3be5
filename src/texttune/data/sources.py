"""Read user data into a :class:`datasets.Dataset`; the only module that knows file formats.

Supported: CSV, TSV, JSON (a list of objects, or ``{"data": [...]}``, or the
official SQuAD layout, flattened to one row per question), JSONL,
Parquet, plain text (``.txt``: one document per non-empty line, column ``text``), CoNLL-style
column files (``.conll``, ``.iob``, ``.iob2``, ``.bio``; see
:mod:`texttune.data.conll`), a directory written by ``datasets.save_to_disk``,
in-memory lists, and a hub dataset name (through ``datasets``, online only). Every error names the file
and, where it can, the line or row, because "ArrowInvalid: JSON parse error" on
row 40,000 of a file is the kind of message users have learned to dread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from texttune.data.conll import parse_conll
from texttune.data.large import is_large, load_memory_mapped
from texttune.data.squad import flatten_squad, is_squad_layout
from texttune.errors import DataError, choices
from texttune.hub import hub_problem

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".conll": "conll",  # CoNLL-style token-per-line files (texttune.data.conll)
    ".iob": "conll",
    ".iob2": "conll",
    ".bio": "conll",
    ".txt": "text",  # plain text: each non-empty line is one document (column "text")
}


@dataclass
class Table:
    """Rows read from one source, and how to point a user at row ``i``."""

    rows: Any  # datasets.Dataset
    name: str
    locate: Callable[[int], str]

    def __len__(self) -> int:
        return len(self.rows)


def _row_locator(name: str, lines: list[int] | None = None, *, header: bool = False) -> Callable[[int], str]:
    def locate(i: int) -> str:
        if lines is not None:
            return f"{name} line {lines[i]}"
        return f"{name} row {i + 1}" + (" (after the header)" if header else "")

    return locate


def _check_column_names(names: Sequence[Any], where: str) -> None:
    """Arrow cuts column names at a NUL character (and then fails on the mismatch): refuse them by name."""
    bad = next((n for n in names if "\x00" in str(n)), None)
    if bad is not None:
        raise DataError(f"{where}: column name {str(bad)!r} contains a NUL character; rename that column")


def from_lists(columns: dict[str, Sequence[Any]], *, name: str = "<python lists>") -> Table:
    """A table from equal-length Python lists, e.g. ``{"text": [...], "summary": [...]}``."""
    from datasets import Dataset

    lengths = {key: len(values) for key, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{name}: lists have different lengths: {lengths}")
    if not lengths or not next(iter(lengths.values())):
        raise DataError(f"{name}: no rows")
    _check_column_names(list(columns), name)
    return Table(Dataset.from_dict({k: list(v) for k, v in columns.items()}), name, _row_locator(name))


def load_table(source: str | os.PathLike[str], *, split: str = "train") -> Table:
    """Read a file, a saved dataset directory or a hub dataset into a Table.

    ``split`` picks the split of a saved ``DatasetDict`` directory or of a hub
    dataset; single files have no splits.
    """
    path = Path(source)
    name = str(source)
    if path.is_dir():
        return _load_saved(path, split)
    if path.exists() or path.suffix.lower() in FORMATS:
        if not path.is_file():
            raise DataError(f"data file not found: {name}" if not path.exists() else f"{name} is not a regular file")
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise DataError(f"{name}: unknown file type {path.suffix!r}; supported: {choices(FORMATS)}")
        if path.stat().st_size == 0:
            raise DataError(f"{name}: the file is empty")
        if is_large(path, fmt):  # Arrow on disk, memory-mapped: the rows never all sit in memory (data/large.py)
            return Table(load_memory_mapped(path, fmt), name, _row_locator(name, header=fmt in {"csv", "tsv"}))
        reader = {"csv": _read_csv, "tsv": _read_csv, "json": _read_json, "jsonl": _read_jsonl, "parquet": _read_parquet,
                  "conll": _read_conll, "text": _read_lines}[fmt]
        table = reader(path)
        if len(table) == 0:
            raise DataError(f"{name}: no data rows")
        return table
    if "/" in name and not name.startswith((".", "/")) and name.count("/") == 1:
        return _load_hub(name, split)
    raise DataError(f"data file not found: {name}")


#: Byte-order marks of encodings that are not UTF-8 (UTF-32 first: its little-endian mark starts like UTF-16's).
_OTHER_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}


def _read_text(path: Path) -> str:
    try:
        # utf-8-sig: files saved by Excel and Notepad start with a byte-order mark.
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from None


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> DataError:
    """The error for a file that is not UTF-8: its encoding when a byte-order mark tells, else the first bad line."""
    data = path.read_bytes()
    encoding = next((name for bom, name in _OTHER_BOMS.items() if data.startswith(bom)), None)
    if encoding is not None:
        return DataError(f"{path}: the file is {encoding} text (it starts with a {encoding} byte-order mark); re-save it as UTF-8")
    line = data[: exc.start].count(b"\n") + 1
    return DataError(f"{path} line {line}: not UTF-8 text ({exc.reason}); re-save the file as UTF-8")


class _DuplicateKey(ValueError):
    """A JSON object names one key twice (``json`` would silently keep the last value)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return record


def _parse_json(text: str, where: Callable[[int | None], str]) -> Any:
    """``json.loads`` that refuses duplicate keys and absurd nesting with a DataError.

    ``where(line)`` names the place (line None: unknown). A ``JSONDecodeError`` saying
    "Extra data" is re-raised as it is: a ``.json`` file may hold one object per line.
    """
    try:
        # NaN (Python's and pandas' JSON extension) is a missing value, like null: the cell check reports it.
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=lambda c: None if c == "NaN" else float(c))
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            raise
        raise DataError(f"{where(exc.lineno)}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    except _DuplicateKey as exc:
        raise DataError(f"{where(None)}: an object names the key {exc.args[0]!r} twice; "
                        "give each column once per record") from None
    except RecursionError:
        raise DataError(f"{where(None)}: JSON nested too deeply to be a table of records") from None


def _lines(text: str) -> list[str]:
    """Lines split at newlines only (read_text already turned \\r\\n into \\n). Not str.splitlines():
    it also breaks at U+0085, U+2028 and other characters that real JSON strings and texts contain."""
    return text.split("\n")


def _read_jsonl(path: Path) -> Table:
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    for number, line in enumerate(_lines(_read_text(path)), start=1):
        if not line.strip():
            continue
        try:
            record = _parse_json(line, lambda _: f"{path} line {number}")  # noqa: B023 - called right here
        except json.JSONDecodeError as exc:  # "Extra data": two objects on one line
            raise DataError(f"{path} line {number}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path} line {number}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
        lines.append(number)
    return Table(_dataset_from_records(records, path, lines), str(path), _row_locator(str(path), lines))


def _read_json(path: Path) -> Table:
    text = _read_text(path)
    try:
        loaded = _parse_json(text, lambda line: f"{path}" + ("" if line is None else f" line {line}"))
    except json.JSONDecodeError:  # "Extra data": one object per line in a .json file
        return _read_jsonl(path)
    if isinstance(loaded, dict) and isinstance(loaded.get("data"), list):
        loaded = loaded["data"]
    if not isinstance(loaded, list):
        raise DataError(f"{path}: expected a list of objects or {{\"data\": [...]}}, got {type(loaded).__name__}")
    if is_squad_layout(loaded):  # official SQuAD file: one row per question
        records, where = flatten_squad(loaded, path)
        return Table(_dataset_from_records(records, path, None), str(path), lambda i: where[i])
    for i, record in enumerate(loaded):
        if not isinstance(record, dict):
            raise DataError(f"{path} record {i + 1}: expected a JSON object, got {type(record).__name__}")
    locate = lambda i: f"{path} record {i + 1}"  # noqa: E731
    return Table(_dataset_from_records(loaded, path, None), str(path), locate)


def _dataset_from_records(records: list[dict[str, Any]], path: Path, lines: list[int] | None) -> Any:
    from datasets import Dataset

    if not records:
        raise DataError(f"{path}: no data rows")
    keys = list(dict.fromkeys(k for r in records for k in r))
    _check_column_names(keys, str(path))
    try:
        # Every key of every record: Dataset.from_list takes the first record's keys and silently drops the others'.
        return Dataset.from_list([{key: record.get(key) for key in keys} for record in records])
    except Exception as exc:  # pyarrow type clashes between rows

        def where(i: int) -> str:
            return f"line {lines[i]}" if lines is not None else f"record {i + 1}"

        first: dict[str, tuple[str, int]] = {}  # place in a row -> (kind, row index) of its first value
        for i, record in enumerate(records):
            for place, value in _cells(record):
                kind = _value_kind(value)
                seen = first.setdefault(place, (kind, i))
                if kind != seen[0]:
                    other = "an earlier item of the row" if seen[1] == i else where(seen[1])
                    raise DataError(
                        f"{path} {where(i)}: {place} holds {kind} ({str(value)[:40]!r}) but "
                        f"{other} holds {seen[0]}; a column must hold one type of value"
                    ) from None
        raise DataError(f"{path}: rows cannot form a table ({' '.join(str(exc).split())[:300]})") from None


def _cells(record: dict[str, Any]) -> list[tuple[str, Any]]:
    """(place, value) of every non-null value in a record, nested ones too: ``column 'messages'``, then
    ``column 'messages', field 'content' of an item``, so a type clash inside lists of objects names its row."""
    out: list[tuple[str, Any]] = []

    def walk(value: Any, place: str, depth: int) -> None:
        if value is None:
            return
        out.append((place, value))
        if depth >= 4:
            return
        if isinstance(value, list):
            for item in value:
                walk(item, f"{place}, an item", depth + 1)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{place}, field {key!r}", depth + 1)

    for key, value in record.items():
        walk(value, f"column {key!r}", 0)
    return out


def _value_kind(value: Any) -> str:
    """A JSON value's kind for error messages; ints and floats are both numbers (Arrow mixes them)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _read_csv(path: Path) -> Table:
    import pandas as pd
    from datasets import Dataset

    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        # Every cell as text; only truly empty cells become missing, so a review
        # that says "NA" stays text and an empty cell is reported, not trained on.
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
    except UnicodeDecodeError:
        _read_text(path)  # raises a message with the line number
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        reason = " ".join(str(exc).split())  # pandas' messages end in a newline; errors are one line
        raise DataError(f"{path}: not a valid {'TSV' if sep == chr(9) else 'CSV'} file ({reason})") from None
    # pandas renames a repeated "summary" to "summary.1"; the header as written tells a real "summary.1" apart.
    header = [str(c) for c in pd.read_csv(path, sep=sep, dtype=str, header=None, nrows=1, keep_default_na=False,
                                          encoding="utf-8-sig").iloc[0]]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise DataError(f"{path}: duplicate column names in the header ({', '.join(map(repr, duplicated))}); "
                        "each column needs its own name")
    _check_column_names(header, str(path))
    if frame.empty:
        raise DataError(f"{path}: no data rows")
    frame = frame.astype(object).where(frame.notna(), None)
    return Table(Dataset.from_pandas(frame, preserve_index=False), str(path), _row_locator(str(path), header=True))


def _read_lines(path: Path) -> Table:
    """One row per non-empty line, in a column ``text`` (language-modelling corpora, prompts)."""
    from datasets import Dataset

    numbered = [(n, line) for n, line in enumerate(_lines(_read_text(path)), start=1) if line.strip()]
    if not numbered:
        raise DataError(f"{path}: no data rows (only blank lines)")
    return Table(Dataset.from_dict({"text": [line for _, line in numbered]}), str(path),
                 _row_locator(str(path), [n for n, _ in numbered]))


def _read_conll(path: Path) -> Table:
    from datasets import Dataset

    columns, starts = parse_conll(_read_text(path), str(path))
    return Table(Dataset.from_dict(columns), str(path), _row_locator(str(path), starts))


def _read_parquet(path: Path) -> Table:
    import pyarrow.parquet as pq
    from datasets import Dataset

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError flavours
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    return Table(Dataset(table), str(path), _row_locator(str(path)))


def _load_saved(path: Path, split: str) -> Table:
    from datasets import Dataset, DatasetDict, load_from_disk

    if not ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        raise DataError(f"{path} is a directory but not a dataset saved with datasets.save_to_disk")
    try:
        loaded = load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001 - datasets/pyarrow raise OSError, JSON and Arrow errors for damaged files
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise DataError(f"{path}: a damaged datasets.save_to_disk directory ({reason}); save the dataset again") from None
    if isinstance(loaded, DatasetDict):
        if split not in loaded:
            if len(loaded) != 1:
                raise DataError(f"{path}: no split {split!r}; available splits: {choices(loaded)}")
            split = next(iter(loaded))
        loaded = loaded[split]
    assert isinstance(loaded, Dataset)
    if len(loaded) == 0:
        raise DataError(f"{path}: no data rows")
    return Table(loaded, f"{path} [{split}]", _row_locator(f"{path} [{split}]"))


def _load_hub(name: str, split: str) -> Table:
    problem = hub_problem(name, kind="dataset")
    if problem is not None:
        raise DataError(
            f"{name}: no such file, and the dataset hub {problem}. "
            "Pass a local file (CSV, JSONL, Parquet) or a datasets.save_to_disk directory."
        )
    from datasets import load_dataset

    try:
        loaded = load_dataset(name, split=split)
    except Exception as exc:  # the hub raises many types; all mean "cannot use this name"
        raise DataError(f"{name}: cannot load hub dataset split {split!r} ({exc})") from None
    return Table(loaded, f"{name} [{split}]", _row_locator(f"{name} [{split}]"))
