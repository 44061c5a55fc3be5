"""Reading metrics.json's bootstrap sections for display: a value with its interval, significant gains marked.

metrics.json keeps the flat sections (``baselines``, ``zero_shot``, ``fine_tuned``, ``test``) as numbers and puts
the uncertainty beside them (engine/significance.py): ``intervals[section][metric]`` (``intervals["baselines"][name]
[metric]`` for a baseline) and ``paired[against][metric]`` for the fine-tuned model against ``zero_shot`` or
``baselines[name]``. A metrics.json written before them has neither: every function here then shows the value alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: The mark of a fine-tuned value whose gain over zero-shot and every baseline is significant.
MARK = "*"
FOOTNOTE = (f"[low, high]: 95% bootstrap interval over the evaluation rows; {MARK} significant gain over zero-shot and "
            "every baseline (paired bootstrap, one-sided p < 0.05)")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def interval(metrics: dict[str, Any], section: str, name: str, *, baseline: str | None = None) -> tuple[float, float] | None:
    """(low, high) of metric ``name`` in ``section`` ("zero_shot", "fine_tuned", "test", or "baselines" with
    ``baseline``), or None when not recorded."""
    found = metrics.get("intervals") if isinstance(metrics, dict) else None
    found = found.get(section) if isinstance(found, dict) else None
    if baseline is not None:
        found = found.get(baseline) if isinstance(found, dict) else None
    bounds = found.get(name) if isinstance(found, dict) else None
    if not isinstance(bounds, dict):
        return None
    low, high = _number(bounds.get("low")), _number(bounds.get("high"))
    return None if low is None or high is None else (low, high)


def with_interval(value: Any, bounds: tuple[float, float] | None, *, digits: int = 2,
                  number: Callable[[float], str] | None = None) -> str:
    """``42.30 [40.10, 44.50]``; the value alone without an interval; ``-`` without a value. ``number`` formats each
    number (default: ``digits`` decimals)."""
    show = number or (lambda v: f"{v:.{digits}f}")
    value = _number(value)
    if value is None:
        return "-"
    return show(value) if bounds is None else f"{show(value)} [{show(bounds[0])}, {show(bounds[1])}]"


def value_cell(metrics: dict[str, Any], section: str, values: dict[str, Any], name: str, *,
               baseline: str | None = None, number: Callable[[float], str] | None = None) -> str:
    """One value of ``section`` with its interval; a fine-tuned one marked when its gain is significant everywhere."""
    if name not in values:
        return "-"
    text = with_interval(values[name], interval(metrics, section, name, baseline=baseline), number=number)
    return text + (MARK if section == "fine_tuned" and significant_everywhere(metrics, name) else "")


def tests_of(metrics: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, {metric: test}) of each paired test of the fine-tuned model: zero-shot first, then the baselines."""
    paired = metrics.get("paired") if isinstance(metrics, dict) else None
    if not isinstance(paired, dict):
        return []
    found = [("zero-shot", paired["zero_shot"])] if isinstance(paired.get("zero_shot"), dict) else []
    found += [(f"baseline {name}", tests) for name, tests in (paired.get("baselines") or {}).items() if isinstance(tests, dict)]
    return found


def significant_everywhere(metrics: dict[str, Any], name: str) -> bool:
    """Whether the fine-tuned ``name`` is a significant gain over zero-shot and every baseline it was tested against."""
    tests = [found.get(name) for _, found in tests_of(metrics)]
    return bool(tests) and all(isinstance(t, dict) and t.get("significant") is True for t in tests)


def paired_note(metrics: dict[str, Any], name: str) -> str:
    """`` [1.20, 3.40], p = 0.004, significant``: the paired test of fine-tuned vs zero-shot on ``name``, or ""."""
    found = (metrics.get("paired") or {}).get("zero_shot") if isinstance(metrics, dict) else None
    test = found.get(name) if isinstance(found, dict) else None
    if not isinstance(test, dict) or "low" not in test:
        return ""
    verdict = "" if "p_value" not in test else (f", p = {test['p_value']:.3f}, "
                                                + ("significant" if test.get("significant") else "not significant"))
    return f" [{test['low']:.2f}, {test['high']:.2f}]{verdict}"


def paired_lines(metrics: dict[str, Any], names: list[str]) -> list[str]:
    """``fine-tuned vs zero-shot: rougeL +12.30 [10.10, 14.50], p = 0.000, significant`` per test and metric with a
    direction, for ``names``."""
    lines = []
    for label, found in tests_of(metrics):
        for name in names:
            test = found.get(name)
            if isinstance(test, dict) and "p_value" in test:
                verdict = "significant" if test.get("significant") else "not significant"
                lines.append(f"fine-tuned vs {label}: {name} {test['difference']:+.2f} [{test['low']:.2f}, "
                             f"{test['high']:.2f}], p = {test['p_value']:.3f}, {verdict}")
    return lines
