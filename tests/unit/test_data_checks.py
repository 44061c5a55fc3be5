"""Data checks (data/checks.py, data/duplicates.py, tasks/data_checks.py): planted problems, counted exactly."""

from __future__ import annotations

from typing import Any

from texttune.config import DataConfig
from texttune.data import from_lists
from texttune.data.checks import CheckSettings, SplitData, check_splits, summary_lines
from texttune.data.duplicates import jaccard, near_duplicates, normalise, row_keys, shingles
from texttune.tasks import task_class
from texttune.tasks.data_checks import (
    answer_offset_errors,
    bio_errors,
    check_run_data,
    check_tables,
    copied_targets,
    label_checks,
)


def text(k: int) -> str:
    """A 30-word text whose words no other k shares."""
    return " ".join(f"word{k}n{i}" for i in range(30))


def changed(k: int) -> str:
    words = text(k).split()
    words[7] = "replaced"
    return " ".join(words)


TRAIN = {"text": [text(k) for k in range(10)] + [text(0), "  " + text(1).upper() + "  "],
         "label": ["a" if k % 2 == 0 else "b" for k in range(10)] + ["a", "a"]}  # row 11: text(1) was "b"
VALIDATION = {"text": [text(2), changed(3), text(4), text(100), text(101), text(100)],
              "label": ["a", "b", "b", "x", "y", "x"]}  # row 2: text(4) is "a" in train


def _report() -> dict[str, Any]:
    task = task_class("text-classification")()
    return check_tables(task, [("train", from_lists(TRAIN)), ("validation", from_lists(VALIDATION))],
                        settings=CheckSettings())


def test_normalisation_is_nfkc_casefold_and_collapsed_whitespace() -> None:
    assert normalise("  Ｈello\u3000 WORLD\n") == "hello world"
    assert normalise(["A", "b"]) == "a b" and normalise(None) == ""


def test_one_changed_word_in_thirty_is_a_near_duplicate_at_the_default_threshold() -> None:
    assert round(jaccard(shingles(text(3)), shingles(changed(3))), 3) == round(29 / 31, 3)
    assert near_duplicates(row_keys([[text(3), text(5)]]), row_keys([[changed(3), text(7)]])) == [(0, 0, 0.9355)]
    assert near_duplicates(row_keys([[text(3)]]), row_keys([[text(3)]])) == []  # exact: a leak, not a near-duplicate


def test_planted_duplicates_leaks_near_duplicates_and_conflicts_are_counted_exactly() -> None:
    report = _report()
    train, val = report["splits"]["train"], report["splits"]["validation"]
    assert train["rows"] == 12 and train["duplicates"]["count"] == 2 and train["conflicts"]["count"] == 1
    assert [e["where"] for e in train["duplicates"]["examples"]] == ["<python lists> row 11", "<python lists> row 12"]
    assert train["conflicts"]["examples"][0]["same_as"] == "<python lists> row 2"
    assert "leaks" not in train and "near_duplicates" not in train
    assert val["duplicates"]["count"] == 1 and val["conflicts"]["count"] == 0
    assert val["leaks"]["count"] == 2 and val["leaks"]["rate"] == round(2 / 6, 6)
    assert [(e["where"], e["same_as"]) for e in val["leaks"]["examples"]] == [
        ("<python lists> row 1", "<python lists> row 3"), ("<python lists> row 3", "<python lists> row 5")]
    assert val["near_duplicates"]["count"] == 1 and val["near_duplicates"]["examples"][0]["same_as"] == "<python lists> row 4"
    assert val["conflicts_with_reference"]["count"] == 1
    assert val["conflicts_with_reference"]["examples"][0]["where"] == "<python lists> row 3"
    warned = " ".join(report["warnings"])
    assert "validation: 2 of 6 rows whose input also occurs in train (leakage)" in warned and "train: 1 of 12" in warned


def test_clean_data_has_no_findings_and_no_warnings() -> None:
    task = task_class("text-classification")()
    clean = {"text": [text(k) for k in range(4)], "label": ["a", "b", "a", "b"]}
    other = {"text": [text(k) for k in range(10, 13)], "label": ["a", "b", "a"]}
    report = check_tables(task, [("train", from_lists(clean)), ("validation", from_lists(other))], settings=CheckSettings())
    val = report["splits"]["validation"]
    assert report["warnings"] == []
    assert [val[k]["count"] for k in ("duplicates", "leaks", "near_duplicates", "conflicts", "conflicts_with_reference")] == [0] * 5


def test_empty_cells_after_normalisation_and_lengths() -> None:
    split = SplitData(name="train", source="t", columns={"text": ["one two three", "\u3000 ", None, "x " * 50]},
                      inputs=("text",), targets=(), locate=lambda i: f"t line {i + 2}")
    report = check_splits([split])
    entry = report["splits"]["train"]
    assert entry["empty_cells"]["text"]["count"] == 2
    assert [e["where"] for e in entry["empty_cells"]["text"]["examples"]] == ["t line 3", "t line 4"]
    lengths = entry["lengths"]["text"]
    assert (lengths["max"], lengths["p50"], lengths["longest"][0]["where"]) == (50, 3, "t line 5")
    assert "conflicts" not in entry  # no target roles (language modelling)


