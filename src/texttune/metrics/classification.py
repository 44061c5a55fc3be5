"""Text-classification metrics: single-label, multi-label and regression, and the multi-label threshold.

Pure functions over plain lists (scikit-learn computes, imported inside: it is slow to
import). Percentages are x100 like every other texttune metric; ``support_<label>`` is a
count and ``mse`` a squared error. A label that never occurs in the references and is
never predicted has precision, recall and F1 of 0 (``zero_division=0``) and is left out
of the macro average, as scikit-learn does with ``labels`` restricted to those present.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from texttune.metrics.bootstrap import Additive

__all__ = ["label_scores", "label_statistics", "multilabel_scores", "regression_scores", "tune_thresholds"]


def _per_label(precision: Any, recall: Any, f1: Any, support: Any, labels: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for i, label in enumerate(labels):
        out[f"precision_{label}"] = round(100 * float(precision[i]), 4)
        out[f"recall_{label}"] = round(100 * float(recall[i]), 4)
        out[f"f1_{label}"] = round(100 * float(f1[i]), 4)
        out[f"support_{label}"] = float(support[i])
    return out


def label_scores(predictions: Sequence[str], references: Sequence[str], *, labels: Sequence[str]) -> dict[str, float]:
    """Single-label: accuracy, macro / micro / weighted F1, macro precision and recall, then per label.

    Macro averages run over the labels present in the references (a class absent from
    the evaluation rows cannot be scored); per-label entries cover every label in ``labels``.
    """
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    if len(predictions) != len(references) or not references:
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} references")
    present = [label for label in labels if label in set(references)]
    macro_p, macro_r, macro_f, _ = precision_recall_fscore_support(references, predictions, labels=present,
                                                                   average="macro", zero_division=0)
    scores = {
        "accuracy": 100 * float(accuracy_score(references, predictions)),
        "macro_f1": 100 * float(macro_f),
        "micro_f1": 100 * float(f1_score(references, predictions, labels=list(labels), average="micro", zero_division=0)),
        "weighted_f1": 100 * float(f1_score(references, predictions, labels=present, average="weighted", zero_division=0)),
        "macro_precision": 100 * float(macro_p),
        "macro_recall": 100 * float(macro_r),
    }
    per = precision_recall_fscore_support(references, predictions, labels=list(labels), average=None, zero_division=0)
    return {**scores, **_per_label(*per, labels)}


def _indicator(label_sets: Sequence[Sequence[str]], labels: Sequence[str]) -> Any:
    """(rows, labels) 0/1 matrix of label sets."""
    import numpy as np

    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(label_sets), len(labels)), dtype=np.int8)
    for row, chosen in enumerate(label_sets):
        for label in chosen:
            matrix[row, index[label]] = 1
    return matrix


def multilabel_scores(predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]], *,
                      labels: Sequence[str]) -> dict[str, float]:
    """Multi-label: micro / macro / weighted F1, micro precision and recall, subset accuracy (the exact set), per label.

    Macro averages run over the labels that occur in the references.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    if len(predictions) != len(references) or not references:
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} references")
    truth, guess = _indicator(references, labels), _indicator(predictions, labels)
    present = [i for i in range(len(labels)) if truth[:, i].any()]
    micro_p, micro_r, micro_f, _ = precision_recall_fscore_support(truth, guess, average="micro", zero_division=0)

    def average(kind: str) -> float:
        if not present:
            return 0.0
        return 100 * float(precision_recall_fscore_support(truth[:, present], guess[:, present], average=kind,
                                                           zero_division=0)[2])

    scores = {
        "micro_f1": 100 * float(micro_f), "macro_f1": average("macro"), "weighted_f1": average("weighted"),
        "micro_precision": 100 * float(micro_p), "micro_recall": 100 * float(micro_r),
        "subset_accuracy": 100 * float(accuracy_score(truth, guess)),
    }
    per = precision_recall_fscore_support(truth, guess, average=None, zero_division=0)
    return {**scores, **_per_label(*per, labels)}


def regression_scores(predictions: Sequence[float], references: Sequence[float]) -> dict[str, float]:
    """Regression: Pearson and Spearman correlation (x100), mean squared and mean absolute error."""
    import numpy as np
    from scipy.stats import pearsonr, spearmanr

    if len(predictions) != len(references) or not references:
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} references")
    p, r = np.asarray(predictions, dtype=float), np.asarray(references, dtype=float)
    constant = float(np.ptp(p)) == 0.0 or float(np.ptp(r)) == 0.0  # correlation undefined: report 0, no warning
    return {
        "pearson": 0.0 if constant else 100 * float(pearsonr(p, r)[0]),
        "spearman": 0.0 if constant else 100 * float(spearmanr(p, r)[0]),
        "mse": float(np.mean((p - r) ** 2)),
        "mae": float(np.mean(np.abs(p - r))),
    }


