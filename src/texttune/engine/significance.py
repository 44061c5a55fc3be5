"""What a run writes about the uncertainty of its numbers: bootstrap intervals, paired tests, the rows' hash.

metrics.json gains, beside the flat metric sections (``baselines``, ``zero_shot``, ``fine_tuned``, ``test``, which
stay numbers only, so older readers keep working):

- ``evaluation_data``: per split scored (``validation``, ``test``) its row count and ``sha256`` content hash
  (data/fingerprint.py): ``texttune runs compare`` pairs two runs only on the same rows;
- ``bootstrap``: resamples, seed, confidence, what the p-value is (tasks/uncertainty.py);
- ``intervals``: ``{"zero_shot": {metric: {low, high}}, "baselines": {name: {...}}, "fine_tuned": {...}, "test": {...}}``;
- ``paired``: the fine-tuned model against ``zero_shot`` and each of ``baselines`` on the same validation rows,
  ``{metric: {difference, low, high, gain, p_value, significant}}``.

Baselines' per-row records go to ``predictions_baseline_<name>.jsonl`` (zero-shot's to predictions_zero_shot.jsonl)
so a resumed run, which does not rerun them, still pairs the final model with them.
"""

from __future__ import annotations

import logging
from typing import Any

from texttune.config import RunConfig
from texttune.data.fingerprint import rows_hash
from texttune.files import read_jsonl_records, write_jsonl
from texttune.metrics.bootstrap import intervals_of
from texttune.runs import RunDir
from texttune.tasks import uncertainty

log = logging.getLogger("texttune")

ZERO_SHOT_FILE = "predictions_zero_shot.jsonl"
TEST_FILE = "predictions_test.jsonl"


def baseline_file(run: RunDir, name: str) -> Any:
    """Where the baseline ``name``'s per-row records are kept."""
    return run.root / f"predictions_baseline_{name}.jsonl"


def split_baselines(found: dict[str, Any]) -> tuple[dict[str, dict[str, float]], dict[str, list[dict[str, Any]]]]:
    """A task's ``baselines(rows)`` as (metrics by name, records by name); a task still returning bare metrics
    (the contract before 2026-12-05) gives no records, and so no interval or paired test for its baselines."""
    metrics, records = {}, {}
    for name, value in found.items():
        if isinstance(value, tuple):
            metrics[name], records[name] = value
        else:
            metrics[name] = value
    return metrics, records


def data_section(run: RunDir, split: str, rows: Any) -> dict[str, Any]:
    """metrics.json ``evaluation_data`` with ``split``'s rows and hash added."""
    known = run.read_metrics().get("evaluation_data") or {}
    return {**known, split: {"rows": len(rows), "sha256": rows_hash(rows)}}


def record_baselines(run: RunDir, task: Any, *, config: RunConfig, rows: Any, zero_shot: list[dict[str, Any]],
                     baselines: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Write the baselines' records; metrics.json sections for the validation rows: hash, settings, intervals."""
    for name, records in baselines.items():
        write_jsonl(baseline_file(run, name), records)
    resamples, seed = config.train.bootstrap, config.train.seed
    sections: dict[str, Any] = {"evaluation_data": data_section(run, "validation", rows)}
    if not resamples or not uncertainty.supports(task):
        return sections
    found = {"zero_shot": uncertainty.task_intervals(task, zero_shot, resamples=resamples, seed=seed),
             "baselines": {name: uncertainty.task_intervals(task, records, resamples=resamples, seed=seed)
                           for name, records in baselines.items()}}
    return {**sections, "bootstrap": uncertainty.settings(task, resamples=resamples, seed=seed, rows=len(rows)),
            "intervals": {**(run.read_metrics().get("intervals") or {}), **found}}


def record_final(run: RunDir, task: Any, *, config: RunConfig, rows: Any,
                 predictions: list[dict[str, Any]]) -> dict[str, Any]:
    """metrics.json sections of the final evaluation: hash, the fine-tuned intervals, the paired tests against
    zero-shot and each baseline whose records the run kept."""
    resamples, seed = config.train.bootstrap, config.train.seed
    sections: dict[str, Any] = {"evaluation_data": data_section(run, "validation", rows)}
    if not resamples or not uncertainty.supports(task):
        return sections
    known = run.read_metrics()
    fine = uncertainty.resampled(task, predictions, resamples=resamples, seed=seed)  # scored once, used for each test

    def against(path: Any) -> dict[str, Any]:
        other = _records(path)
        if len(other) != len(predictions):  # missing, or of other rows: nothing to pair
            return {}
        return uncertainty.compared(fine, uncertainty.resampled(task, other, resamples=resamples, seed=seed))

    baselines = {name: against(baseline_file(run, name)) for name in known.get("baselines") or {}}
    paired = {key: value for key, value in (("zero_shot", against(run.root / ZERO_SHOT_FILE)),
                                            ("baselines", {k: v for k, v in baselines.items() if v})) if value}
    _log_paired(task, paired)
    intervals = {**(known.get("intervals") or {}), "fine_tuned": intervals_of(fine) if fine else {}}
    return {**sections, "bootstrap": uncertainty.settings(task, resamples=resamples, seed=seed, rows=len(rows)),
            "intervals": intervals, "paired": paired}


def record_test(run: RunDir, task: Any, *, config: RunConfig, rows: Any, metrics: dict[str, float],
                predictions: list[dict[str, Any]]) -> dict[str, Any]:
    """metrics.json sections of the test split: ``test`` (its metrics), its hash and intervals; predictions_test.jsonl."""
    write_jsonl(run.root / TEST_FILE, predictions)
    sections: dict[str, Any] = {"test": metrics, "evaluation_data": data_section(run, "test", rows)}
    found = uncertainty.task_intervals(task, predictions, resamples=config.train.bootstrap, seed=config.train.seed)
    if found:
        sections["intervals"] = {**(run.read_metrics().get("intervals") or {}), "test": found}
    return sections


def _records(path: Any) -> list[dict[str, Any]]:
    return read_jsonl_records(path) or []


def _log_paired(task: Any, paired: dict[str, Any]) -> None:
    """One log line per comparison of the main metric: the gain, its interval, p and whether it is significant."""
    main = task.main_metric
    against = [("zero-shot", paired.get("zero_shot") or {})]
    against += [(f"baseline {name}", found) for name, found in (paired.get("baselines") or {}).items()]
    for label, found in against:
        test = found.get(main)
        if test and "p_value" in test:
            log.info("fine-tuned vs %s: %s %+.2f [%.2f, %.2f], p=%.3f (%s)", label, main, test["difference"],
                     test["low"], test["high"], test["p_value"], "significant" if test["significant"] else "not significant")
