"""Reading user data: every supported format, and an error that points at the problem.

Why: data files are where users' runs fail first. Each format must load into
the same table, and each mistake (a bad line, an empty cell, a wrong column
name, a stray encoding) must be reported with the file, the line or row and
the column, before any model is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from texttune.data import ColumnRole, Table, from_lists, holdout, load_table, select_columns, take
from texttune.errors import DataError
from texttune.tasks.text2text import TranslationOptions, TranslationTask

DATA = Path(__file__).resolve().parents[1] / "data"

ROWS = [
    {"document": "The first document, with a comma.", "summary": "first"},
    {"document": "Second document; café and naïve text.", "summary": "second"},
    {"document": 'A third one with "quotes".', "summary": "third"},
]
ROLES = (
    ColumnRole("text", ("text", "document"), key="input"),
    ColumnRole("summary", ("summary",), key="target"),
)


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def data_error(source: Any, **kwargs: Any) -> str:
    with pytest.raises(DataError) as info:
        load_table(source, **kwargs)
    return str(info.value)


def mapping_error(table: Table, overrides: dict[str, str] | None = None) -> str:
    with pytest.raises(DataError) as info:
        select_columns(table, ROLES, overrides or {})
    return str(info.value)


# --------------------------------------------------------------------------- formats


def test_csv(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "train.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    table = load_table(path)
    assert table.rows.to_list() == ROWS
    assert table.name == str(path)


def test_csv_keeps_na_like_text_as_text(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("document,summary\nNA,None\nnull,N/A\n", encoding="utf-8")
    assert load_table(path).rows.to_list() == [{"document": "NA", "summary": "None"}, {"document": "null", "summary": "N/A"}]


def test_csv_keeps_numbers_as_text(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("document,summary\n12345,007\n", encoding="utf-8")
    table = select_columns(load_table(path), ROLES, {})
    assert table.rows.to_list() == [{"input": "12345", "target": "007"}]


def test_tsv(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text("document\tsummary\n" + "".join(f"{r['document']}\t{r['summary']}\n" for r in ROWS[:2]), encoding="utf-8")
    assert load_table(path).rows.to_list() == ROWS[:2]


def test_json_list(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps(ROWS), encoding="utf-8")
    assert load_table(path).rows.to_list() == ROWS


def test_json_data_wrapper(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"version": 2, "data": ROWS}), encoding="utf-8")
    assert load_table(path).rows.to_list() == ROWS


def test_json_file_with_one_object_per_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.json", ROWS)
    assert load_table(path).rows.to_list() == ROWS


def test_jsonl_skips_blank_lines_and_reports_real_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n   \n" + json.dumps({"document": "", "summary": "x"}) + "\n", encoding="utf-8")
    table = load_table(path)
    assert len(table) == 2
    assert table.locate(1) == f"{path} line 4"
    assert f"{path} line 4: column 'document' is an empty string" in mapping_error(table)


def test_the_sample_files_load() -> None:
    assert len(load_table(DATA / "summarization.jsonl")) == 40
    csv = load_table(DATA / "summarization.csv")
    assert len(csv) == 20
    assert csv.rows.to_list() == load_table(DATA / "summarization.jsonl").rows.select(range(20)).to_list()


def test_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    table = load_table(path)
    assert table.rows.to_list() == ROWS
    assert table.locate(0) == f"{path} row 1"


def test_parquet_with_numbers_in_a_text_column(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "train.parquet"
    pd.DataFrame({"document": ["text", "more"], "summary": [1, 2]}).to_parquet(path)
    message = mapping_error(load_table(path))
    assert f"{path} row 1: column 'summary' is not text (int: '1')" in message
    assert "2 bad cells" in message


def test_saved_dataset_directory(tmp_path: Path) -> None:
    from datasets import Dataset

    Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    table = load_table(tmp_path / "ds")
    assert table.rows.to_list() == ROWS
    assert str(tmp_path / "ds") in table.name


def test_saved_dataset_dict_directory_picks_the_split(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_list(ROWS), "validation": Dataset.from_list(ROWS[:1])}).save_to_disk(str(tmp_path / "dd"))
    assert load_table(tmp_path / "dd").rows.to_list() == ROWS
    assert load_table(tmp_path / "dd", split="validation").rows.to_list() == ROWS[:1]
    message = data_error(tmp_path / "dd", split="test")
    assert "no split 'test'; available splits: 'train', 'validation'" in message


def test_saved_dataset_dict_with_one_split_serves_any_split(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    DatasetDict({"all": Dataset.from_list(ROWS)}).save_to_disk(str(tmp_path / "dd"))
    assert len(load_table(tmp_path / "dd", split="validation")) == 3


def test_directory_that_is_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    assert "is a directory but not a dataset saved with datasets.save_to_disk" in data_error(tmp_path)


def test_from_lists() -> None:
    table = from_lists({"text": ["a", "b"], "summary": ["x", "y"]})
    assert select_columns(table, ROLES, {}).rows.to_list() == [{"input": "a", "target": "x"}, {"input": "b", "target": "y"}]
    with pytest.raises(DataError, match="lists have different lengths"):
        from_lists({"text": ["a", "b"], "summary": ["x"]})
    with pytest.raises(DataError, match="no rows"):
        from_lists({"text": [], "summary": []})


# --------------------------------------------------------------------------- file errors


def test_missing_file(tmp_path: Path) -> None:
    assert data_error(tmp_path / "nope.jsonl") == f"data file not found: {tmp_path / 'nope.jsonl'}"


def test_missing_relative_file_is_not_mistaken_for_a_hub_dataset() -> None:
    assert "data file not found: nope.csv" == data_error("nope.csv")


def test_hub_dataset_name_offline_says_what_to_do_instead() -> None:
    message = data_error("someone/some-dataset")
    assert "the dataset hub is off (offline mode: HF_HUB_OFFLINE is set)" in message
    assert "Pass a local file" in message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"")
    assert data_error(path) == f"{path}: the file is empty"


@pytest.mark.parametrize(("name", "content"), [("blank.jsonl", "\n\n  \n"), ("header.csv", "document,summary\n"), ("list.json", "[]")])
def test_files_without_rows(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert "no data rows" in data_error(path)


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "train.xlsx"
    path.write_text("hello\n", encoding="utf-8")
    message = data_error(path)
    assert "unknown file type '.xlsx'" in message
    assert "'.csv'" in message and "'.jsonl'" in message and "'.parquet'" in message


def test_malformed_jsonl_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1]) + "\n" + '{"document": "x", "summary": \n', encoding="utf-8")
    message = data_error(path)
    assert message.startswith(f"{path} line 3: invalid JSON")


def test_non_object_jsonl_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(ROWS[0]) + '\n["a", "list"]\n', encoding="utf-8")
    assert data_error(path) == f"{path} line 2: expected a JSON object, got list"


def test_non_object_json_record(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps([ROWS[0], "text"]), encoding="utf-8")
    assert data_error(path) == f"{path} record 2: expected a JSON object, got str"


def test_json_that_is_not_a_list(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text('{"rows": []}', encoding="utf-8")
    assert "expected a list of objects" in data_error(path)


@pytest.mark.parametrize("name", ["train.jsonl", "train.csv"])
def test_non_utf8_bytes_name_the_line(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_bytes(b'{"document": "fine", "summary": "ok"}\n' * 2 + b'{"document": "caf\xe9", "summary": "latin-1"}\n')
    else:
        path.write_bytes(b"document,summary\n" + b"fine,ok\n" * 2 + b"caf\xe9,latin-1\n")
    message = data_error(path)
    lineno = 3 if name.endswith(".jsonl") else 4
    assert message.startswith(f"{path} line {lineno}: not UTF-8 text")
    assert "re-save the file as UTF-8" in message


@pytest.mark.parametrize("name", ["train.jsonl", "train.csv", "train.json", "train.tsv"])
def test_byte_order_mark_is_ignored(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".jsonl"):
        text = json.dumps(ROWS[0]) + "\n"
    elif name.endswith(".json"):
        text = json.dumps([ROWS[0]])
    else:
        sep = "\t" if name.endswith(".tsv") else ","
        text = f"document{sep}summary\nhello{sep}world\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    table = load_table(path)
    assert table.rows.column_names == ["document", "summary"]  # not "\ufeffdocument"
    assert len(select_columns(table, ROLES, {})) == 1


def test_csv_duplicate_header(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("document,summary,summary\na,b,c\n", encoding="utf-8")
    assert "duplicate column names in the header" in data_error(path)


def test_broken_csv(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text('document,summary\n"never closed,x\n', encoding="utf-8")
    assert "not a valid CSV file" in data_error(path)


def test_unreadable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "train.parquet"
    path.write_bytes(b"this is not parquet")
    assert "not a readable Parquet file" in data_error(path)


# --------------------------------------------------------------------------- cell and column errors


def test_csv_empty_cell_names_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("document,summary\nfirst text,first\nsecond text,\nthird text,\n", encoding="utf-8")
    message = mapping_error(load_table(path))
    assert message.startswith(f"{path} row 2 (after the header): column 'summary' is empty (missing/NaN)")
    assert "(2 bad cells in this column)" in message


def test_missing_column_lists_available_columns(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [{"body": "text", "summary": "x"}])
    message = mapping_error(load_table(path))
    assert "no text column (looked for 'text', 'document')" in message
    assert "available columns: 'body', 'summary'" in message
    assert "--text-column" in message


def test_explicit_column_that_does_not_exist(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", ROWS)
    message = mapping_error(load_table(path), {"text": "body"})
    assert "no column 'body' (from --text-column)" in message
    assert "available columns: 'document', 'summary'" in message


def test_explicit_column_wins_over_defaults(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [{"text": "t", "body": "b", "summary": "s"}])
    table = select_columns(load_table(path), ROLES, {"text": "body"})
    assert table.rows.to_list() == [{"input": "b", "target": "s"}]


def test_override_for_an_unknown_role(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", ROWS)
    assert "are not columns of this task" in mapping_error(load_table(path), {"label": "summary"})


def test_one_column_for_two_roles(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", ROWS)
    assert "one column is used for two roles" in mapping_error(load_table(path), {"summary": "document"})


def test_number_in_a_text_column_names_the_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [ROWS[0], {"document": 42, "summary": "x"}])
    message = data_error(path)
    assert message.startswith(f"{path} line 2: column 'document'")
    assert "a number" in message and "line 1" in message


def test_numbers_only_in_a_text_column(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [{"document": 1, "summary": "x"}, {"document": 2, "summary": "y"}])
    message = mapping_error(load_table(path))
    assert message.startswith(f"{path} line 1: column 'document' is not text (int: '1') (2 bad cells in this column)")


def test_mixed_types_in_a_json_list_name_the_record(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps([ROWS[0], ROWS[1], {"document": {"nested": 1}, "summary": "x"}]), encoding="utf-8")
    message = data_error(path)
    assert message.startswith(f"{path} record 3: column 'document' holds an object")


@pytest.mark.parametrize("value", ["", "   ", "\n\t"])
def test_empty_string_cell(tmp_path: Path, value: str) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [ROWS[0], {"document": "text", "summary": value}])
    message = mapping_error(load_table(path))
    assert message == f"{path} line 2: column 'summary' is an empty string; fix or remove these rows"


def test_null_cell(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [ROWS[0], {"document": None, "summary": "x"}])
    assert f"{path} line 2: column 'document' is empty (missing/NaN)" in mapping_error(load_table(path))


def test_list_cell(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [{"document": "a", "summary": ["x", "y"]}])
    assert "column 'summary' is not text (list:" in mapping_error(load_table(path))


# --------------------------------------------------------------------------- nested translation layout


def test_nested_translation_layout_is_flattened() -> None:
    task = TranslationTask(TranslationOptions(source_lang="en", target_lang="fr"))
    nested = select_columns(load_table(DATA / "translation-nested.jsonl"), task.roles, {})
    flat = select_columns(load_table(DATA / "translation.jsonl"), task.roles, {})
    assert nested.rows.column_names == ["input", "target"]
    assert nested.rows.to_list() == flat.rows.select(range(10)).to_list()


def test_nested_layout_reverse_direction() -> None:
    task = TranslationTask(TranslationOptions(source_lang="fr", target_lang="en"))
    table = select_columns(load_table(DATA / "translation-nested.jsonl"), task.roles, {})
    first = json.loads((DATA / "translation-nested.jsonl").read_text(encoding="utf-8").splitlines()[0])["translation"]
    assert table.rows[0] == {"input": first["fr"], "target": first["en"]}


def test_nested_layout_with_a_missing_language_lists_the_columns(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"translation": {"en": "Hello.", "de": "Hallo."}}])
    task = TranslationTask(TranslationOptions(source_lang="en", target_lang="fr"))
    with pytest.raises(DataError) as info:
        select_columns(load_table(path), task.roles, {})
    assert "no target column" in str(info.value)
    assert "'de'" in str(info.value) and "'en'" in str(info.value)


# --------------------------------------------------------------------------- splits


def _table(n: int) -> Table:
    return from_lists({"text": [f"text {i}" for i in range(n)], "summary": [f"s {i}" for i in range(n)]}, name="rows")


def test_holdout_is_seeded_and_disjoint() -> None:
    table = _table(40)
    train, val = holdout(table, 0.25, seed=7)
    again_train, again_val = holdout(table, 0.25, seed=7)
    assert len(val) == 10 and len(train) == 30
    assert val.rows["text"] == again_val.rows["text"]
    assert train.rows["text"] == again_train.rows["text"]
    assert not set(val.rows["text"]) & set(train.rows["text"])
    assert set(val.rows["text"]) | set(train.rows["text"]) == set(table.rows["text"])
    _, other = holdout(table, 0.25, seed=8)
    assert other.rows["text"] != val.rows["text"]


def test_holdout_keeps_at_least_one_row_on_each_side() -> None:
    train, val = holdout(_table(3), 0.01, seed=0)
    assert (len(train), len(val)) == (2, 1)
    with pytest.raises(DataError, match="too few to hold out"):
        holdout(_table(1), 0.1, seed=0)


def test_take_first_rows_or_a_seeded_sample() -> None:
    table = _table(20)
    assert take(table, None) is table
    assert take(table, 50) is table
    first = take(table, 5)
    assert first.rows["text"] == [f"text {i}" for i in range(5)]
    assert first.locate(0) == table.locate(0)
    sampled = take(table, 5, shuffle_seed=3)
    assert sampled.rows["text"] == take(table, 5, shuffle_seed=3).rows["text"]
    assert sampled.rows["text"] != first.rows["text"]
    assert take(table, 5, shuffle_seed=4).rows["text"] != sampled.rows["text"]


def test_jsonl_keeps_keys_the_first_record_lacks(tmp_path: Path) -> None:
    """datasets' from_list takes the first record's keys only; a key that appears later is kept (null elsewhere)."""
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"a": "x"}\n{"a": "y", "b": "z"}\n')
    assert load_table(path).rows.to_list() == [{"a": "x", "b": None}, {"a": "y", "b": "z"}]
