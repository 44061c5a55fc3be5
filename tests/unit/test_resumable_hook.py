"""Periodic checkpoints between evaluations, checked against what Lightning really does.

Why: ``PeriodicCheckpoint`` (engine/resumable.py) must write ``last.ckpt`` between
evaluations, but never on a training batch that Lightning is about to evaluate (the
evaluation's own checkpoint follows it, and a checkpoint taken just before it makes
Lightning skip that evaluation on resume). Which batches Lightning evaluates is its
own private decision; texttune predicts it from public Trainer attributes. These
tests run real (tiny, pure torch) Lightning trainings in the configurations
texttune uses (per epoch, every N batches across epochs, gradient accumulation, a
training set without a length, --max-steps in the middle of an epoch) and check the
prediction against the evaluations that actually happen, so a Lightning release that
changes its rule fails here instead of silently skipping saves, or taking the wrong ones.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

lightning = pytest.importorskip("lightning")
import lightning.pytorch as pl  # noqa: E402
from torch.utils.data import DataLoader, IterableDataset, TensorDataset  # noqa: E402

from texttune.engine import resumable  # noqa: E402
from texttune.engine.checkpoint_io import AtomicCheckpointIO  # noqa: E402
from texttune.errors import TexttuneError  # noqa: E402

ROWS, BATCH = 10, 2  # 5 training batches per epoch


class _Tiny(pl.LightningModule):
    """A linear regression; records the optimizer step of every checkpoint and every evaluation."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.saved_steps: list[int] = []
        self.evaluated_steps: list[int] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def on_validation_start(self) -> None:
        self.evaluated_steps.append(self.trainer.global_step)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.saved_steps.append(self.trainer.global_step)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class _Stream(IterableDataset):
    """Training rows without a length (like ``--streaming``): Lightning only learns the epoch's end when it comes."""

    def __init__(self, data: TensorDataset) -> None:
        self.data = data

    def __iter__(self) -> Any:
        return iter(self.data)


class _Prediction(pl.Callback):
    """At the end of each training batch: (batch index over the run, texttune's prediction); then what Lightning did."""

    def __init__(self) -> None:
        self.predicted: list[tuple[int, bool]] = []
        self.validated_after: list[int] = []
        self._batches = 0

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.predicted.append((self._batches, resumable._validation_due(trainer, batch_idx)))
        self._batches += 1

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self.validated_after.append(self._batches - 1)


def _data() -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(ROWS, 3, generator=generator), torch.randn(ROWS, 1, generator=generator))


def _fit(tmp_path: Path, *, callbacks: list[Any], stream: bool = False, **trainer_options: Any) -> _Tiny:
    """A training run set up like texttune's (engine/trainer.py ``build_trainer``): no sanity check, our CheckpointIO."""
    data = _data()
    train = DataLoader(_Stream(data) if stream else data, batch_size=BATCH)
    options = {"max_epochs": 2, "check_val_every_n_epoch": 1, "val_check_interval": None} | trainer_options
    trainer = pl.Trainer(accelerator="cpu", devices=1, num_sanity_val_steps=0, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                         plugins=[AtomicCheckpointIO()], callbacks=callbacks, **options)
    module = _Tiny()
    trainer.fit(module, train, DataLoader(data, batch_size=4))
    return module


#: Trainer options of each way texttune schedules evaluations; the batches (0-based, over the run) evaluated after.
SCHEDULES = {
    "each epoch": ({}, [4, 9]),
    "each epoch, accumulating 2": ({"accumulate_grad_batches": 2}, [4, 9]),
    "every 3 batches across epochs": ({"check_val_every_n_epoch": None, "val_check_interval": 3}, [2, 5, 8]),
    "every 2 steps of 2 batches": ({"check_val_every_n_epoch": None, "val_check_interval": 4,
                                    "accumulate_grad_batches": 2}, [3, 7]),
    "max steps inside an epoch": ({"max_epochs": -1, "max_steps": 7}, [4]),
    "stream without a length": ({"stream": True}, [4, 9]),
    "stream, once at max steps": ({"stream": True, "max_epochs": -1, "max_steps": 6, "check_val_every_n_epoch": None,
                                   "val_check_interval": 6}, [5]),
}


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_the_prediction_is_what_lightning_does(schedule: str, tmp_path: Path) -> None:
    options, expected = SCHEDULES[schedule]
    probe = _Prediction()
    _fit(tmp_path, callbacks=[probe], **options)
    assert probe.validated_after == expected  # the schedule really is what the table says
    assert [i for i, due in probe.predicted if due] == expected, probe.predicted


