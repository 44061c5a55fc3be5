"""Bootstrap intervals and paired tests (metrics/bootstrap.py) and the per-row fast paths (metrics/rowwise.py)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from texttune.metrics import bleu_chrf, rouge, squad_scores
from texttune.metrics.bootstrap import intervals, paired_test, resample_indices, resampled_values
from texttune.metrics.registry import higher_is_better
from texttune.metrics.rowwise import bleu_chrf_statistics, perplexity_statistics, rouge_statistics, squad_statistics
from texttune.tasks.chunking import perplexity
from texttune.tasks.qa_postprocess import score_answers


def accuracy(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    return {"accuracy": round(100 * sum(r["prediction"] == r["reference"] for r in records) / len(records), 4)}


def labelled(n: int, *, correct: float, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` records, each right with probability ``correct``."""
    rng = random.Random(seed)
    return [{"reference": "a", "prediction": "a" if rng.random() < correct else "b"} for _ in range(n)]


def test_the_interval_covers_the_estimate_and_shrinks_as_rows_grow() -> None:
    widths = []
    for n in (50, 500, 5000):
        records = labelled(n, correct=0.7)
        point = accuracy(records)["accuracy"]
        found = intervals(records, score=accuracy, resamples=400, seed=1)["accuracy"]
        assert found["low"] <= point <= found["high"]
        widths.append(found["high"] - found["low"])
    assert widths[0] > widths[1] > widths[2] > 0
    assert widths[0] > 2.5 * widths[2]  # ~1/sqrt(n): 10x the rows, about a third of the width


def test_seeded_resamples_are_reproducible_and_the_seed_matters() -> None:
    records = labelled(200, correct=0.6)
    first = intervals(records, score=accuracy, resamples=200, seed=7)
    assert first == intervals(records, score=accuracy, resamples=200, seed=7)
    assert first != intervals(records, score=accuracy, resamples=200, seed=8)
    blocks = [b.copy() for b in resample_indices(10, resamples=5, seed=3)]
    assert np.array_equal(np.concatenate(blocks), np.concatenate(list(resample_indices(10, resamples=5, seed=3))))


def test_a_system_against_itself_is_not_significant_and_against_a_worse_one_is() -> None:
    good = labelled(300, correct=0.8, seed=1)
    itself = paired_test(good, good, score=accuracy, direction=higher_is_better, resamples=300, seed=0)["accuracy"]
    assert itself["difference"] == 0 and itself["p_value"] == 1.0 and not itself["significant"]
    worse = [{**r, "prediction": "b"} if i % 2 else r for i, r in enumerate(good)]  # half its right answers gone
    test = paired_test(good, worse, score=accuracy, direction=higher_is_better, resamples=300, seed=0)["accuracy"]
    assert test["gain"] > 0 and test["low"] > 0 and test["p_value"] < 0.05 and test["significant"]
    reverse = paired_test(worse, good, score=accuracy, direction=higher_is_better, resamples=300, seed=0)["accuracy"]
    assert reverse["gain"] < 0 and reverse["p_value"] == 1.0 and not reverse["significant"]


def test_lower_is_better_metrics_count_a_drop_as_a_gain() -> None:
    def loss(records: Sequence[dict[str, Any]]) -> dict[str, float]:
        return {"loss": float(np.mean([r["loss"] for r in records]))}

    low = [{"loss": 1.0 + 0.1 * (i % 3)} for i in range(100)]
    high = [{"loss": r["loss"] + 0.5} for r in low]
    test = paired_test(low, high, score=loss, direction=higher_is_better, resamples=200, seed=0)["loss"]
    assert test["difference"] == pytest.approx(-0.5) and test["gain"] == pytest.approx(0.5) and test["significant"]


def test_a_paired_test_needs_the_same_number_of_rows() -> None:
    with pytest.raises(ValueError, match="same rows: got 3 and 2"):
        paired_test(labelled(3, correct=1), labelled(2, correct=1), score=accuracy, direction=higher_is_better)


PREDICTIONS = ["the cat sat on the mat", "a dog ran in the park today", "hello there world", "le chat est noir",
               "rain falls on the plain", "nothing here", "the quick brown fox", "jumped over the lazy dog"] * 3
REFERENCES = ["the cat is on the mat", "the dog runs in the park", "hello world", "le chat noir",
              "the rain in spain falls mainly", "something there", "a quick brown fox", "jumps over a lazy dog"] * 3


