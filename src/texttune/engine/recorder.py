"""The recorder: everything the recipe writes into the run directory, as soon as it is known.

``fit`` creates one recorder and calls it at each step: the run's configuration and
environment before anything else, the model summary once the weights are loaded,
data statistics before training, baselines, every evaluation, and the final state
(completed, interrupted or failed). A run that dies half-way therefore still tells
what it was, what data it saw and what it had measured.

Every process of a distributed run executes the recipe, but only rank 0 writes the
run directory: :func:`recorder_for` gives the other ranks a :class:`NullRecorder`,
whose methods do nothing, so the recipe never asks which rank it runs on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from texttune.backbones.adapters import parameter_counts
from texttune.config import RunConfig
from texttune.data import Table
from texttune.engine import significance
from texttune.engine.preflight import check_free_space, check_writable
from texttune.files import append_jsonl, read_json, write_json, write_jsonl
from texttune.runs import RunDir
from texttune.runs.environment import environment
from texttune.runs.model_card import write_model_card
from texttune.runs.plots import write_plots
from texttune.runs.records import directory_size, feature_lengths, model_summary

log = logging.getLogger("texttune")

#: A split's record: (source name, its features, the task's statistics of its encoding).
Split = tuple[str, Any, dict[str, Any]]


class RunRecorder:
    """Rank 0's recorder: writes the run directory."""

    writes = True  # False on the NullRecorder: this process leaves shared files (feature cache, batch size) to rank 0

    def __init__(self, run: RunDir, *, samples: int) -> None:
        self.run = run
        self.samples = samples  # predictions kept per evaluation in samples/ (--samples-per-eval)
        self._config: dict[str, Any] = {}  # config.yaml as written
        self._data_report: dict[str, Any] = {}  # data_report.json as written

    def start(self, config: RunConfig, *, task: str, backbone: str, main_metric: str) -> None:
        """Check the run directory can take the run, then write config.yaml, environment.json, status "running"."""
        from texttune.engine.checkpoint_io import remove_stale_temp_files

        run = self.run
        check_writable(run.root)
        run.create(resume=config.train.resume is not None)
        check_writable(run.checkpoints)
        remove_stale_temp_files(run.checkpoints)  # left by a write the last process was killed in
        self._config = config.flat()
        run.write_config(self._config)
        write_json(run.environment, environment(seed=config.train.seed))
        run.set_status("running", task=task, backbone=backbone, main_metric=main_metric)

    def chosen(self, config: RunConfig, *, keys: tuple[str, ...] = ("learning_rate", "head_learning_rate")) -> None:
        """config.yaml again, with the values the run chose for ``keys`` (``--learning-rate auto``: the numbers, so
        ``--config config.yaml`` reruns them and ``--resume`` reuses them); the other options stay as given."""
        flat = config.flat()
        self._config = {**self._config, **{key: flat[key] for key in keys}}
        self.run.write_config(self._config)

    def model(self, model: Any, *, family: str, extra: dict[str, Any], runtime: dict[str, Any] | None = None) -> None:
        """model_summary.json (architecture, parameters, attention, ``extra`` such as the LoRA settings), the parameter
        counts in metrics.json, ``runtime`` (training device, attention implementation and why) added to
        environment.json, and a check that the disk can hold the checkpoints of this model."""
        write_json(self.run.model_summary, {**model_summary(model, family=family), **extra})
        if runtime:
            known = read_json(self.run.environment) if self.run.environment.exists() else {}
            write_json(self.run.environment, {**known, **runtime})
        self.run.update_metrics(parameters=parameter_counts(model))  # what the optimizer updates, of how many
        check_free_space(self.run.checkpoints, model=model)

    def data(self, splits: dict[str, Split], *, learned: dict[str, Any]) -> None:
        """data_stats.json: per split rows, lengths, truncation, and what the task learned (e.g. labels); the task's
        "scoring" (how its metrics are computed: tokenizers, sacreBLEU's signature) goes to metrics.json instead."""
        learned = dict(learned)
        scoring = learned.pop("scoring", None)
        if scoring:  # strings beside the numeric sections, which stay numbers only
            self.run.update_metrics(scoring=scoring)
        stats: dict[str, Any] = {}
        for split, (source, features, task_stats) in splits.items():
            stats[split] = {"source": source, **task_stats, "lengths": feature_lengths(features)}
            cut = {k: v for k, v in task_stats.items() if k.endswith("_truncated") and v}
            if cut:  # e.g. {"inputs_truncated": 9}: say so, since truncation silently changes the task
                log.warning("%s: %s of %d rows were truncated (see data_stats.json; raise the max length options to "
                            "keep more)", split, ", ".join(f"{k.replace('_truncated', '')}: {v}" for k, v in cut.items()),
                            task_stats["rows"])
        write_json(self.run.data_stats, {**stats, "learned": learned})
        if self._data_report:  # the truncation rates at the run's max lengths join the data checks
            truncation = {split: {k: {"count": v, "rate": round(v / max(s.get("rows") or 1, 1), 6)}
                                  for k, v in s.items() if k.endswith("_truncated")} for split, (_, _, s) in splits.items()}
            self.data_report({**self._data_report, "truncation": truncation})

    def data_report(self, report: dict[str, Any]) -> None:
        """data_report.json: the data checks of the splits as used (data/checks.py), before training."""
        self._data_report = report
        write_json(self.run.data_report, report)

    def loss_mask(self, found: dict[str, Any]) -> None:
        """The loss-mask audit (tasks/loss_mask.py) joins data_report.json as ``loss_mask``."""
        self.data_report({**(self._data_report or {}), "loss_mask": found})

    def wants_baselines(self, config: RunConfig) -> bool:
        """Whether :meth:`baselines` will evaluate: asked for, and not already recorded (a resumed run keeps its own)."""
        return config.train.baselines and "zero_shot" not in self.run.read_metrics()

    def baselines(self, task: Any, model: Any, val: Table, config: RunConfig) -> None:
        """Model-free baselines and the untrained (zero-shot) model on the validation rows, into metrics.json
        (once: a resumed run keeps those it has)."""
        if not self.wants_baselines(config):
            return
        baselines, baseline_records = significance.split_baselines(task.baselines(val.rows))
        log.info("baselines: %s", baselines)
        zero_shot, predictions = task.evaluate(model, val.rows, generation=config.generation)
        log.info("zero-shot: %s", zero_shot)
        write_jsonl(self.run.root / significance.ZERO_SHOT_FILE, predictions)
        sections = significance.record_baselines(self.run, task, config=config, rows=val.rows, zero_shot=predictions,
                                                 baselines=baseline_records)  # intervals, the rows' hash
        self.run.update_metrics(baselines=baselines, zero_shot=zero_shot, **sections)

    def evaluation(self, step: int, metrics: dict[str, float], predictions: list[dict[str, Any]]) -> None:
        """The module's ``on_evaluation`` callback: a line of evals.jsonl, and samples/step-NNNNNN.jsonl."""
        append_jsonl(self.run.evals, {"step": step, **metrics})
        if self.samples:
            write_jsonl(self.run.samples / f"step-{step:06d}.jsonl", predictions[:self.samples])

    def interrupted(self) -> None:
        """Ctrl-C: status "interrupted", naming the checkpoint ``--resume latest`` continues from."""
        self.run.set_status("interrupted", checkpoint=str(self.run.checkpoints / "last.ckpt"))

    def failed(self, exc: BaseException) -> None:
        """Status "failed" with the error (an interrupted run keeps its status), and plots of what was measured."""
        status = self.run.status
        if not status.exists() or '"interrupted"' not in status.read_text():
            self.run.set_status("failed", error=f"{type(exc).__name__}: {exc}")
        self.plots()

    def final_evaluation(self, predictions: list[dict[str, Any]], *, task: Any, config: RunConfig, rows: Any) -> None:
        """predictions.jsonl: the best weights' predictions on the validation ``rows``; in metrics.json their hash,
        the fine-tuned intervals and the paired tests against zero-shot and the baselines (engine/significance.py)."""
        write_jsonl(self.run.predictions, predictions)
        self.run.update_metrics(**significance.record_final(self.run, task, config=config, rows=rows,
                                                            predictions=predictions))

    def test_evaluation(self, metrics: dict[str, float], predictions: list[dict[str, Any]], *, task: Any,
                        config: RunConfig, rows: Any) -> None:
        """``--test-file``: metrics.json "test" (with its intervals and hash) and predictions_test.jsonl."""
        log.info("test: %s", metrics)
        self.run.update_metrics(**significance.record_test(self.run, task, config=config, rows=rows, metrics=metrics,
                                                           predictions=predictions))

    def completed(self, model_dir: Path, *, fine_tuned: dict[str, Any], best_checkpoint: str | None, steps: int,
                  timing: dict[str, Any], memory: dict[str, Any]) -> dict[str, Any]:
        """The saved model's size, the final sections of metrics.json (``memory``: peak RSS and GPU memory),
        status "completed" and the plots; returns the whole of metrics.json."""
        summary = read_json(self.run.model_summary) if self.run.model_summary.exists() else {}
        write_json(self.run.model_summary, {**summary, "size_on_disk_bytes": directory_size(model_dir)})
        all_metrics = self.run.update_metrics(fine_tuned=fine_tuned, best_checkpoint=best_checkpoint, steps=steps,
                                              timing=timing, memory=memory)
        self.run.set_status("completed", steps=steps)
        self.plots()
        return all_metrics

    def model_card(self, model_dir: Path, *, pipeline_tag: str | None) -> None:
        """model/README.md from the run's metadata, config and metrics (runs/model_card.py)."""
        write_model_card(model_dir, pipeline_tag=pipeline_tag, run_root=self.run.root)
        log.info("model card: %s", model_dir / "README.md")

    def plots(self) -> None:
        """PNG plots from the run's files. Never fails a run: a plotting problem is logged and skipped."""
        try:
            written = write_plots(self.run.root)
        except Exception as exc:  # noqa: BLE001 - pictures are a convenience, the run's data is already safe
            log.warning("could not draw the plots (%s: %s); `texttune report %s` retries", type(exc).__name__, exc,
                        self.run.root)
            return
        if written:
            log.info("plots: %s", ", ".join(p.name for p in written))


