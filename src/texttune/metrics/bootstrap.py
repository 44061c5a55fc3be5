"""Bootstrap confidence intervals and paired bootstrap tests over evaluation rows (pure numpy; knows no task).

A metric computed on n evaluation rows is one draw of what the model would score on other
rows like them. Resampling the rows with replacement (``resamples`` times, seeded) and
scoring each resample gives the spread; the 2.5th and 97.5th percentiles are the 95%
interval (the percentile bootstrap).

Two ways to score a resample, chosen per metric:

- ``row_stats`` (fast): the metric is a function of sums of per-row statistics: a mean of
  per-row scores (ROUGE, EM/F1, accuracy: statistics ``[score, 1]``), perplexity
  (``[loss sum, tokens]``), corpus BLEU/chrF (sacreBLEU's n-gram counts). Rows are scored once;
  a resample is a sum of its rows' statistics, so 1,000 resamples cost one matrix product each.
- ``score`` (general): the scorer is called on every resample of the records (seqeval F1,
  macro-F1): exact for any corpus metric, ``resamples`` times the cost of scoring the set once.

The paired test scores two systems on the same resamples of the same rows. The gain is
A - B where higher is better (B - A where lower is); its p-value is one-sided: the share of
resamples where the gain is <= 0 (Koehn 2004's paired bootstrap), and ``significant`` says
p < ``alpha``. A system against itself has gain 0 on every resample: p = 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Scores a list of records (one per evaluation row): {metric: value}.
Scorer = Callable[[Sequence[Any]], Mapping[str, float]]
#: Where higher is better for a metric: True, False, or None (no direction: no test).
Direction = Callable[[str], "bool | None"]

DEFAULT_RESAMPLES = 1000
CONFIDENCE = 0.95
ALPHA = 0.05
#: Resampled row indices held in memory at once (resamples x rows), so 1,000 resamples of 1M rows stay small.
_CELLS = 2_000_000


@dataclass(frozen=True)
class Additive:
    """A metric that is a function of sums of per-row statistics.

    ``stats``: (rows, k) per-row statistics; ``finish``: (resamples, k) summed statistics -> (resamples,) values,
    the metric exactly as the scorer computes it on those rows.
    """

    stats: np.ndarray
    finish: Callable[[np.ndarray], np.ndarray]


#: Per-row statistics of some metrics of a list of records: {metric: Additive}.
RowStats = Callable[[Sequence[Any]], Mapping[str, Additive]]


def mean_of(values: Sequence[float], *, scale: float = 1.0, digits: int = 4) -> Additive:
    """The Additive of a metric that is ``scale`` x the mean of per-row ``values`` (rounded as scorers round)."""
    stats = np.column_stack([np.asarray(values, dtype=np.float64), np.ones(len(values))])
    return Additive(stats, lambda s: np.round(scale * s[:, 0] / np.maximum(s[:, 1], 1), digits))


def resample_indices(rows: int, *, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """The row indices of each resample, in blocks of shape (block, rows); the same for the same seed."""
    if rows < 1:
        raise ValueError(f"cannot resample {rows} rows: the bootstrap needs at least one evaluation row")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    rng = np.random.default_rng(seed)
    block = max(1, _CELLS // rows)
    for start in range(0, resamples, block):
        yield rng.integers(0, rows, size=(min(block, resamples - start), rows))


@dataclass(frozen=True)
class Resampled:
    """One system's metrics on all rows (``point``) and on every resample (``values``: {metric: (resamples,)})."""

    point: dict[str, float]
    values: dict[str, np.ndarray]


