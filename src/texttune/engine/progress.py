"""The training progress bar: optimizer steps of ``--max-steps`` when epochs are unbounded.

A run given in steps has no epoch limit (``max_epochs=-1``, see ``engine/trainer.py``), and
Lightning's bars then read "Epoch 0/-2" (Rich: ``max_epochs - 1``) over the batches of one
epoch, which says nothing about how far the run is. Here such a run's bar counts optimizer
steps out of ``--max-steps`` ("Steps 37/150"), whatever the epoch, the accumulation or a
resume; a run given in epochs keeps Lightning's epoch bar ("Epoch 1/2").

Lightning's own bar is Rich's when ``rich`` is installed, else tqdm's: :func:`progress_bar`
subclasses the same one.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning_utilities.core.imports import RequirementCache

#: Lightning's own test for its Rich bar (its private flag moved between releases; this is the public helper it uses).
_RICH_AVAILABLE = RequirementCache("rich>=10.2.2")
#: The train bar's description when it counts steps.
STEPS = "Steps"


def counts_steps(trainer: Any) -> bool:
    """Whether the run is bounded by steps only (no epoch limit): its bar then counts optimizer steps."""
    return trainer.max_epochs == -1 and trainer.max_steps is not None and trainer.max_steps > 0


class RichStepsBar(RichProgressBar):
    """Rich's bar, counting optimizer steps of ``max_steps`` when epochs are unbounded."""

    def _get_train_description(self, current_epoch: int) -> str:
        if counts_steps(self.trainer):
            return STEPS
        return super()._get_train_description(current_epoch)

    @property
    def total_train_batches(self) -> int | float:
        return self.trainer.max_steps if counts_steps(self.trainer) else super().total_train_batches

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if counts_steps(trainer):  # a new epoch, or a resumed run: the bar starts where the run is
            self._update(self.train_progress_bar_id, trainer.global_step)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not counts_steps(trainer):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        if not self.is_disabled and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()
        self._update(self.train_progress_bar_id, trainer.global_step)
        self._update_metrics(trainer, pl_module)
        self.refresh()


class TqdmStepsBar(TQDMProgressBar):
    """tqdm's bar (without ``rich``), counting optimizer steps of ``max_steps`` when epochs are unbounded."""

    @property
    def total_train_batches(self) -> int | float:
        return self.trainer.max_steps if counts_steps(self.trainer) else super().total_train_batches

    def on_train_epoch_start(self, trainer: Any, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        if counts_steps(trainer):
            self.train_progress_bar.set_description(STEPS)
            self.train_progress_bar.n = trainer.global_step
            self.train_progress_bar.refresh()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not counts_steps(trainer):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        bar = self.train_progress_bar
        if bar is not None and self._should_update(trainer.global_step, bar.total):
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module))


def progress_bar() -> RichProgressBar | TQDMProgressBar:
    """The progress bar callback Lightning would pick (Rich when installed, else tqdm), counting steps when it should."""
    return RichStepsBar() if _RICH_AVAILABLE else TqdmStepsBar()
