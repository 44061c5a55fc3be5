"""Every metric texttune reports, with the way it improves: one table read by checkpoint selection,
``texttune runs``, ``runs compare``, the plots and the report (lm-evaluation-harness keeps the same
fact next to each metric).

``direction`` is "higher", "lower" or None (neither: a generation length is not better long or short).
Per-label scores (``f1_PER``, ``precision_NN``) improve like their overall metric.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One metric: its reported name, how people write it, and which way is better."""

    name: str
    display: str
    direction: str | None


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("rouge1", "ROUGE-1", "higher"),
    Metric("rouge2", "ROUGE-2", "higher"),
    Metric("rougeL", "ROUGE-L", "higher"),
    Metric("rougeLsum", "ROUGE-Lsum", "higher"),
    Metric("bleu", "BLEU", "higher"),
    Metric("chrf", "chrF", "higher"),
    Metric("gen_len", "generated length (tokens)", None),
    Metric("perplexity", "perplexity", "lower"),
    Metric("loss", "loss", "lower"),
    Metric("exact_match", "exact match", "higher"),
    Metric("f1", "F1", "higher"),
    Metric("precision", "precision", "higher"),
    Metric("recall", "recall", "higher"),
    Metric("accuracy", "accuracy", "higher"),
    # text classification (metrics/classification.py)
    Metric("macro_f1", "macro-F1", "higher"),
    Metric("micro_f1", "micro-F1", "higher"),
    Metric("weighted_f1", "weighted F1", "higher"),
    Metric("macro_precision", "macro precision", "higher"),
    Metric("macro_recall", "macro recall", "higher"),
    Metric("micro_precision", "micro precision", "higher"),
    Metric("micro_recall", "micro recall", "higher"),
    Metric("subset_accuracy", "subset accuracy", "higher"),
    Metric("support", "support (rows)", None),
    Metric("threshold", "decision threshold", None),
    Metric("pearson", "Pearson r", "higher"),
    Metric("spearman", "Spearman rho", "higher"),
    Metric("mse", "mean squared error", "lower"),
    Metric("mae", "mean absolute error", "lower"),
)}


def metric_info(name: str) -> Metric | None:
    """The metric called ``name`` (per-label ``f1_X`` as ``f1``, ``support_X`` as ``support``; ``*_loss`` as ``loss``), or None."""
    if name in METRICS:
        return METRICS[name]
    if name.endswith("_loss"):
        return METRICS["loss"]
    head = name.split("_", 1)[0]
    return METRICS.get(head) if "_" in name and head in {"f1", "precision", "recall", "accuracy", "support"} else None


def higher_is_better(name: str) -> bool | None:
    """True when a larger value of metric ``name`` is better, False when a smaller one is, None when neither or unknown."""
    info = metric_info(name)
    return None if info is None or info.direction is None else info.direction == "higher"


def is_per_label(name: str) -> bool:
    """Whether ``name`` is one label's score (``f1_PER``, ``support_games``) rather than a whole-set metric."""
    info = metric_info(name)
    return info is not None and info.name != name and not name.endswith("_loss")
