"""The training progress bar counts optimizer steps of --max-steps when epochs are unbounded (not "Epoch 0/-2")."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from texttune.engine.progress import STEPS, RichStepsBar, TqdmStepsBar, counts_steps


class Line(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return self.layer(batch).pow(2).mean()

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Seen(pl.Callback):
    """What the train bar shows after each batch: (description, completed, total)."""

    def __init__(self, bar: Any) -> None:
        self.bar, self.views = bar, []

    def on_train_batch_end(self, trainer: pl.Trainer, *_: Any) -> None:
        if isinstance(self.bar, RichStepsBar):
            task = self.bar.progress.tasks[self.bar.train_progress_bar_id]
            self.views.append((task.description, int(task.completed), task.total))
        else:
            tqdm = self.bar.train_progress_bar
            self.views.append((tqdm.desc.rstrip(": "), tqdm.n, tqdm.total))


def fit(bar: Any, **limits: Any) -> list[tuple[str, int, Any]]:
    seen = Seen(bar)
    trainer = pl.Trainer(accelerator="cpu", callbacks=[bar, seen], logger=False, enable_checkpointing=False,
                         enable_model_summary=False, **limits)
    trainer.fit(Line(), DataLoader(torch.randn(12, 2), batch_size=4))  # 3 batches per epoch
    return seen.views


@pytest.mark.parametrize("kind", [RichStepsBar, TqdmStepsBar])
def test_a_run_in_steps_shows_steps_of_max_steps_across_epochs(kind: type) -> None:
    views = fit(kind(), max_epochs=-1, max_steps=7, accumulate_grad_batches=1)
    assert [v[1] for v in views] == [1, 2, 3, 4, 5, 6, 7]  # on through the epoch ends
    assert {v[2] for v in views} == {7} and {v[0].split("[")[-1].split("]")[-1] for v in views} == {STEPS}


@pytest.mark.parametrize("kind", [RichStepsBar, TqdmStepsBar])
def test_a_run_in_epochs_keeps_the_epoch_bar(kind: type) -> None:
    views = fit(kind(), max_epochs=2)
    assert [v[1] for v in views] == [1, 2, 3] * 2 and {v[2] for v in views} == {3}
    assert "Epoch 1" in views[-1][0] and "-" not in views[-1][0]


def test_counts_steps_only_without_an_epoch_limit() -> None:
    class T:
        def __init__(self, max_epochs: int | None, max_steps: int) -> None:
            self.max_epochs, self.max_steps = max_epochs, max_steps

    assert counts_steps(T(-1, 150)) and not counts_steps(T(3, 150)) and not counts_steps(T(-1, -1))
