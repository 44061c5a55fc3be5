"""Unit tests for texttune.metrics; expected values are worked out by hand."""

from __future__ import annotations

import pytest

from texttune.metrics import (
    bleu_chrf,
    generation_length,
    lead_sentences,
    mean_sentence_count,
    normalize_answer,
    rouge,
    seqeval_scores,
    split_sentences,
    squad_scores,
)

# --- sentence splitting ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
        ("Mr. Smith met Dr. Jones. They talked.", ["Mr. Smith met Dr. Jones.", "They talked."]),
        ("Fruit, e.g. Apples, i.e. Food. Done.", ["Fruit, e.g. Apples, i.e. Food.", "Done."]),
        (
            "Pears, apples, etc. Are fine. Cats vs. Dogs.",
            ["Pears, apples, etc. Are fine.", "Cats vs. Dogs."],
        ),
        ("The U.S. Army left. It rained.", ["The U.S. Army left.", "It rained."]),
        ("J. Smith wrote it. We read it.", ["J. Smith wrote it.", "We read it."]),
        ("It grew 3.5 percent. Then 4.2 percent.", ["It grew 3.5 percent.", "Then 4.2 percent."]),
        ("Sales rose. 2024 was good.", ["Sales rose.", "2024 was good."]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ('It ended. "Why?" she asked.', ["It ended.", '"Why?" she asked.']),
        ("It ended. (Or did it?) Yes.", ["It ended.", "(Or did it?)", "Yes."]),
        ("no split. lower case next", ["no split. lower case next"]),
        ("First para\n\nsecond para", ["First para", "second para"]),
        ("A wrapped\nline. Next one.", ["A wrapped line.", "Next one."]),
        ("", []),
        ("  \n\n ", []),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_lead_sentences() -> None:
    text = "Alpha one. Beta two. Gamma three."
    assert lead_sentences(text, 1) == "Alpha one."
    assert lead_sentences(text, 2) == "Alpha one. Beta two."
    assert lead_sentences(text, 10) == text
    with pytest.raises(ValueError, match="at least 1"):
        lead_sentences(text, 0)


def test_mean_sentence_count() -> None:
    assert mean_sentence_count(["One. Two.", "One. Two. Three."]) == 3  # 2.5 rounds up
    assert mean_sentence_count(["One. Two.", "One. Two."]) == 2
    assert mean_sentence_count(["", "no terminal punctuation"]) == 1  # 0.5 -> 1
    assert mean_sentence_count(["", ""]) == 1  # never below 1
    with pytest.raises(ValueError, match="no texts"):
        mean_sentence_count([])


# --- ROUGE ---------------------------------------------------------------------


def test_rouge_identical_and_disjoint() -> None:
    assert rouge(["the cat sat"], ["the cat sat"]) == dict.fromkeys(
        ["rouge1", "rouge2", "rougeL", "rougeLsum"], 100.0
    )
    assert rouge(["apples and pears"], ["cold blue sky"]) == dict.fromkeys(
        ["rouge1", "rouge2", "rougeL", "rougeLsum"], 0.0
    )


def test_rouge_partial_overlap_by_hand() -> None:
    # unigrams: the, the, cat, on shared -> 4/6 both ways; bigrams "the cat",
    # "on the" shared -> 2/5; LCS "the cat on the" -> 4/6.
    scores = rouge(["the cat sat on the mat"], ["the cat lay on the rug"])
    assert scores["rouge1"] == pytest.approx(66.6667)
    assert scores["rouge2"] == pytest.approx(40.0)
    assert scores["rougeL"] == pytest.approx(66.6667)


def test_rouge_is_a_mean_over_examples() -> None:
    assert rouge(["a b", "c d"], ["a b", "x y"])["rouge1"] == pytest.approx(50.0)


def test_rouge_uses_stemming() -> None:
    assert rouge(["running"], ["run"])["rouge1"] == 100.0
    # dogs->dog, running/runs->run: 3 shared of 4 predicted, 3 reference tokens
    assert rouge(["the dogs are running"], ["the dog runs"])["rouge1"] == pytest.approx(85.7143)


def test_rouge_lsum_is_summary_level() -> None:
    # Swapped sentence order: rougeL's LCS is "cats sleep all day" (4/7) but
    # rougeLsum takes the union LCS per reference sentence (7/7).
    scores = rouge(
        ["Dogs bark loudly. Cats sleep all day."], ["Cats sleep all day. Dogs bark loudly."]
    )
    assert scores["rouge1"] == 100.0
    assert scores["rouge2"] == pytest.approx(83.3333)
    assert scores["rougeL"] == pytest.approx(57.1429)
    assert scores["rougeLsum"] == 100.0


def test_rouge_errors() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        rouge(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no predictions to score"):
        rouge([], [])
    with pytest.raises(TypeError, match="not a single string"):
        rouge("a", "a")


# --- BLEU / chrF ---------------------------------------------------------------


def test_bleu_chrf_identical() -> None:
    scores = bleu_chrf(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert scores["bleu"] == pytest.approx(100.0)
    assert scores["chrf"] == pytest.approx(100.0)


def test_bleu_known_value() -> None:
    # n-gram precisions 5/6, 3/5, 2/4, 1/3, no brevity penalty:
    # BLEU = (1/12) ** 0.25 = 0.537285
    scores = bleu_chrf(["the cat sat on a mat"], ["the cat sat on the mat"])
    assert scores["bleu"] == pytest.approx(53.7285, abs=1e-3)
    assert scores["chrf"] == pytest.approx(65.98, abs=0.01)  # sacrebleu 2.x chrF2


def test_bleu_chrf_disjoint_and_errors() -> None:
    scores = bleu_chrf(["xyz"], ["abc"])
    assert scores == {"bleu": 0.0, "chrf": 0.0}
    with pytest.raises(ValueError, match="1 predictions but 2 references"):
        bleu_chrf(["a"], ["a", "b"])


# --- generation length -----------------------------------------------------------


class _CharTokenizer:
    """One token per character; records the keyword it was called with."""

    def __init__(self) -> None:
        self.add_special_tokens: list[bool] = []

    def __call__(self, text: str, *, add_special_tokens: bool) -> dict[str, list[int]]:
        self.add_special_tokens.append(add_special_tokens)
        return {"input_ids": [ord(c) for c in text]}


def test_generation_length() -> None:
    assert generation_length(["a b c", "d  e"]) == {"gen_len": 2.5}
    tokenizer = _CharTokenizer()
    assert generation_length(["abc", "d"], tokenizer=tokenizer) == {"gen_len": 2.0}
    assert tokenizer.add_special_tokens == [False, False]
    with pytest.raises(ValueError, match="no predictions"):
        generation_length([])


# --- seqeval -----------------------------------------------------------------------


def test_seqeval_hand_computed() -> None:
    references = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predictions = [["B-PER", "O", "O", "B-LOC"], ["O", "O"]]
    # gold: PER, LOC, ORG; predicted: PER (wrong span), LOC (right) -> tp=1
    # P = 1/2, R = 1/3, F1 = 2PR/(P+R) = 0.4; tokens right: 4 of 6
    scores = seqeval_scores(predictions, references)
    assert scores["precision"] == pytest.approx(50.0)
    assert scores["recall"] == pytest.approx(33.3333)
    assert scores["f1"] == pytest.approx(40.0)
    assert scores["accuracy"] == pytest.approx(66.6667)
    assert scores["f1_LOC"] == 100.0
    assert scores["f1_PER"] == 0.0
    assert scores["f1_ORG"] == 0.0


def test_seqeval_tolerates_iob2_violations() -> None:
    # An entity starting with I- still counts (conlleval behaviour).
    scores = seqeval_scores([["I-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]])
    assert scores["f1"] == 100.0
    assert scores["f1_PER"] == 100.0


def test_seqeval_errors() -> None:
    with pytest.raises(ValueError, match="sentence 1 has 1 predicted tags but 2"):
        seqeval_scores([["O"], ["O"]], [["O"], ["O", "O"]])
    with pytest.raises(ValueError, match="2 predicted sentences but 1 reference"):
        seqeval_scores([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="no predictions"):
        seqeval_scores([], [])


# --- SQuAD -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Cat!", "cat"),
        ("an apple, a pear", "apple pear"),
        ("theater", "theater"),  # articles only as whole words
        ("state-of-the-art", "stateoftheart"),  # punctuation goes before articles
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_squad_exact_match_and_f1() -> None:
    scores = squad_scores(["the Eiffel Tower."], [["Eiffel Tower"]])
    assert scores == {"exact_match": 100.0, "f1": 100.0}
    # 2 shared tokens, P = 2/5, R = 2/2 -> F1 = 0.8 / 1.4
    scores = squad_scores(["in the Eiffel Tower in Paris"], [["Eiffel Tower"]])
    assert scores == {"exact_match": 0.0, "f1": pytest.approx(57.1429)}


def test_squad_takes_best_reference_and_averages() -> None:
    refs = [["Broncos", "Denver Broncos", "the Denver Broncos"], ["Paris"]]
    scores = squad_scores(["Denver Broncos", "London"], refs)
    assert scores == {"exact_match": 50.0, "f1": 50.0}


def test_squad_v11_quirk_empty_answers() -> None:
    # Both normalise to "": exact match, but v1.1 F1 gives 0 for no tokens.
    assert squad_scores(["the"], [["a"]]) == {"exact_match": 100.0, "f1": 0.0}


def test_squad_errors() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 reference"):
        squad_scores(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match=r"references\[0\] has no reference answers"):
        squad_scores(["a"], [[]])
    with pytest.raises(TypeError, match="list of answers"):
        squad_scores(["a"], ["a"])


def test_per_label_scores_are_told_apart_and_terminal_tables_leave_many_out() -> None:
    from texttune.metrics.registry import higher_is_better, is_per_label
    from texttune.runs.summary import MAX_PER_LABEL_ROWS, comparison_table, shown_rows

    assert is_per_label("f1_games") and is_per_label("support_game::arcade") and not is_per_label("macro_f1")
    assert not is_per_label("val_loss") and higher_is_better("support_games") is None
    assert higher_is_better("macro_f1") is True and higher_is_better("mse") is False
    few = ["accuracy", *(f"f1_{i}" for i in range(MAX_PER_LABEL_ROWS))]
    assert shown_rows(few) == (few, [])
    many = ["accuracy", *(f"f1_{i}" for i in range(MAX_PER_LABEL_ROWS + 1))]
    assert shown_rows(many) == (["accuracy"], many[1:])
    table = comparison_table({"fine_tuned": {name: 1.0 for name in many}})
    assert not any(line.startswith("f1_") for line in table.splitlines())
    assert f"({MAX_PER_LABEL_ROWS + 1} per-label scores, e.g. f1_0" in table


def test_classification_metrics_against_hand_counts() -> None:
    from texttune.metrics.classification import label_scores, multilabel_scores, regression_scores, tune_thresholds

    scores = label_scores(["a", "a", "b", "c"], ["a", "b", "b", "c"], labels=["a", "b", "c"])
    assert scores["accuracy"] == 75 and scores["micro_f1"] == 75
    # a: P 1/2 R 1 F 2/3; b: P 1 R 1/2 F 2/3; c: P R F 1
    assert scores["macro_f1"] == pytest.approx(100 * (2 / 3 + 2 / 3 + 1) / 3)
    assert scores["support_b"] == 2 and scores["precision_a"] == 50
    multi = multilabel_scores([["x"], ["x", "y"], []], [["x"], ["y"], ["y"]], labels=["x", "y"])
    # tp x1 y1, fp x1, fn y1: micro P 2/3 R 2/3
    assert multi["micro_f1"] == pytest.approx(100 * 2 / 3) and multi["subset_accuracy"] == pytest.approx(100 / 3)
    reg = regression_scores([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    assert reg["spearman"] == pytest.approx(100) and reg["mse"] == pytest.approx(1 / 3)
    assert regression_scores([1.0, 1.0], [1.0, 2.0])["pearson"] == 0  # a constant prediction: no correlation
    probabilities = [[0.9, 0.2], [0.6, 0.4], [0.1, 0.45]]
    truth = [[1, 0], [1, 1], [0, 1]]
    # The lowest threshold with the best F1: globally 0.25 (0.2 would add y to row 1); x alone is perfect from 0.15.
    assert tune_thresholds(probabilities, truth, per_label=False) == [0.25, 0.25]
    assert tune_thresholds(probabilities, truth, per_label=True) == [0.15, 0.25]