def _text_records() -> list[dict[str, Any]]:
    return [{"prediction": p, "reference": r} for p, r in zip(PREDICTIONS, REFERENCES)]


def _text_score(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    preds, refs = [r["prediction"] for r in records], [r["reference"] for r in records]
    return {**rouge(preds, refs), **bleu_chrf(preds, refs)}


def _text_stats(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    preds, refs = [r["prediction"] for r in records], [r["reference"] for r in records]
    return {**rouge_statistics(preds, refs), **bleu_chrf_statistics(preds, refs)}


def test_the_fast_path_gives_the_numbers_of_rescoring_each_resample() -> None:
    """ROUGE (mean of rows) and BLEU/chrF (summed sacreBLEU statistics): the same values as the scorer itself."""
    records = _text_records()
    fast = resampled_values(records, score=_text_score, row_stats=_text_stats, resamples=20, seed=5)
    slow = resampled_values(records, score=_text_score, resamples=20, seed=5)
    assert set(fast) == {"rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "chrf"}
    for name in fast:
        assert np.allclose(fast[name], slow[name], atol=1e-3), name
    assert len(set(slow["bleu"].round(4))) > 1  # the resamples differ: the comparison is not vacuous


def test_squad_and_perplexity_statistics_finish_as_the_metrics_do() -> None:
    preds, refs = ["Paris", "the red car", "", "1990"], [["Paris"], ["a blue car"], [], ["1991", "1990"]]
    sums = {k: a.finish(a.stats.sum(axis=0, keepdims=True))[0] for k, a in squad_statistics(preds, refs).items()}
    assert sums == pytest.approx({"exact_match": 75.0, "f1": 87.5})  # f1 of "the red car" vs "a blue car": 0.5
    assert sums == pytest.approx(score_answers(preds, refs))  # unanswerable rows: the SQuAD v2 rule
    assert squad_scores(preds[:2], refs[:2]) == pytest.approx({"exact_match": 50.0, "f1": 75.0})
    losses, counts = [10.0, 3.0, 7.5], [5, 2, 4]
    found = {k: a.finish(a.stats.sum(axis=0, keepdims=True))[0] for k, a in perplexity_statistics(losses, counts).items()}
    assert found == pytest.approx(perplexity(losses, counts))


def _same_as_rescoring(records: list[dict[str, Any]], score: Any, stats: Any) -> dict[str, np.ndarray]:
    fast = resampled_values(records, score=score, row_stats=stats, resamples=30, seed=2)
    slow = resampled_values(records, score=score, resamples=30, seed=2)
    assert set(fast) == set(slow)
    for name in fast:
        assert np.allclose(fast[name], slow[name], atol=1e-3, equal_nan=True), name
    return slow


def test_classification_from_confusion_cells_equals_scikit_learn() -> None:
    from texttune.metrics.classification import label_scores, label_statistics

    labels = ["games", "python", "science", "sound"]
    rng = random.Random(4)
    records = [{"reference": rng.choice(labels[:3]), "prediction": rng.choice(labels)} for _ in range(40)]

    def split(rs: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
        return [r["prediction"] for r in rs], [r["reference"] for r in rs]

    slow = _same_as_rescoring(records, lambda rs: label_scores(*split(rs), labels=labels),
                              lambda rs: label_statistics(*split(rs), labels=labels))
    assert len(set(slow["macro_f1"].round(4))) > 1 and (slow["support_sound"] == 0).all()  # sound: never a reference


def test_seqeval_from_entity_counts_equals_seqeval() -> None:
    from texttune.metrics.tagging import seqeval_scores, seqeval_statistics

    tags = ["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG"]  # I-ORG alone: conlleval starts an entity
    rng = random.Random(5)
    sentences = [[rng.choice(tags) for _ in range(rng.randint(1, 9))] for _ in range(40)]
    records = [{"reference": s, "prediction": [rng.choice(tags) if rng.random() < 0.4 else t for t in s]} for s in sentences]

    def split(rs: Sequence[dict[str, Any]]) -> tuple[list[list[str]], list[list[str]]]:
        return [r["prediction"] for r in rs], [r["reference"] for r in rs]

    slow = _same_as_rescoring(records, lambda rs: seqeval_scores(*split(rs)), lambda rs: seqeval_statistics(*split(rs)))
    assert {"f1", "precision", "recall", "accuracy", "f1_PER", "f1_LOC", "f1_ORG"} <= set(slow)
    assert len(set(slow["f1"].round(4))) > 1
