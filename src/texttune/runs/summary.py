"""Plain-text summaries of a run's metrics, for the terminal."""

from __future__ import annotations

from typing import Any

from texttune.metrics.registry import is_per_label
from texttune.runs.intervals import FOOTNOTE, interval, paired_lines, value_cell, with_interval

#: Beyond this many per-label scores (f1_games, support_games...) terminal tables leave them to metrics.json.
MAX_PER_LABEL_ROWS = 16


def shown_rows(names: list[str]) -> tuple[list[str], list[str]]:
    """(the metric names a terminal table shows, the per-label ones it leaves out: all of them beyond the limit)."""
    per_label = [n for n in names if is_per_label(n)]
    if len(per_label) <= MAX_PER_LABEL_ROWS:
        return names, []
    return [n for n in names if n not in set(per_label)], per_label


def comparison_table(metrics: dict[str, Any], *, names: list[str] | None = None) -> str:
    """Baselines, zero-shot, fine-tuned (and test) side by side, one metric per row, each value with its 95% bootstrap
    interval when recorded; ``*`` marks a fine-tuned value significantly better than zero-shot and every baseline,
    and the paired tests of the main metric follow the table."""
    columns: list[tuple[str, str, str | None, dict[str, float]]] = []  # (title, section, baseline name, values)
    for name, values in (metrics.get("baselines") or {}).items():
        columns.append((f"baseline {name}", "baselines", name, values))
    for key, title in (("zero_shot", "zero-shot"), ("fine_tuned", "fine-tuned"), ("test", "test")):
        if metrics.get(key):
            columns.append((title, key, None, metrics[key]))
    if not columns:
        return "(no metrics)"
    rows, hidden = (names, []) if names else shown_rows(list(dict.fromkeys(k for *_, values in columns for k in values)))
    cells = [[value_cell(metrics, section, values, row, baseline=baseline) for _, section, baseline, values in columns] for row in rows]
    widths = [max(12, len(title) + 2, *(len(line[i]) + 2 for line in cells)) for i, (title, *_) in enumerate(columns)]
    width = max(len(r) for r in rows) + 2
    header = "metric".ljust(width) + "".join(title.rjust(w) for (title, *_), w in zip(columns, widths))
    lines = [header, "-" * len(header)]
    lines += [row.ljust(width) + "".join(c.rjust(w) for c, w in zip(line, widths)) for row, line in zip(rows, cells)]
    if hidden:
        lines.append(f"({len(hidden)} per-label scores, e.g. {hidden[0]}: in metrics.json and the report)")
    if metrics.get("intervals"):
        lines.append(FOOTNOTE)
    main = (metrics.get("bootstrap") or {}).get("main_metric")
    lines += paired_lines(metrics, [main] if main else [])
    scoring = metrics.get("scoring")
    if isinstance(scoring, dict) and scoring:  # text metrics: the language, tokenizers, sacreBLEU's signatures
        lines.append("scored with " + "; ".join(f"{key} {value}" for key, value in scoring.items()))
    return "\n".join(lines)


def evaluation_table(metrics: dict[str, Any], intervals: dict[str, Any], *, rows: int, resamples: int) -> str:
    """``texttune evaluate``'s table: metric, value, 95% interval (when the bootstrap ran), and what it was over."""
    shown, hidden = shown_rows(list(metrics))
    lines = [["metric", "value", "95% interval" if intervals else ""]]
    for name in shown:
        bounds = interval({"intervals": {"x": intervals}}, "x", name)
        lines.append([name, with_interval(metrics[name], None, digits=4),
                      "" if bounds is None else f"[{bounds[0]:.4f}, {bounds[1]:.4f}]"])
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    text = [f"{a.ljust(widths[0])}  {b.rjust(widths[1])}  {c}".rstrip() for a, b, c in lines]
    text.insert(1, "-" * len(text[0]))
    if hidden:
        text.append(f"({len(hidden)} per-label scores, e.g. {hidden[0]}: in --json and --metrics-file)")
    over = f"{rows} rows" + (f"; intervals: percentile bootstrap, {resamples} resamples of the rows" if intervals else "")
    return "\n".join([*text, over])
