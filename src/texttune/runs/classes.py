"""Per-class views of a run, from its files alone: per-label scores, confusions, misclassified rows.

Which runs have classes is read from the files, never from a task name: a metrics.json
section with per-label scores (``f1_<label>``, ``precision_<label>``..., as
``metrics/registry.py`` names them) gives the labels; predictions.jsonl records whose
``reference`` and ``prediction`` are all among those labels (one string each: single-label;
lists of them: multi-label) are classification records. Token tags (``B-PER``) are not the
entity types scored per label (``PER``), so tagging runs get the per-class table only.
Pure functions over parsed JSON: the plots and the report share them.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from texttune.metrics.registry import metric_info

#: The per-label scores the per-class table shows, in its column order.
PER_LABEL = ("precision", "recall", "f1", "support")
#: Up to this many classes the confusion plot is the whole matrix; beyond, the top confusions as bars.
MAX_MATRIX_LABELS = 25
TOP_CONFUSIONS = 20
SINGLE, MULTI = "single-label", "multi-label"


def _value(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def per_label_key(key: str) -> tuple[str, str] | None:
    """``("f1", "games")`` for ``f1_games`` (a per-label score the registry knows), else None."""
    info = metric_info(key)
    head, _, label = key.partition("_")
    return (head, label) if info is not None and info.name != key and head in PER_LABEL and label else None


def per_label_scores(section: Any) -> dict[str, dict[str, float]]:
    """``{label: {"f1": ..., "precision": ..., ...}}`` from one metrics.json section, labels in key order."""
    found: dict[str, dict[str, float]] = {}
    for key, raw in (section.items() if isinstance(section, dict) else []):
        parsed, value = per_label_key(key), _value(raw)
        if parsed is not None and value is not None:
            found.setdefault(parsed[1], {})[parsed[0]] = value
    return found


def scored_sections(metrics: Any) -> list[tuple[str, dict[str, Any]]]:
    """(title, section) of metrics.json's scored sections: the baselines, zero-shot, fine-tuned."""
    if not isinstance(metrics, dict):
        return []
    baselines = metrics.get("baselines") if isinstance(metrics.get("baselines"), dict) else {}
    sections = [(f"baseline {name}", values) for name, values in baselines.items() if isinstance(values, dict)]
    sections += [(title, metrics[key]) for key, title in (("zero_shot", "zero-shot"), ("fine_tuned", "fine-tuned"))
                 if isinstance(metrics.get(key), dict)]
    return sections


def class_labels(metrics: Any) -> list[str]:
    """The labels scored per label: fine-tuned's, else the latest section that has them."""
    for _, section in reversed(scored_sections(metrics)):
        labels = list(per_label_scores(section))
        if labels:
            return labels
    return []


@dataclass
class ClassRecords:
    """A run's classification records: ``kind`` is single-label or multi-label."""

    kind: str
    labels: list[str]
    records: list[dict[str, Any]]

    @property
    def single(self) -> bool:
        return self.kind == SINGLE


def _labels_of(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def class_records(metrics: Any, predictions: list[dict[str, Any]] | None) -> ClassRecords | None:
    """The predictions as classification records, or None when they are not (or either file is missing)."""
    labels = class_labels(metrics)
    if not labels or not predictions:
        return None
    known = set(labels)
    kinds = set()
    for record in predictions:
        reference, prediction = record.get("reference"), record.get("prediction")
        chosen = [_labels_of(reference), _labels_of(prediction)]
        if None in chosen or isinstance(reference, str) != isinstance(prediction, str):
            return None
        if not set(chosen[0] or []) | set(chosen[1] or []) <= known:
            return None
        kinds.add(SINGLE if isinstance(reference, str) else MULTI)
    return ClassRecords(kinds.pop(), labels, predictions) if len(kinds) == 1 else None


def confusion_counts(run: ClassRecords) -> tuple[list[str], list[list[int]]]:
    """Single-label: the labels that occur (as reference or prediction), in label order, and counts[true][predicted]."""
    pairs = Counter((r["reference"], r["prediction"]) for r in run.records)
    seen = {label for pair in pairs for label in pair}
    labels = [label for label in run.labels if label in seen]
    return labels, [[pairs.get((t, p), 0) for p in labels] for t in labels]


def row_normalised(counts: list[list[int]]) -> list[list[float]]:
    """Each true class's row as shares summing to 1 (a row without references stays 0)."""
    return [[c / sum(row) if sum(row) else 0.0 for c in row] for row in counts]


def top_confusions(labels: list[str], counts: list[list[int]], n: int = TOP_CONFUSIONS) -> list[tuple[str, str, int, float]]:
    """The ``n`` most frequent mistakes: (true, predicted, count, share of the true class's rows), most first."""
    found = [(labels[t], labels[p], c, c / sum(counts[t])) for t in range(len(labels)) for p, c in enumerate(counts[t])
             if t != p and c]
    return sorted(found, key=lambda x: (-x[2], -x[3], x[0], x[1]))[:n]


@dataclass
class ConfusionView:
    """What the confusion plot shows: the whole matrix (``matrix``) or the top confusions as bars (``bars``)."""

    kind: str
    title: str
    labels: list[str]
    counts: list[list[int]]
    confusions: list[tuple[str, str, int, float]]


def confusion_view(run: ClassRecords | None) -> ConfusionView | None:
    """The confusion plot of a single-label run (None for multi-label: a row may have several labels)."""
    if run is None or not run.single:
        return None
    labels, counts = confusion_counts(run)
    if len(labels) <= MAX_MATRIX_LABELS:
        title = f"Confusion matrix, {len(labels)} classes (rows: true class, each row sums to 1)"
        return ConfusionView("matrix", title, labels, counts, [])
    confusions = top_confusions(labels, counts)
    title = (f"Top {len(confusions)} confusions of {len(labels)} classes (too many for a matrix): "
             "true → predicted (count, share of the true class)")
    return ConfusionView("bars", title, labels, counts, confusions)


def most_confused_with(run: ClassRecords) -> dict[str, tuple[str, int]]:
    """Single-label: per true class, the wrong label it is most often predicted as, and how often."""
    labels, counts = confusion_counts(run)
    found = {}
    for t, true in enumerate(labels):
        wrong = [(c, labels[p]) for p, c in enumerate(counts[t]) if p != t and c]
        if wrong:
            count, label = max(wrong, key=lambda x: (x[0], -labels.index(x[1])))
            found[true] = (label, count)
    return found


def _confidence(record: dict[str, Any]) -> float:
    """The score of the predicted label (the best score when the record does not list it)."""
    scores = [s for s in record.get("scores") or [] if isinstance(s, dict) and _value(s.get("score")) is not None]
    chosen = [s["score"] for s in scores if s.get("label") == record.get("prediction")] or [s["score"] for s in scores[:1]]
    return float(chosen[0]) if chosen else 0.0


def misclassified(run: ClassRecords) -> list[dict[str, Any]]:
    """The wrong rows: single-label most confident first; multi-label most wrong labels first (file order on ties)."""
    if run.single:
        wrong = [r for r in run.records if r["reference"] != r["prediction"]]
        return sorted(wrong, key=lambda r: -_confidence(r))
    wrong = [r for r in run.records if set(r["reference"]) != set(r["prediction"])]
    return sorted(wrong, key=lambda r: -len(set(r["reference"]) ^ set(r["prediction"])))
