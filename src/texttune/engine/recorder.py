"""What the recipe writes into the run directory besides checkpoints and metrics.

Each record is written as soon as it is known (data statistics before training,
the model summary once the weights are loaded, samples at each evaluation), so
a run that crashes half-way still describes itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from texttune.runs import RunDir
from texttune.runs.files import append_jsonl, read_json, write_json, write_jsonl
from texttune.runs.records import directory_size, feature_lengths, model_summary

log = logging.getLogger("texttune")


def record_data(run: RunDir, *, splits: dict[str, tuple[str, Any, dict[str, Any]]], learned: dict[str, Any]) -> None:
    """data_stats.json: per split (name -> (source, features, task stats)) rows, lengths, truncation, labels."""
    stats: dict[str, Any] = {}
    for split, (source, features, task_stats) in splits.items():
        stats[split] = {"source": source, **task_stats, "lengths": feature_lengths(features)}
        cut = {k: v for k, v in task_stats.items() if k.endswith("_truncated") and v}
        if cut:  # e.g. {"inputs_truncated": 9}: say so, since truncation silently changes the task
            log.warning("%s: %s of %d rows were truncated (see data_stats.json; raise the max length options to keep more)",
                        split, ", ".join(f"{k.replace('_truncated', '')}: {v}" for k, v in cut.items()), task_stats["rows"])
    write_json(run.data_stats, {**stats, "learned": learned})


def record_model(run: RunDir, model: Any, *, family: str, extra: dict[str, Any] | None = None) -> None:
    """model_summary.json: architecture, parameters (trainable ones too), and ``extra`` (e.g. the LoRA settings)."""
    write_json(run.model_summary, {**model_summary(model, family=family), **(extra or {})})


def evaluation_recorder(run: RunDir, *, samples: int) -> Callable[[int, dict[str, float], list[dict[str, Any]]], None]:
    """The callback the module calls after each evaluation: evals.jsonl plus samples/step-NNNNNN.jsonl."""
    def record(step: int, metrics: dict[str, float], predictions: list[dict[str, Any]]) -> None:
        append_jsonl(run.evals, {"step": step, **metrics})
        if samples:
            write_jsonl(run.samples / f"step-{step:06d}.jsonl", predictions[:samples])

    return record


def record_saved_model(run: RunDir, model_dir: Path) -> None:
    """Add the saved model's size to model_summary.json."""
    summary = read_json(run.model_summary) if run.model_summary.exists() else {}
    write_json(run.model_summary, {**summary, "size_on_disk_bytes": directory_size(model_dir)})


def record_plots(run: RunDir) -> None:
    """PNG plots from the run's files. Never fails a run: a plotting problem is logged and skipped."""
    try:
        from texttune.runs.plots import write_plots

        written = write_plots(run.root)
    except Exception as exc:  # noqa: BLE001 - pictures are a convenience, the run's data is already safe
        log.warning("could not draw the plots (%s: %s); `texttune report %s` retries", type(exc).__name__, exc, run.root)
        return
    if written:
        log.info("plots: %s", ", ".join(p.name for p in written))