class NullRecorder(RunRecorder):
    """Any rank but 0: the same calls, nothing written (rank 0 records the run for every process)."""

    writes = False

    def start(self, config: RunConfig, *, task: str, backbone: str, main_metric: str) -> None:
        pass

    def chosen(self, config: RunConfig, *, keys: tuple[str, ...] = ("learning_rate", "head_learning_rate")) -> None:
        pass

    def model(self, model: Any, *, family: str, extra: dict[str, Any], runtime: dict[str, Any] | None = None) -> None:
        pass

    def data(self, splits: dict[str, Split], *, learned: dict[str, Any]) -> None:
        pass

    def data_report(self, report: dict[str, Any]) -> None:
        pass

    def wants_baselines(self, config: RunConfig) -> bool:
        return False

    def baselines(self, task: Any, model: Any, val: Table, config: RunConfig) -> None:
        pass

    def evaluation(self, step: int, metrics: dict[str, float], predictions: list[dict[str, Any]]) -> None:
        pass

    def interrupted(self) -> None:
        pass

    def failed(self, exc: BaseException) -> None:
        pass

    def final_evaluation(self, predictions: list[dict[str, Any]], *, task: Any, config: RunConfig, rows: Any) -> None:
        pass

    def test_evaluation(self, metrics: dict[str, float], predictions: list[dict[str, Any]], *, task: Any,
                        config: RunConfig, rows: Any) -> None:
        pass

    def completed(self, model_dir: Path, *, fine_tuned: dict[str, Any], best_checkpoint: str | None, steps: int,
                  timing: dict[str, Any], memory: dict[str, Any]) -> dict[str, Any]:
        return {}

    def model_card(self, model_dir: Path, *, pipeline_tag: str | None) -> None:
        pass

    def plots(self) -> None:
        pass


def recorder_for(run: RunDir, *, rank: int, samples: int) -> RunRecorder:
    """The recorder of the process with this global ``rank``: a writing one on rank 0 only."""
    return RunRecorder(run, samples=samples) if rank == 0 else NullRecorder(run, samples=samples)
