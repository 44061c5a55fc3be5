"""The report's per-class sections: the per-class table sorted by F1 with the confusion plot, and the misclassified rows.

Drawn from metrics.json's per-label scores and predictions.jsonl's classification records
(``runs/classes.py`` says which runs have them); a run without them gets neither section.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from texttune.runs.classes import (
    PER_LABEL,
    ClassRecords,
    ConfusionView,
    misclassified,
    most_confused_with,
    per_label_scores,
    scored_sections,
)
from texttune.runs.report_html import Html, esc, table, text_cell

MAX_MISCLASSIFIED = 20
MAX_SCORES = 5
COLUMN_TITLES = {"precision": "precision", "recall": "recall", "f1": "F1", "support": "support"}
RECORD_KEYS = ("reference", "prediction", "scores")


def has_per_label_scores(metrics: Any) -> bool:
    return any(per_label_scores(section) for _, section in scored_sections(metrics))


def per_class(metrics: Any, classes: ClassRecords | None, view: ConfusionView | None, image: bytes | None) -> Html:
    """The per-class table (the latest scored section's per-label scores, best F1 first), then the confusion plot."""
    sections = [(title, per_label_scores(section)) for title, section in scored_sections(metrics)]
    sections = [(title, scores) for title, scores in sections if scores]
    if not sections:
        return Html("<p class=missing>not recorded (metrics.json has no per-label scores)</p>")
    title, main = sections[-1]
    columns = [name for name in PER_LABEL if any(name in values for values in main.values())]
    others = [(t, scores) for t, scores in sections[:-1] if any("f1" in v for v in scores.values())]
    confused = most_confused_with(classes) if classes is not None and classes.single else {}

    def order(label: str) -> tuple[Any, ...]:
        values = main[label]
        return (values.get("f1") is None, -values.get("f1", 0), -values.get("support", 0), label)

    rows, classes_of_rows = [], []
    for label in sorted(main, key=order):
        values = main[label]
        wrong = confused.get(label)
        rows.append([label, *[values.get(c) for c in columns], *[scores.get(label, {}).get("f1") for _, scores in others],
                     *([f"{wrong[0]} ({wrong[1]})" if wrong else "–"] if confused else [])])
        weak = values.get("f1") == 0 and values.get("support", 1) > 0
        classes_of_rows.append("weak" if weak else "")
    headers = ["label", *[COLUMN_TITLES[c] for c in columns], *[f"F1 {t}" for t, _ in others],
               *(["most often predicted instead (rows)"] if confused else [])]
    note = (f"<p class=sub>{len(main)} labels, {esc(title)} per-label scores, sorted by F1 (best first)"
            + (", with the other sections' F1 beside them" if others else "") + "; F1 0 on labels with rows in red</p>")
    return Html(note + table(headers, rows, row_classes=classes_of_rows, cls="classes") + _confusion(classes, view, image))


def _png_size(data: bytes) -> tuple[int, int] | None:
    return struct.unpack(">II", data[16:24]) if data[12:16] == b"IHDR" else None


def _confusion(classes: ClassRecords | None, view: ConfusionView | None, image: bytes | None) -> str:
    if classes is None:
        return "<p class=missing>no confusion plot (predictions.jsonl has no classification records)</p>"
    if view is None:
        return ("<p class=sub>No confusion matrix for a multi-label run (a row may have several labels): per-label "
                "precision shows labels added wrongly, recall labels missed.</p>")
    if image is None:
        return "<p class=missing>confusion.png: not drawn</p>"
    width, height = _png_size(image) or (640, 640)
    data = base64.b64encode(image).decode("ascii")
    return (f"<h3>Confusions</h3><figure class=wide><img alt='confusion.png' width={width} height={height} "
            f"src='data:image/png;base64,{data}'><figcaption>{esc(view.title)}</figcaption></figure>")


def _scores(record: dict[str, Any], truth: set[str]) -> Html:
    """The record's top scores as percentages, the true labels in green."""
    parts = []
    for entry in (record.get("scores") or [])[:MAX_SCORES]:
        if not isinstance(entry, dict) or not isinstance(entry.get("score"), (int, float)):
            continue
        label = esc(entry.get("label"))
        parts.append(f"{f'<b>{label}</b>' if entry.get('label') in truth else label} {100 * entry['score']:.1f}%")
    return Html(f"<div class=scores>{' · '.join(parts) or '–'}</div>")


def misclassified_rows(classes: ClassRecords) -> Html:
    """Up to 20 wrong validation rows with their inputs, reference, prediction and top scores."""
    wrong = misclassified(classes)
    if not wrong:
        return Html(f"<p class=sub>none: all {len(classes.records)} rows of predictions.jsonl are predicted right</p>")
    shown = wrong[:MAX_MISCLASSIFIED]
    keys = list(dict.fromkeys(k for r in shown for k in r if k not in RECORD_KEYS))
    rows = []
    for i, record in enumerate(shown):
        reference, prediction = record["reference"], record["prediction"]
        truth = {reference} if classes.single else set(reference)
        errors = [] if classes.single else [", ".join(sorted(truth - set(prediction))) or "–",
                                            ", ".join(sorted(set(prediction) - truth)) or "–"]
        rows.append([i + 1, *[text_cell(record.get(k)) for k in keys], text_cell(reference), text_cell(prediction),
                     *errors, _scores(record, truth)])
    order = "most confident first" if classes.single else "most wrong labels first"
    note = (f"<p class=sub>{len(shown)} of {len(wrong)} misclassified rows (of {len(classes.records)} in "
            f"predictions.jsonl), {order}; true labels in green among the scores</p>")
    headers = ["#", *keys, "reference", "prediction", *([] if classes.single else ["missed", "extra"]), "top scores"]
    return Html(note + table(headers, rows, cls="preds"))
