"""Entity-level metrics for token classification (NER-style BIO tags).

Uses seqeval in its default (conlleval-compatible) mode, which tolerates
IOB2 violations such as an entity starting with ``I-``. seqeval imports
scikit-learn, which is slow, so it is imported inside the function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from texttune.metrics.bootstrap import Additive

__all__ = ["seqeval_scores", "seqeval_statistics"]


def _check_tags(predictions: list[list[str]], references: list[list[str]]) -> None:
    if len(predictions) != len(references):
        raise ValueError(
            f"got {len(predictions)} predicted sentences but {len(references)} reference sentences"
        )
    if not predictions:
        raise ValueError("no predictions to score")
    for index, (predicted, reference) in enumerate(zip(predictions, references)):
        if len(predicted) != len(reference):
            raise ValueError(
                f"sentence {index} has {len(predicted)} predicted tags "
                f"but {len(reference)} reference tags"
            )


def seqeval_scores(predictions: list[list[str]], references: list[list[str]]) -> dict[str, float]:
    """Overall entity precision/recall/F1 and token accuracy, plus ``f1_<TYPE>`` per type.

    All values are x100. Scores with a zero denominator are 0 (no warning).
    Types that appear only in the predictions get an ``f1_<TYPE>`` of 0.
    """
    _check_tags(predictions, references)
    from seqeval.metrics import accuracy_score, classification_report

    report = classification_report(references, predictions, output_dict=True, zero_division=0)
    overall = report["micro avg"]
    scores = {
        "precision": 100 * float(overall["precision"]),
        "recall": 100 * float(overall["recall"]),
        "f1": 100 * float(overall["f1-score"]),
        "accuracy": 100 * float(accuracy_score(references, predictions)),
    }
    for name, values in sorted(report.items()):
        if not name.endswith(" avg"):
            scores[f"f1_{name}"] = 100 * float(values["f1-score"])
    return {key: round(value, 4) for key, value in scores.items()}


def seqeval_statistics(predictions: list[list[str]], references: list[list[str]]) -> dict[str, Any]:
    """Per-sentence statistics of :func:`seqeval_scores` for the fast bootstrap (metrics/bootstrap.py): per entity type
    (true positives, predicted, true entities), and (correct tags, tags); sums of them give every score exactly.

    seqeval's entities never cross sentences, so they are the sentences' own. A type absent from a resample (neither
    predicted nor true there) scores NaN: seqeval would not report it at all.
    """
    _check_tags(predictions, references)
    import numpy as np
    from seqeval.metrics.sequence_labeling import get_entities

    found = [(set(get_entities(p)), set(get_entities(r))) for p, r in zip(predictions, references)]
    types = sorted({kind for pair in found for side in pair for kind, _, _ in side})
    stats = np.zeros((len(found), 3 * len(types) + 2))  # per type: tp, predicted, true; then correct tags, tags
    for row, ((guess, truth), p, r) in enumerate(zip(found, predictions, references)):
        for k, kind in enumerate(types):
            g, t = {e for e in guess if e[0] == kind}, {e for e in truth if e[0] == kind}
            stats[row, 3 * k: 3 * k + 3] = (len(g & t), len(g), len(t))
        stats[row, -2:] = (sum(a == b for a, b in zip(p, r)), len(r))

    def f1(tp: Any, predicted: Any, true: Any, *, absent: float) -> Any:
        both = predicted + true
        return np.where(both > 0, 100 * 2 * tp / np.maximum(both, 1), absent)

    def overall(name: str) -> Callable[[Any], Any]:
        def finish(s: Any) -> Any:
            tp, predicted, true = (s[:, i:-2:3].sum(axis=1) for i in range(3))
            value = {"precision": 100 * tp / np.maximum(predicted, 1), "recall": 100 * tp / np.maximum(true, 1),
                     "f1": f1(tp, predicted, true, absent=0.0), "accuracy": 100 * s[:, -2] / np.maximum(s[:, -1], 1)}
            return np.round(value[name], 4)
        return finish

    def per_type(k: int) -> Callable[[Any], Any]:
        return lambda s: np.round(f1(s[:, 3 * k], s[:, 3 * k + 1], s[:, 3 * k + 2], absent=np.nan), 4)

    out: dict[str, Any] = {name: Additive(stats, overall(name)) for name in ("precision", "recall", "f1", "accuracy")}
    out.update({f"f1_{kind}": Additive(stats, per_type(k)) for k, kind in enumerate(types)})
    return out
