"""A read-only or too-small output directory is refused before training; a disk that fills up mid-run is a clear error.

The real read-only file system and the real full disk are tiny tmpfs mounts (root
with CAP_SYS_ADMIN, as in CI containers); elsewhere the read-only case uses chmod
and the mid-run case skips. The free-space check is driven through a patched
``shutil.disk_usage``: no test machine has a disk small enough.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

from texttune.engine import finetune, preflight

DATA = Path(__file__).resolve().parents[1] / "data"


def _train_args(tiny: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "summarization", "--train-file", str(DATA / "summarization.jsonl"),
            "--validation-file", str(DATA / "summarization-val.jsonl"), "--backbone", str(tiny),
            "--max-steps", "4", "--checkpoint-every-steps", "1", "--batch-size", "4", "--max-eval-samples", "4",
            "--max-new-tokens", "4", "--no-baselines", "--no-progress-bar", "--no-tensorboard",
            "--max-source-length", "64", "--max-target-length", "16", "--output-dir", str(out), *extra]


def test_read_only_output_directory_fails_before_anything_runs(tiny_model_dir, cli, tmp_path: Path, tmpfs) -> None:
    if os.geteuid() == 0:  # root ignores chmod: use a read-only file system
        locked = tmpfs("1m", read_only=True)
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
    try:
        code, _, err = cli(*_train_args(tiny_model_dir("llama"), locked / "run"))
    finally:
        if os.geteuid() != 0:
            locked.chmod(0o700)
    assert code == 2
    assert f"output directory {locked / 'run'} is not writable" in err and "Traceback" not in err


def test_too_little_free_space_fails_before_training(tiny_model_dir, cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: SimpleNamespace(total=10**9, used=10**9 - 5000, free=5000))
    run = tmp_path / "run"
    code, _, err = cli(*_train_args(tiny_model_dir("llama"), run))
    assert code == 2 and "Traceback" not in err
    assert f"not enough free space for checkpoints in {run / 'checkpoints'}" in err
    assert "5,000 bytes) free" in err and "bytes) needed" in err
    assert json.loads((run / "status.json").read_text())["state"] == "failed"
    assert not list((run / "checkpoints").iterdir()) and not (run / "logs").exists()  # training never started


class _FillDiskAt(Callback):
    """Fills the run's disk after optimizer step ``step``, leaving ``spare`` bytes: the next checkpoint cannot fit."""

    def __init__(self, step: int, filler: Path, spare: int) -> None:
        self.step, self.filler, self.spare = step, filler, spare

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step and not self.filler.exists():
            size = shutil.disk_usage(self.filler.parent).free - self.spare
            with open(self.filler, "wb") as handle:
                for start in range(0, size, 1 << 20):
                    handle.write(b"\0" * min(1 << 20, size - start))


def test_disk_full_during_training_keeps_the_last_checkpoint_and_resumes(tiny_model_dir, cli, tmpfs, monkeypatch) -> None:
    disk = tmpfs("64m")
    run, filler = disk / "run", disk / "filler"
    real_trainer = finetune._trainer

    def trainer_that_fills_the_disk(*args: Any, **kwargs: Any) -> Any:
        trainer = real_trainer(*args, **kwargs)
        trainer.callbacks.append(_FillDiskAt(2, filler, spare=64 * 1024))
        return trainer

    monkeypatch.setattr(finetune, "_trainer", trainer_that_fills_the_disk)
    code, _, err = cli(*_train_args(tiny_model_dir("llama"), run))
    assert code == 2 and "Traceback" not in err
    assert f"no space left on the device holding {run / 'checkpoints'} while writing checkpoint last.ckpt" in err
    assert "the previous last.ckpt is intact" in err and "--resume latest" in err
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    assert not list((run / "checkpoints").glob(".*.tmp-*"))
    filler.unlink()
    monkeypatch.setattr(finetune, "_trainer", real_trainer)
    code, _, err = cli(*_train_args(tiny_model_dir("llama"), run, "--resume", "latest"))
    assert code == 0, err
    assert json.loads((run / "metrics.json").read_text())["steps"] == 4
