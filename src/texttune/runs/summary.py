"""Plain-text summaries of a run's metrics, for the terminal."""

from __future__ import annotations

from typing import Any

from texttune.metrics.registry import metric_info

#: Beyond this many per-label scores (f1_games, support_games...) the table leaves them to metrics.json.
MAX_PER_LABEL_ROWS = 16


def _per_label(name: str) -> bool:
    info = metric_info(name)
    return info is not None and info.name != name and not name.endswith("_loss")


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
    rows = names or list(dict.fromkeys(k for _, values in columns for k in values))
    hidden = [r for r in rows if _per_label(r)] if names is None else []
    if len(hidden) > MAX_PER_LABEL_ROWS:
        rows = [r for r in rows if r not in set(hidden)]
    else:
        hidden = []
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
    return "\n".join(lines)