def test_bio_errors() -> None:
    found = bio_errors([["B-PER", "I-PER", "O"], ["O", "I-LOC"], ["B-PER", "I-LOC"], ["I-ORG"], ["B-X", "B-Y", "I-Y"]])
    assert found["invalid_bio"] == {"count": 3, "rows": [1, 2, 3], "tags": 3}
    assert bio_errors([[0, 1, 2]])["invalid_bio"]["count"] == 0  # tag ids are not checked


def test_qa_answers_not_at_their_offsets() -> None:
    context = "Paris is in France"
    answers = [{"text": ["Paris"], "answer_start": [0]}, {"text": ["France"], "answer_start": [3]}, "not json",
               {"text": ["France"], "answer_start": [12]}]
    assert answer_offset_errors([context] * 4, answers)["answers_not_at_offset"] == {"count": 2, "rows": [1, 2]}


def test_labels_seen_once_and_balance() -> None:
    found = label_checks(["a", "a", "a", "b", "c"])
    assert found["labels_seen_once"] == {"count": 2, "rows": [3, 4], "labels": ["b", "c"]}
    assert found["class_balance"]["ratio"] == 3.0 and found["class_balance"]["most"] == ["a", 3]
    assert label_checks([["a", "b"], ["a"]])["labels_seen_once"]["labels"] == ["b"]
    assert label_checks([0.5, 1.5]) == {}  # regression targets are not labels


def test_translation_targets_equal_to_the_source() -> None:
    assert copied_targets(["Hello", "Save", "OK"], ["Bonjour", "save ", "ok"])["target_equals_source"] == {
        "count": 2, "rows": [1, 2]}


def test_task_hooks_reach_the_report_with_row_locations() -> None:
    task = task_class("token-classification")()
    rows = {"tokens": [["a", "b"], ["c", "d"]], "tags": [["B-PER", "I-PER"], ["O", "I-PER"]]}
    report = check_tables(task, [("train", from_lists(rows))], settings=CheckSettings())
    found = report["splits"]["train"]["task"]["invalid_bio"]
    assert found["count"] == 1 and found["examples"] == [{"where": "<python lists> row 2"}]
    assert "invalid bio 1" in summary_lines(report)[0]


def test_dedupe_removes_exactly_the_leaked_training_rows() -> None:
    task = task_class("text-classification")()
    train, report = check_run_data(task, from_lists(TRAIN), from_lists(VALIDATION), data=DataConfig(dedupe=True))
    assert report["dedupe"] == {"removed_train_rows": 2, "train_rows_after": 10}
    kept = train.rows["text"]
    assert text(2) not in kept and text(4) not in kept and len(kept) == 10
    assert train.locate(2) == "<python lists> row 4"  # rows keep pointing at their own lines
    same, report = check_run_data(task, from_lists(TRAIN), from_lists(VALIDATION), data=DataConfig())
    assert len(same) == 12 and "dedupe" not in report


def test_dedupe_is_refused_where_it_cannot_apply() -> None:
    import pytest

    from texttune.errors import ConfigError
    from texttune.tasks.registry import run_config

    with pytest.raises(ConfigError, match="--dedupe .* --streaming"):
        run_config("summarization", {"dedupe": True, "streaming": True, "max_steps": 10})
    with pytest.raises(ConfigError, match="--no-data-checks"):
        run_config("summarization", {"dedupe": True, "data_checks": False})
    assert run_config("summarization", {"dedupe": True}).data.dedupe


def test_memory_mapped_data_is_not_checked_and_dedupe_is_refused_there(caplog: Any) -> None:
    import logging
    from types import SimpleNamespace

    import pytest

    from texttune.data import Table
    from texttune.errors import ConfigError

    # A datasets.Dataset read from Arrow files on disk has cache_files; the checks would hold every row in memory.
    mapped = Table(SimpleNamespace(cache_files=[{"filename": "train.arrow"}]), "big.jsonl", lambda i: f"row {i + 1}")
    small = Table(SimpleNamespace(cache_files=[]), "val.jsonl", lambda i: f"row {i + 1}")
    task = task_class("text2text")()
    with caplog.at_level(logging.INFO, logger="texttune"):
        train, report = check_run_data(task, mapped, small, data=DataConfig())
    assert train is mapped and report is None
    assert "data checks skipped: big.jsonl is memory-mapped" in caplog.text
    with pytest.raises(ConfigError, match="option 'dedupe' needs the data checks"):
        check_run_data(task, mapped, small, data=DataConfig(dedupe=True))


def test_minhash_signatures_are_datasketchs_own_values() -> None:
    """texttune's blocked signatures equal datasketch's MinHash.bulk (the LSH index relies on that arithmetic), across
    block boundaries, for empty sets and non-ASCII shingles."""
    import zlib

    import numpy as np
    from datasketch import MinHash

    from texttune.data.duplicates import signatures

    sets = [{"a", "b", "c"}, set(), {"hello", "world"}, {str(i) for i in range(300)}, {"été", "中文"}] * 3
    for block in (1, 7, 1024):
        ours = list(signatures(sets, block=block))
        theirs = MinHash.bulk(([w.encode("utf-8") for w in s] for s in sets), num_perm=128, seed=1, hashfunc=zlib.crc32)
        assert len(ours) == len(sets)
        for mine, reference in zip(ours, theirs):
            assert mine.dtype == reference.hashvalues.dtype and np.array_equal(mine, reference.hashvalues)
