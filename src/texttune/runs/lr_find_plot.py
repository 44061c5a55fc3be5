"""``plots/lr_find.png``: the ``--learning-rate auto`` range test, drawn from ``lr_find.json`` alone.

The training loss of each test step against its learning rate (log scale), the smoothed
curve the pick was made on, and vertical lines at the picked rate and at the smoothed
minimum; the title says the pick (or the fallback). The file is written by
``engine/lr_find.py``; any field may be missing (an older or damaged file): what is
there is drawn, nothing at all means no plot.
"""

from __future__ import annotations

import math
from typing import Any

LR_FIND_PLOT = "lr_find.png"
LR_FIND_SOURCE = "lr_find.json"


def _points(record: Any, key: str) -> tuple[list[float], list[float]]:
    """(rates, values) of the curve's points that have a finite ``key``."""
    curve = record.get("curve") if isinstance(record, dict) else None
    points = [(p.get("lr"), p.get(key)) for p in curve or [] if isinstance(p, dict)]
    kept = [(r, v) for r, v in points if isinstance(r, (int, float)) and isinstance(v, (int, float))
            and r > 0 and math.isfinite(v)]
    return [r for r, _ in kept], [v for _, v in kept]


def caption(record: Any) -> str:
    """One line: the rate the run took and how it was chosen."""
    if not isinstance(record, dict) or not isinstance(record.get("learning_rate"), (int, float)):
        return "Learning-rate range test"
    head = record.get("head_learning_rate")
    head_text = f", head {head:.3g}" if isinstance(head, (int, float)) else ""
    how = record.get("picked_by") or "picked"
    if record.get("fallback"):
        how = f"fallback: {record['fallback']}"
    return f"Learning-rate range test: chose {record['learning_rate']:.3g}{head_text} ({how})"


def draw_lr_find(fig: Any, record: Any) -> bool:
    """Draw the range test on ``fig``; False when ``record`` has no curve to draw."""
    rates, losses = _points(record, "loss")
    if not rates:
        return False
    ax = fig.add_subplot()
    ax.plot(rates, losses, color="tab:blue", alpha=0.45, marker=".", linewidth=1, label="loss per step")
    smooth_rates, smoothed = _points(record, "smoothed")
    if smooth_rates:
        ax.plot(smooth_rates, smoothed, color="tab:blue", linewidth=2, label="smoothed")
    chosen, minimum = record.get("learning_rate"), record.get("minimum_lr")
    if isinstance(minimum, (int, float)) and minimum > 0:
        ax.axvline(minimum, color="tab:gray", linestyle=":", label=f"smoothed minimum {minimum:.3g}")
    if isinstance(chosen, (int, float)) and chosen > 0:
        ax.axvline(chosen, color="tab:red", linestyle="--", label=f"chosen {chosen:.3g}")
    ax.set_xscale("log")
    ax.set(xlabel="learning rate (backbone)", ylabel="training loss", title="Learning-rate range test")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return True