#: Thresholds tried when tuning (probabilities are rarely useful outside this range).
CANDIDATES: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))


def tune_thresholds(probabilities: Any, truth: Any, *, per_label: bool) -> list[float]:
    """Decision thresholds for multi-label predictions that maximise F1 on these rows.

    ``probabilities``, ``truth``: (rows, labels) arrays. Global: one threshold for every label,
    the one with the best micro-F1. Per label: each label's best F1 on its own (a label with
    no positive row keeps the global threshold, which guards against overfitting it).
    Returns one threshold per label.
    """
    import numpy as np

    probabilities, truth = np.asarray(probabilities, dtype=float), np.asarray(truth, dtype=bool)

    def f1(tp: Any, fp: Any, fn: Any) -> Any:
        return np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)

    best_global, best_score = 0.5, -1.0
    for t in CANDIDATES:
        guess = probabilities >= t
        tp, fp, fn = (guess & truth).sum(), (guess & ~truth).sum(), (~guess & truth).sum()
        score = float(f1(tp, fp, fn))
        if score > best_score + 1e-12:
            best_global, best_score = t, score
    thresholds = np.full(probabilities.shape[1], best_global)
    if per_label:
        best = np.full(probabilities.shape[1], -1.0)
        for t in CANDIDATES:
            guess = probabilities >= t
            scores = f1((guess & truth).sum(0), (guess & ~truth).sum(0), (~guess & truth).sum(0))
            better = (scores > best + 1e-12) & truth.any(0)
            thresholds[better], best[better] = t, scores[better]
    return [float(t) for t in thresholds]


def label_statistics(predictions: Sequence[str], references: Sequence[str], *, labels: Sequence[str]) -> dict[str, Any]:
    """Per-row statistics of :func:`label_scores` for the fast bootstrap (metrics/bootstrap.py): each row adds one cell
    of the (reference, prediction) confusion matrix, and every score is a function of that matrix, computed as
    scikit-learn computes it (``zero_division=0``; macro and weighted averages over the labels present in the rows)."""
    import numpy as np

    index = {label: i for i, label in enumerate(labels)}
    n = len(labels)
    cells = np.zeros((len(references), n * n + 1))  # the confusion cells, then rows outside the labels (never counted)
    for row, (reference, prediction) in enumerate(zip(references, predictions)):
        if reference in index and prediction in index:
            cells[row, index[reference] * n + index[prediction]] = 1
        else:
            cells[row, -1] = 1

    def counts(s: Any) -> tuple[Any, Any, Any, Any]:
        matrix = s[:, :-1].reshape(-1, n, n)  # (resamples, reference, prediction)
        return np.einsum("bii->bi", matrix), matrix.sum(axis=1), matrix.sum(axis=2), s.sum(axis=1)

    def ratio(a: Any, b: Any) -> Any:
        return np.where(b > 0, a / np.maximum(b, 1), 0.0)

    def scores(s: Any) -> dict[str, Any]:
        tp, predicted, true, rows = counts(s)
        precision, recall, f1 = ratio(tp, predicted), ratio(tp, true), ratio(2 * tp, predicted + true)
        present = true > 0
        shown = np.maximum(present.sum(axis=1), 1)
        out = {"accuracy": 100 * tp.sum(axis=1) / rows,
               "macro_f1": 100 * (f1 * present).sum(axis=1) / shown,
               "micro_f1": 100 * ratio(2 * tp.sum(axis=1), predicted.sum(axis=1) + true.sum(axis=1)),
               "weighted_f1": 100 * ratio((f1 * true).sum(axis=1), true.sum(axis=1)),
               "macro_precision": 100 * (precision * present).sum(axis=1) / shown,
               "macro_recall": 100 * (recall * present).sum(axis=1) / shown}
        for i, label in enumerate(labels):
            out.update({f"precision_{label}": np.round(100 * precision[:, i], 4),
                        f"recall_{label}": np.round(100 * recall[:, i], 4),
                        f"f1_{label}": np.round(100 * f1[:, i], 4), f"support_{label}": true[:, i]})
        return out

    return {name: Additive(cells, lambda s, name=name: scores(s)[name]) for name in scores(cells[:1])}
