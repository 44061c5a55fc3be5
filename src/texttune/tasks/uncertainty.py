"""A task's evaluation records -> bootstrap intervals and paired tests (metrics/bootstrap.py does the statistics).

The task gives what only it knows: ``score_records`` (its metrics of a list of evaluation records) and, where
its metrics are sums over rows, ``row_statistics`` (the fast path: rows scored once, then resampled). A task
without ``score_records`` gets no intervals (said once in the log), never wrong ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from texttune.metrics.bootstrap import ALPHA, CONFIDENCE, Resampled, intervals_of, paired, resample
from texttune.metrics.registry import higher_is_better

log = logging.getLogger("texttune")

#: What metrics.json "bootstrap" says the p-value is.
P_VALUE = "one-sided: the share of resamples where the gain is <= 0"


def supports(task: Any) -> bool:
    """Whether the task can rescore a resample of its records (``score_records``)."""
    return callable(getattr(task, "score_records", None))


def settings(task: Any, *, resamples: int, seed: int, rows: int) -> dict[str, Any]:
    """metrics.json "bootstrap": how the intervals and tests were computed (and the main metric, which tables test)."""
    return {"resamples": resamples, "seed": seed, "rows": rows, "confidence": CONFIDENCE, "alpha": ALPHA,
            "main_metric": task.main_metric,
            "method": "percentile bootstrap over evaluation rows", "p_value": P_VALUE}


def resampled(task: Any, records: Sequence[dict[str, Any]], *, resamples: int, seed: int) -> Resampled | None:
    """The task's metrics on ``records`` and on every resample of them (None when off or not possible): score a
    system once, then take its intervals and its paired tests against others from it."""
    if not resamples or not records or not supports(task):
        return None
    return resample(records, score=task.score_records, row_stats=getattr(task, "row_statistics", None),
                    resamples=resamples, seed=seed)


def task_intervals(task: Any, records: Sequence[dict[str, Any]], *, resamples: int,
                   seed: int) -> dict[str, dict[str, float]]:
    """{metric: {"low", "high"}} of every metric ``task.score_records`` reports on ``records`` ({} when off)."""
    found = resampled(task, records, resamples=resamples, seed=seed)
    return {} if found is None else intervals_of(found)


def compared(a: Resampled | None, b: Resampled | None) -> dict[str, dict[str, Any]]:
    """System A against B resampled on the same rows with the same seed (metrics/bootstrap.paired); {} without both."""
    if a is None or b is None:
        return {}
    return paired(a, b, direction=higher_is_better)
