"""Plain-text summaries of a run's metrics, for the terminal."""

from __future__ import annotations

from typing import Any

from texttune.metrics.registry import is_per_label

#: Beyond this many per-label scores (f1_games, support_games...) terminal tables leave them to metrics.json.
MAX_PER_LABEL_ROWS = 16


def shown_rows(names: list[str]) -> tuple[list[str], list[str]]:
    """(the metric names a terminal table shows, the per-label ones it leaves out: all of them beyond the limit)."""
    per_label = [n for n in names if is_per_label(n)]
    if len(per_label) <= MAX_PER_LABEL_ROWS:
        return names, []
    return [n for n in names if n not in set(per_label)], per_label


def comparison_table(metrics: dict[str, Any], *, names: list[str] | None = None) -> str:
    """Baselines, zero-shot and fine-tuned side by side, one metric per row."""
    columns: list[tuple[str, dict[str, float]]] = []
    for name, values in (metrics.get("baselines") or {}).items():
        columns.append((f"baseline {name}", values))
    if metrics.get("zero_shot"):
        columns.append(("zero-shot", metrics["zero_shot"]))
    if metrics.get("fine_tuned"):
        columns.append(("fine-tuned", metrics["fine_tuned"]))
    if not columns:
        return "(no metrics)"
    rows, hidden = (names, []) if names else shown_rows(list(dict.fromkeys(k for _, values in columns for k in values)))
    width = max(len(r) for r in rows) + 2
    header = "metric".ljust(width) + "".join(title.rjust(max(12, len(title) + 2)) for title, _ in columns)
    lines = [header, "-" * len(header)]
    for row in rows:
        cells = "".join(
            (f"{values[row]:.2f}" if row in values else "-").rjust(max(12, len(title) + 2)) for title, values in columns
        )
        lines.append(row.ljust(width) + cells)
    if hidden:
        lines.append(f"({len(hidden)} per-label scores, e.g. {hidden[0]}: in metrics.json and the report)")
    scoring = metrics.get("scoring")
    if isinstance(scoring, dict) and scoring:  # text metrics: the language, tokenizers, sacreBLEU's signatures
        lines.append("scored with " + "; ".join(f"{key} {value}" for key, value in scoring.items()))
    return "\n".join(lines)
