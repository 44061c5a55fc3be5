"""Entity-level metrics for token classification (NER-style BIO tags).

Uses seqeval in its default (conlleval-compatible) mode, which tolerates
IOB2 violations such as an entity starting with ``I-``. seqeval imports
scikit-learn, which is slow, so it is imported inside the function.
"""

from __future__ import annotations

__all__ = ["seqeval_scores"]


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