def resample(records: Sequence[Any], *, score: Scorer, row_stats: RowStats | None = None,
             resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Resampled:
    """Score ``records`` and every resample of them: each metric ``score`` reports.

    Metrics ``row_stats`` covers are summed from per-row statistics; ``score`` is called on the resampled records
    only when some metric is left (then once per resample).
    """
    records = list(records)
    point = {k: float(v) for k, v in score(records).items() if _is_number(v)}
    fast = {k: v for k, v in (row_stats(records) if row_stats else {}).items() if k in point}
    slow = [k for k in point if k not in fast]
    out: dict[str, list[np.ndarray]] = {k: [] for k in point}
    for block in resample_indices(len(records), resamples=resamples, seed=seed):
        counts = _counts(block, len(records))  # (block, rows): how often each row is drawn
        summed: dict[int, np.ndarray] = {}  # metrics often share one statistics array: summed once
        for name, additive in fast.items():
            if id(additive.stats) not in summed:
                summed[id(additive.stats)] = counts @ additive.stats  # (block, k)
            out[name].append(np.asarray(additive.finish(summed[id(additive.stats)]), dtype=np.float64))
        if slow:
            scored = [score([records[i] for i in row]) for row in block]
            for name in slow:
                out[name].append(np.array([_number(s.get(name)) for s in scored], dtype=np.float64))
    return Resampled(point, {k: np.concatenate(v) for k, v in out.items()})


def resampled_values(records: Sequence[Any], *, score: Scorer, row_stats: RowStats | None = None,
                     resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, np.ndarray]:
    """{metric: (resamples,) values} of :func:`resample`."""
    return resample(records, score=score, row_stats=row_stats, resamples=resamples, seed=seed).values


def interval_of(values: np.ndarray, *, confidence: float = CONFIDENCE) -> dict[str, float] | None:
    """{"low", "high"}: the percentile interval of resampled values (None when every resample failed to score)."""
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return {"low": round(float(low), 4), "high": round(float(high), 4)}


def intervals_of(found: Resampled, *, confidence: float = CONFIDENCE) -> dict[str, dict[str, float]]:
    """{metric: {"low", "high"}} of one system's resamples."""
    bounds = {name: interval_of(v, confidence=confidence) for name, v in found.values.items()}
    return {name: b for name, b in bounds.items() if b is not None}


def intervals(records: Sequence[Any], *, score: Scorer, row_stats: RowStats | None = None,
              resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
              confidence: float = CONFIDENCE) -> dict[str, dict[str, float]]:
    """{metric: {"low", "high"}}: the ``confidence`` bootstrap interval of every metric ``score`` reports."""
    return intervals_of(resample(records, score=score, row_stats=row_stats, resamples=resamples, seed=seed),
                        confidence=confidence)


def paired(a: Resampled, b: Resampled, *, direction: Direction, confidence: float = CONFIDENCE,
           alpha: float = ALPHA) -> dict[str, dict[str, Any]]:
    """System A against system B, resampled with the same seed on the same rows (see :func:`paired_test`)."""
    out: dict[str, dict[str, Any]] = {}
    for name in (n for n in a.values if n in b.values and len(a.values[n]) == len(b.values[n])):
        difference = a.values[name] - b.values[name]
        bounds = interval_of(difference, confidence=confidence)
        if bounds is None:
            continue
        entry: dict[str, Any] = {"difference": round(a.point[name] - b.point[name], 4), **bounds}
        higher = direction(name)
        if higher is not None:
            gains = (difference if higher else -difference)[np.isfinite(difference)]
            p_value = float(np.mean(gains <= 0))
            entry.update(gain=entry["difference"] if higher else -entry["difference"], p_value=round(p_value, 4),
                         significant=bool(p_value < alpha))
        out[name] = entry
    return out


def paired_test(records_a: Sequence[Any], records_b: Sequence[Any], *, score: Scorer, direction: Direction,
                row_stats: RowStats | None = None, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                confidence: float = CONFIDENCE, alpha: float = ALPHA) -> dict[str, dict[str, Any]]:
    """System A against system B on the same rows (``records_a[i]`` and ``records_b[i]`` score the same row).

    Per metric both report: ``difference`` (A - B on all rows), its interval ``low``/``high``, and for metrics with a
    direction ``gain`` (the difference signed so that positive is better for A), ``p_value`` (one-sided: the share
    of resamples where the gain is <= 0) and ``significant`` (p_value < ``alpha``).
    """
    if len(records_a) != len(records_b):
        raise ValueError(f"a paired test needs the same rows: got {len(records_a)} and {len(records_b)} records")
    a = resample(records_a, score=score, row_stats=row_stats, resamples=resamples, seed=seed)
    b = resample(records_b, score=score, row_stats=row_stats, resamples=resamples, seed=seed)
    return paired(a, b, direction=direction, confidence=confidence, alpha=alpha)


def _counts(block: np.ndarray, rows: int) -> np.ndarray:
    """(resamples, rows) draw counts of each row in each resample of ``block`` (resamples, rows) indices."""
    offsets = block + rows * np.arange(len(block))[:, None]
    return np.bincount(offsets.ravel(), minlength=len(block) * rows).reshape(len(block), rows).astype(np.float64)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any) -> float:
    return float(value) if _is_number(value) else float("nan")
