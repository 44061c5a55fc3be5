"""Extractive QA building blocks without a model: answers cells, SQuAD layout, span search, scores, baselines.

Why: the window/offset arithmetic and the official scoring rules are where QA
code goes quietly wrong (an off-by-one span still scores some F1), so each rule
is pinned here on hand-made numbers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from texttune.data import ColumnRole, load_table, select_columns
from texttune.data.squad import flatten_squad, parse_answers, span_mismatch
from texttune.errors import DataError
from texttune.metrics import squad_scores
from texttune.tasks.qa_postprocess import Window, best_answer, score_answers, window_overlap

# --------------------------------------------------------------------------- answers cells and layouts


@pytest.mark.parametrize("cell", [
    {"text": ["Denver Broncos", "Broncos"], "answer_start": [4, 11]},
    json.dumps({"text": ["Denver Broncos", "Broncos"], "answer_start": [4, 11]}),
    [{"text": "Denver Broncos", "answer_start": 4}, {"text": "Broncos", "answer_start": 11}],
])
def test_parse_answers_reads_every_layout(cell: object) -> None:
    assert parse_answers(cell) == (["Denver Broncos", "Broncos"], [4, 11])


@pytest.mark.parametrize(("cell", "needle"), [
    ("Denver", "not JSON"),
    (None, "empty (missing)"),
    ({"text": ["a"], "answer_start": []}, "equal-length"),
    ({"text": [""], "answer_start": [0]}, "non-empty text"),
    ({"text": ["a"], "answer_start": [-1]}, ">= 0"),
    (7, "expected"),
])
def test_parse_answers_explains_bad_cells(cell: object, needle: str) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        parse_answers(cell)


def test_span_mismatch_names_what_the_context_says() -> None:
    context = "The Denver Broncos won."
    assert span_mismatch(context, ["Denver Broncos"], [4]) is None
    assert span_mismatch(context, ["Denver Broncos"], [5]) == ("Denver Broncos", 5, "enver Broncos ")


def test_flatten_squad_keeps_v2_questions_and_locates_errors(tmp_path: Path) -> None:
    articles = [{"title": "T", "paragraphs": [{"context": "Ann met Bob.", "qas": [
        {"id": "q1", "question": "Who met Bob?", "answers": [{"text": "Ann", "answer_start": 0}]},
        {"id": "q2", "question": "Who met Eve?", "answers": [], "is_impossible": True,
         "plausible_answers": [{"text": "Ann", "answer_start": 0}]},
    ]}]}]
    records, where = flatten_squad(articles, tmp_path / "f.json")
    assert [r["answers"] for r in records] == [{"text": ["Ann"], "answer_start": [0]}, {"text": [], "answer_start": []}]
    assert where[1].endswith("article 1 ('T') paragraph 1 question 2 (id q2)")
    articles[0]["paragraphs"][0]["qas"][0]["answers"] = "Ann"
    with pytest.raises(DataError, match=r"article 1 \('T'\) paragraph 1 question 1: answers cell 'Ann' is not JSON"):
        flatten_squad(articles, tmp_path / "f.json")


def test_select_columns_keeps_the_answers_struct_and_still_flattens_others(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"question": "q", "answers": {"text": ["a"], "answer_start": [0]}, "pair": {"en": "x"}}) + "\n")
    roles = [ColumnRole("question", ("question",)), ColumnRole("answers", ("answers",), kind="any"), ColumnRole("en", ("en",))]
    row = select_columns(load_table(path), roles, {}).rows[0]
    assert row == {"question": "q", "answers": {"text": ["a"], "answer_start": [0]}, "en": "x"}


# --------------------------------------------------------------------------- span search over windows

CONTEXT = "Ann met Bob in Paris"
OFFSETS = [(0, 0), (0, 3), (4, 7), (8, 11), (12, 14), (15, 20), (0, 0)]  # [CLS] ann met bob in paris [SEP]
IN_CONTEXT = np.array([False, True, True, True, True, True, False])


def window(start: list[float], end: list[float]) -> Window:
    return Window(np.array(start), np.array(end), OFFSETS, IN_CONTEXT)


def test_best_span_over_windows_and_max_answer_length() -> None:
    first = window([0, 5, 0, 0, 0, 0, 0], [0, 0, 0, 4, 0, 0, 0])  # "Ann met Bob": 5 + 4
    second = window([0, 0, 0, 0, 0, 6, 0], [0, 0, 0, 0, 0, 2, 9])  # "Paris": 6 + 2 (SEP is not context)
    answer = best_answer([first, second], CONTEXT, n_best=20, max_answer_length=30)
    assert (answer.text, answer.start, answer.end) == ("Ann met Bob", 0, 11)
    short = best_answer([first, second], CONTEXT, n_best=20, max_answer_length=2)
    assert short.text == "Paris" and 0 < short.score < 1


def test_end_before_start_is_never_chosen() -> None:
    answer = best_answer([window([0, 0, 0, 0, 0, 9, 0], [0, 9, 0, 0, 0, 0, 0])], CONTEXT, n_best=20, max_answer_length=30)
    assert answer.start is not None and answer.start < answer.end


def test_version_2_answers_only_when_the_span_beats_cls_by_the_threshold() -> None:
    w = window([7, 5, 0, 0, 0, 0, 0], [7, 4, 0, 0, 0, 0, 0])  # null 14, best span "Ann" 9
    assert best_answer([w], CONTEXT, n_best=20, max_answer_length=30).text == "Ann"  # v1 ignores CLS
    none = best_answer([w], CONTEXT, n_best=20, max_answer_length=30, version_2=True)
    assert (none.text, none.start, none.end) == ("", None, None)
    assert best_answer([w], CONTEXT, n_best=20, max_answer_length=30, version_2=True, null_threshold=-6).text == "Ann"


# --------------------------------------------------------------------------- scores and baselines


def test_score_answers_is_squad_v1_and_applies_the_v2_no_answer_rule() -> None:
    predictions, references = ["the Denver Broncos", "Paris"], [["Denver Broncos"], ["Lyon", "Paris, France"]]
    assert score_answers(predictions, references) == squad_scores(predictions, references)
    v2 = score_answers(["Denver Broncos", "", "x"], [["Denver Broncos"], [], []])
    assert v2 == {"exact_match": round(200 / 3, 4), "f1": round(200 / 3, 4)}


def test_window_overlap_takes_the_words_next_to_the_question_words() -> None:
    context = "The game was played in Santa Clara, and the Broncos beat the Panthers."
    assert window_overlap("Where was the game played?", context) == "Santa Clara"
    assert window_overlap("Who won?", "Nothing in common here. Second sentence.") == "Nothing in common here."