@pytest.mark.parametrize("schedule", ["each epoch", "every 3 batches across epochs", "each epoch, accumulating 2"])
def test_periodic_checkpoints_land_between_evaluations(schedule: str, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    options, _ = SCHEDULES[schedule]
    path = tmp_path / "checkpoints" / "last.ckpt"
    caplog.set_level(logging.INFO)
    module = _fit(tmp_path, callbacks=[resumable.PeriodicCheckpoint(path, every_steps=1)], **options)
    steps = module.trainer.global_step
    # Every optimizer step is saved, except the evaluated ones: an evaluation follows them.
    assert module.evaluated_steps and set(module.evaluated_steps) < set(range(1, steps + 1))
    assert module.saved_steps == [s for s in range(1, steps + 1) if s not in module.evaluated_steps]
    # A full checkpoint to resume from, readable by a weights-only load.
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == module.saved_steps[-1]
    assert checkpoint["optimizer_states"] and checkpoint["loops"]
    # The save says what it writes: no "`weights_only` was not set, defaulting to `False`" at every save.
    assert not [r for r in caplog.records if "weights_only" in r.getMessage()]


def test_a_lightning_without_the_public_attributes_fails_at_train_start(tmp_path: Path) -> None:
    trainer = SimpleNamespace(enable_validation=True, check_val_every_n_epoch=1, current_epoch=0, should_stop=False,
                              global_step=0, fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(total_batch_idx=0)))
    callback = resumable.PeriodicCheckpoint(tmp_path / "last.ckpt", every_steps=2)
    with pytest.raises(TexttuneError, match=rf"Lightning {lightning.__version__}.*val_check_batch.*batch_progress"):
        callback.on_train_start(trainer, None)
    # Periodic checkpoints off: nothing to check, nothing refused.
    resumable.PeriodicCheckpoint(tmp_path / "last.ckpt").on_train_start(trainer, None)


# --------------------------------------------------------------------------- the callback's own decisions


class _Trainer:
    """The public trainer attributes PeriodicCheckpoint reads; an evaluation follows the batches in ``due``."""

    def __init__(self) -> None:
        self.global_step = 0
        self.saved: list[int] = []
        self.strategy = SimpleNamespace(broadcast=lambda value: value)
        self.enable_validation, self.check_val_every_n_epoch, self.current_epoch = True, None, 0
        self.should_stop, self.val_check_batch = False, 2  # evaluated: total_batch_idx 1 (of 0/1)
        self.fit_loop = SimpleNamespace(epoch_loop=SimpleNamespace(total_batch_idx=0, batch_progress=None))

    def save_checkpoint(self, path: Path, weights_only: bool | None = None) -> None:
        assert weights_only is False  # a full checkpoint, said explicitly
        self.saved.append(self.global_step)


def _steps(callback: Any, trainer: _Trainer, steps: list[int], *, due: frozenset[int] = frozenset()) -> list[int]:
    for step in steps:
        trainer.global_step = step
        trainer.fit_loop.epoch_loop.total_batch_idx = 1 if step in due else 0
        callback.on_train_batch_end(trainer, None, None, None, 0)
    return trainer.saved


def test_every_n_steps_skips_accumulation_batches_and_evaluated_steps(tmp_path: Path) -> None:
    trainer = _Trainer()
    callback = resumable.PeriodicCheckpoint(tmp_path / "last.ckpt", every_steps=2, every_minutes=0)
    callback.on_train_start(trainer, None)
    # 1, 1: a batch that only accumulates gradients (no optimizer step) is not a new step.
    assert _steps(callback, trainer, [1, 1, 2, 2, 3, 4, 5, 6, 7, 8], due=frozenset({4, 8})) == [2, 6]


def test_by_training_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(resumable.time, "monotonic", lambda: clock[0])
    trainer = _Trainer()
    callback = resumable.PeriodicCheckpoint(tmp_path / "last.ckpt", every_steps=None, every_minutes=10)
    callback.on_train_start(trainer, None)
    for step, minutes in [(1, 4), (2, 9.9), (3, 10), (4, 15), (5, 20.5), (6, 21)]:
        clock[0] = 1000.0 + 60 * minutes
        _steps(callback, trainer, [step])
    assert trainer.saved == [3, 5]
