"""After training, the best checkpoint's weights are the ones evaluated and saved."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from texttune.engine.finetune import _restore_best


def _trainer(best: Path, step: int) -> SimpleNamespace:
    return SimpleNamespace(checkpoint_callback=SimpleNamespace(best_model_path=str(best)), global_step=step)


def _checkpoint(tmp_path: Path, value: float, step: int) -> Path:
    module = torch.nn.Linear(2, 2)
    torch.nn.init.constant_(module.weight, value)
    path = tmp_path / "best.ckpt"
    torch.save({"state_dict": module.state_dict(), "global_step": step,
                "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(1000)}}}]}, path)
    return path


def test_an_earlier_best_checkpoint_is_loaded(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path, 0.5, step=2)
    module = torch.nn.Linear(2, 2)
    assert _restore_best(_trainer(path, 6), module) == (str(path), 2)
    assert torch.equal(module.weight, torch.full((2, 2), 0.5))


def test_a_best_checkpoint_of_the_final_step_is_not_read_again(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path, 0.5, step=6)
    module = torch.nn.Linear(2, 2)
    before = module.weight.detach().clone()
    assert _restore_best(_trainer(path, 6), module) == (str(path), 6)
    assert torch.equal(module.weight, before)  # the weights in memory are that checkpoint's


def test_no_best_checkpoint(tmp_path: Path) -> None:
    assert _restore_best(_trainer(tmp_path / "missing.ckpt", 3), torch.nn.Linear(2, 2)) == ("", None)
    assert _restore_best(SimpleNamespace(checkpoint_callback=None, global_step=3), torch.nn.Linear(2, 2)) == ("", None)
