"""The paired bootstrap test between two runs scored on the same rows (``texttune runs compare A B``).

Each run records, at evaluation time, the row count and content hash of its validation rows
(metrics.json ``evaluation_data.validation``) and keeps its per-row predictions (predictions.jsonl).
Two runs are paired only when the hashes match: the same rows in the same order, so row i of one
run's predictions and row i of the other's score the same example. Different rows are refused
(a ConfigError: one line, exit 2); a run without a hash (recorded before 2026-12-05) cannot be paired.

Scoring needs the task (how a set of records becomes metrics): the caller passes ``task_of(run)``,
the run's task restored from its saved model, so this package stays free of task code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from texttune.errors import ConfigError
from texttune.files import read_jsonl_records
from texttune.metrics.bootstrap import DEFAULT_RESAMPLES, paired_test
from texttune.metrics.registry import higher_is_better
from texttune.runs.catalog import read_metrics
from texttune.runs.layout import RunDir


@dataclass(frozen=True)
class PairedRuns:
    """Run ``labels[0]`` against run ``labels[1]`` on ``rows`` shared validation rows: per metric, the test."""

    labels: tuple[str, str]
    rows: int
    sha256: str
    resamples: int
    seed: int
    tests: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.labels[0], "b": self.labels[1], "rows": self.rows, "sha256": self.sha256,
                "resamples": self.resamples, "seed": self.seed,
                "p_value": "one-sided: the share of resamples where the gain of a over b is <= 0", "tests": self.tests}


def evaluation_hash(path: Path) -> tuple[int, str] | None:
    """(rows, sha256) of a run's validation rows as recorded in its metrics.json, or None."""
    found = (read_metrics(path).get("evaluation_data") or {}).get("validation")
    if not isinstance(found, dict) or not isinstance(found.get("sha256"), str):
        return None
    return int(found.get("rows") or 0), found["sha256"]


def pair_runs(paths: tuple[Path, Path], labels: tuple[str, str], *,
              task_of: Callable[[Path], Any]) -> tuple[PairedRuns | None, str | None]:
    """(the paired test, None), or (None, why there is none); raises ConfigError when the rows differ."""
    hashes = [evaluation_hash(p) for p in paths]
    for label, found in zip(labels, hashes):
        if found is None:
            return None, (f"no paired test: {label} records no hash of its evaluation rows (metrics.json "
                          "evaluation_data; runs before texttune 2026-12-05, or not finished)")
    (rows_a, hash_a), (rows_b, hash_b) = hashes  # type: ignore[misc]
    if hash_a != hash_b:
        raise ConfigError(f"{labels[0]} and {labels[1]} were evaluated on different rows ({rows_a} rows {hash_a[:19]}... vs "
                          f"{rows_b} rows {hash_b[:19]}...): a paired test needs the same rows; pass --unpaired to "
                          "compare them without it")
    records = [read_jsonl_records(RunDir(p).predictions) or [] for p in paths]
    for label, found in zip(labels, records):
        if len(found) != rows_a:
            return None, f"no paired test: {label}'s predictions.jsonl has {len(found)} rows, not the {rows_a} evaluated"
    task = task_of(paths[0])
    if not callable(getattr(task, "score_records", None)):
        return None, f"no paired test: task {getattr(task, 'name', '?')} cannot rescore its records"
    settings = read_metrics(paths[0]).get("bootstrap") or {}
    resamples, seed = int(settings.get("resamples") or DEFAULT_RESAMPLES), int(settings.get("seed") or 0)
    tests = paired_test(records[0], records[1], score=task.score_records, direction=higher_is_better,
                        row_stats=getattr(task, "row_statistics", None), resamples=resamples, seed=seed)
    return PairedRuns(labels, rows_a, hash_a, resamples, seed, tests), None


def format_paired(paired: PairedRuns, *, names: list[str]) -> list[str]:
    """The text block of ``texttune runs compare``: one line per metric with a direction, in ``names`` order."""
    a, b = paired.labels
    out = [f"paired bootstrap, {a} - {b} on the same {paired.rows} validation rows ({paired.resamples} resamples, "
           f"seed {paired.seed}; p one-sided: share of resamples where {a} is not better):"]
    for name in (n for n in names if n in paired.tests):
        test = paired.tests[name]
        verdict = "" if "p_value" not in test else (f", p = {test['p_value']:.3f}, "
                                                    + ("significant" if test["significant"] else "not significant"))
        out.append(f"  {name}: {test['difference']:+.2f} [{test['low']:.2f}, {test['high']:.2f}]{verdict}")
    return out
