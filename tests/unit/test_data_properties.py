"""Property-based tests (hypothesis) of the data loaders and the column mapping.

Why: the hand-written cases in ``test_data.py`` and ``tests/integration/test_bad_inputs.py``
cover the mistakes we thought of; these generate the ones we did not. Three promises:

- any table of text written as CSV, TSV, JSONL, JSON or Parquet loads back as the same rows;
- mapping columns to a task's roles, whatever the column names (unicode, spaces, dots),
  either works or raises a DataError that lists the available columns;
- any bytes at all under any supported extension either load or raise a TexttuneError:
  never a raw UnicodeDecodeError, KeyError, RecursionError or pyarrow error.

Example counts are bounded so the file runs in well under 30 s.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from texttune.data import ColumnRole, from_lists, load_table, select_columns
from texttune.errors import DataError, TexttuneError

#: derandomize: the same examples on every run (CI stays deterministic); database=None: no .hypothesis/ folder.
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True,
                    database=None)

#: Any character UTF-8 can hold (no lone surrogates), including U+0085, U+2028, NUL, tabs, quotes and newlines.
TEXT_CHARS = st.characters(blacklist_categories=("Cs",))
#: Column names as people write them: any text that is not blank at its edges, never a byte-order mark
#: (a leading U+FEFF is read as the file's encoding mark, by design) nor NUL (refused: see below).
NAMES = st.text(TEXT_CHARS, min_size=1, max_size=12).filter(
    lambda s: s == s.strip() and not {"\ufeff", "\n", "\r", "\x00"} & set(s))
CELLS = st.text(TEXT_CHARS, min_size=1, max_size=40)


@st.composite
def tables(draw: st.DrawFn) -> dict[str, list[str]]:
    """1-4 uniquely named text columns of 1-6 rows."""
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    rows = draw(st.integers(1, 6))
    return {name: draw(st.lists(CELLS, min_size=rows, max_size=rows)) for name in names}


def _write(columns: dict[str, list[str]], fmt: str, directory: Path) -> Path:
    names = list(columns)
    rows = [dict(zip(names, values)) for values in zip(*columns.values())]
    path = directory / f"table.{fmt}"
    if fmt in {"csv", "tsv"}:
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=names, delimiter="\t" if fmt == "tsv" else ",", quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(rows)
        path.write_bytes(buffer.getvalue().encode("utf-8"))
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json", "parquet"])
@SETTINGS
@given(columns=tables())
@example(columns={"document": ["a\u2028b", "c\u0085d"], "sum mary": ["x\r\ny", '"quoted", with comma']})
@example(columns={"summary": ["NA"], "summary.1": ["null"]})
def test_written_tables_load_back_as_the_same_rows(fmt: str, columns: dict[str, list[str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        table = load_table(_write(columns, fmt, Path(tmp)))
        assert table.rows.column_names == list(columns)
        assert table.rows.to_dict() == columns


ROLES = (ColumnRole("text", ("document", "text"), key="input"), ColumnRole("summary", ("summary",), key="target"))


@SETTINGS
@given(columns=tables(), overrides=st.dictionaries(st.sampled_from(["text", "summary", "label"]), NAMES, max_size=2))
def test_column_mapping_resolves_or_names_the_columns(columns: dict[str, list[str]], overrides: dict[str, str]) -> None:
    table = from_lists(columns, name="generated")
    try:
        mapped = select_columns(table, ROLES, overrides)
    except DataError as exc:
        message = str(exc)
        if "label" in overrides:
            assert "valid: --text-column, --summary-column" in message
        elif "is an empty string" not in message and "used for two roles" not in message:  # a blank cell, a column reused
            assert "available columns: " + ", ".join(map(repr, columns)) in message
        return
    assert mapped.rows.column_names in (["input", "target"], ["target", "input"])
    picked = {role.column_key: overrides.get(role.role) or next(n for n in role.defaults if n in columns) for role in ROLES}
    for key, column in picked.items():
        assert mapped.rows[key] == columns[column]


@SETTINGS
@given(name=NAMES, values=st.lists(CELLS.filter(str.strip), min_size=1, max_size=4))
def test_an_explicit_column_flag_finds_any_column_name(name: str, values: list[str]) -> None:
    table = from_lists({name: values, "summary": ["s"] * len(values)}, name="generated")
    if name == "summary":
        return
    mapped = select_columns(table, ROLES, {"text": name})
    assert mapped.rows["input"] == values


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json"])
def test_a_nul_in_a_column_name_is_refused_by_name(fmt: str, tmp_path: Path) -> None:
    """Arrow cuts names at NUL and then fails on the mismatch with a multi-line cast error."""
    path = _write({"doc\x00ument": ["text"], "summary": ["s"]}, fmt, tmp_path)
    with pytest.raises(DataError, match="column name 'doc\\\\x00ument' contains a NUL character"):
        load_table(path)


@SETTINGS
@given(columns=tables(), parent=NAMES, children=st.lists(st.sampled_from(["document", "summary"]) | NAMES, min_size=1, max_size=3,
                                                          unique=True))
def test_nested_columns_flatten_or_raise_a_data_error(columns: dict[str, list[str]], parent: str, children: list[str]) -> None:
    """``{"translation": {"en": ..., "fr": ...}}`` cells become columns; any names either map or get a DataError."""
    rows = len(next(iter(columns.values())))
    nested = {**columns, parent: [{child: f"{child} {i}" for child in children} for i in range(rows)]}
    try:
        mapped = select_columns(from_lists(nested, name="generated"), ROLES, {})
    except DataError as exc:
        assert "generated" in str(exc) or "column" in str(exc)
        return
    assert sorted(mapped.rows.column_names) == ["input", "target"] and len(mapped) == rows


FORMATS = ["csv", "tsv", "json", "jsonl", "parquet", "txt", "conll"]
#: Bytes that look like data more often than random ones do: fragments of real formats glued together.
FRAGMENTS = st.lists(st.sampled_from([
    b"{", b"}", b"[", b"]", b'"document"', b'"summary"', b":", b",", b"\n", b"\r\n", b"\t", b" ", b'"', b"NaN", b"null",
    b"1", b"-1e999", b"true", b"document,summary\n", b"\xef\xbb\xbf", b"\xff\xfe", b"\xe9", b"\x00", b"PAR1", b"-DOCSTART-",
    b"B-PER", b"a b", b"\\u00e9", b"\\ud800",
]), max_size=30).map(b"".join)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None)
@given(content=st.one_of(st.binary(min_size=1, max_size=400), FRAGMENTS))
def test_any_bytes_load_or_raise_a_texttune_error(fmt: str, content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data.{fmt}"
        path.write_bytes(content)
        try:
            table = load_table(path)
            select_columns(table, ROLES, {})
        except TexttuneError as exc:
            assert str(exc) and "\n" not in str(exc), repr(str(exc))


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(cut=st.integers(1, 10_000), flip=st.integers(0, 10_000))
def test_damaged_parquet_files_raise_a_texttune_error(cut: int, flip: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = _write({"document": ["some text", "more"], "summary": ["a", "b"]}, "parquet", Path(tmp))
        data = bytearray(path.read_bytes())
        data[flip % len(data)] ^= 0xFF
        path.write_bytes(bytes(data[: max(1, len(data) - cut % len(data))]))
        try:
            load_table(path)
        except TexttuneError:
            pass

