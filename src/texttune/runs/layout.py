"""The run directory: one place per run, readable without texttune.

::

    RUN_DIR/
      config.yaml          resolved options (feed back with --config to rerun)
      environment.json     versions, hardware, seed, git commit
      status.json          running / completed / failed, timings, the error if any
      data_stats.json      rows, token length distributions, truncation counts, labels per split
      data_report.json     data checks: duplicates, leaks, near-duplicates, conflicts, empty cells, lengths, task checks
      model_summary.json   architecture, parameters (total, trainable), size on disk
      batch_size.json      the --batch-size auto search: trials and the choice
      lr_find.json         the --learning-rate auto range test: the curve, the pick and why
      metrics.json         baselines, zero-shot, final (fine-tuned), test; bootstrap intervals, paired tests, the
                           evaluation rows' hash (docs/evaluation.md)
      evals.jsonl          one line per evaluation during training
      samples/             step-NNNNNN.jsonl: predictions at each evaluation
      predictions.jsonl    input, reference and prediction for the evaluated set
      predictions_zero_shot.jsonl, predictions_baseline_NAME.jsonl, predictions_test.jsonl: the same per row, for
                           the untrained model, each baseline and --test-file
      checkpoints/         Lightning checkpoints: best by the chosen metric, last
      logs/                metrics.csv per logging step (loss, lr, throughput); tensorboard/
      plots/               loss, learning rate, metric and length histograms (PNG)
      model/               save_pretrained model + tokenizer + texttune.json
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from texttune.errors import ConfigError
from texttune.files import read_json, write_json, write_text


@dataclass(frozen=True)
class RunDir:
    root: Path

    config = property(lambda self: self.root / "config.yaml")
    environment = property(lambda self: self.root / "environment.json")
    status = property(lambda self: self.root / "status.json")
    data_stats = property(lambda self: self.root / "data_stats.json")
    data_report = property(lambda self: self.root / "data_report.json")
    metrics = property(lambda self: self.root / "metrics.json")
    evals = property(lambda self: self.root / "evals.jsonl")
    predictions = property(lambda self: self.root / "predictions.jsonl")
    model_summary = property(lambda self: self.root / "model_summary.json")
    batch_search = property(lambda self: self.root / "batch_size.json")
    lr_find = property(lambda self: self.root / "lr_find.json")
    samples = property(lambda self: self.root / "samples")
    checkpoints = property(lambda self: self.root / "checkpoints")
    features = property(lambda self: self.root / "features")  # tokenized splits, memory-mapped Arrow
    logs = property(lambda self: self.root / "logs")
    model = property(lambda self: self.root / "model")

    def create(self, *, resume: bool) -> None:
        """Make the directory; refuse to overwrite someone's finished run by accident."""
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"output directory {self.root} is a file")
        if self.root.exists() and any(self.root.iterdir()) and not resume:
            raise ConfigError(
                f"output directory {self.root} already exists and is not empty; "
                "choose a new --output-dir, or pass --resume to continue that run"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        probe = self.root / ".write-test"
        try:
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"output directory {self.root} is not writable ({exc.strerror})") from None

    def write_config(self, flat: dict[str, Any]) -> None:
        """config.yaml: what the run is, not how this process was started (``resume`` is left out, so a
        ``--config`` rerun in a new directory starts afresh; ``--resume latest`` reads this file back)."""
        import yaml

        described = {k: v for k, v in flat.items() if k != "resume"}
        write_text(self.config, "# texttune run configuration (reuse with --config; "
                                "continue with --resume latest)\n" + yaml.safe_dump(described, sort_keys=False, allow_unicode=True))

    def set_status(self, state: str, **fields: Any) -> None:
        """Update status.json; the first call stamps ``started``, a final state ``finished`` and ``duration_s``."""
        current = read_json(self.status) if self.status.exists() else {}
        now = time.time()
        current.setdefault("started", time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)))
        current.setdefault("started_unix", round(now, 3))
        current.update(fields, state=state, updated=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)))
        if state in {"completed", "failed", "interrupted"}:
            current["finished"] = current["updated"]
            current["duration_s"] = round(now - current["started_unix"], 1)
        write_json(self.status, current)

    def read_metrics(self) -> dict[str, Any]:
        return read_json(self.metrics) if self.metrics.exists() else {}

    def update_metrics(self, **sections: Any) -> dict[str, Any]:
        metrics = self.read_metrics()
        metrics.update(sections)
        write_json(self.metrics, metrics)
        return metrics
