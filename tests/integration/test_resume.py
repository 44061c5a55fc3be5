"""--resume continues exactly where training stopped: same data order, same steps, same weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

from texttune.cli.main import main
from texttune.engine import finetune as fit_module
from texttune.engine.loader import ResumableLoader

DATA = Path(__file__).resolve().parents[1] / "data"


def _train(tiny: Path, out: Path, steps: int, *extra: str) -> None:
    code = main([
        "-q", "train", "summarization", "--train-file", str(DATA / "summarization.jsonl"),
        "--validation-file", str(DATA / "summarization-val.jsonl"), "--backbone", str(tiny),
        "--max-steps", str(steps), "--batch-size", "4", "--max-eval-samples", "4", "--no-baselines",
        "--no-progress-bar", "--max-source-length", "64", "--max-target-length", "16",
        "--output-dir", str(out), *extra,
    ])
    assert code == 0


def _train_log_steps(run: Path) -> list[int]:
    import csv

    with (run / "logs" / "metrics.csv").open(newline="") as handle:
        return sorted(int(float(r["step"])) for r in csv.DictReader(handle) if r.get("train_loss"))


class _InterruptAt(Callback):
    """Simulates Ctrl-C after ``step`` optimizer steps."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.step:
            raise KeyboardInterrupt


def test_resume_mid_epoch_matches_an_uninterrupted_run(tiny_model_dir, tmp_path: Path, monkeypatch, capsys) -> None:
    # 40 rows / batch 4 = 10 batches an epoch: stopping at step 3 is mid-epoch.
    # Llama has no dropout, so an exact resume must reproduce the weights.
    tiny = tiny_model_dir("llama")
    _train(tiny, tmp_path / "straight", 6)

    real_trainer = fit_module._trainer

    def interrupted_trainer(*args, **kwargs):  # noqa: ANN002, ANN003
        trainer = real_trainer(*args, **kwargs)
        trainer.callbacks.append(_InterruptAt(3))
        return trainer

    monkeypatch.setattr(fit_module, "_trainer", interrupted_trainer)
    with pytest.raises(AssertionError):  # the CLI exits 2 with "interrupted ... --resume"
        _train(tiny, tmp_path / "split", 6)
    assert "--resume latest" in capsys.readouterr().err
    assert '"interrupted"' in (tmp_path / "split" / "status.json").read_text()
    assert not (tmp_path / "split" / "model").exists()
    monkeypatch.setattr(fit_module, "_trainer", real_trainer)
    _train(tiny, tmp_path / "split", 6, "--resume", "latest")
    # The CSV log of the resumed run covers the whole run, each training step at most once (Lightning's
    # writer would have deleted the rows written before the interruption). The step the simulated
    # interrupt hit (its row is logged after on_train_batch_end) is the only one allowed to be missing.
    straight_steps, resumed_steps = _train_log_steps(tmp_path / "straight"), _train_log_steps(tmp_path / "split")
    assert len(resumed_steps) == len(set(resumed_steps))
    assert set(straight_steps) - set(resumed_steps) <= {2} and set(resumed_steps) <= set(straight_steps)
    assert {0, 1, 3, 4, 5} <= set(resumed_steps)
    straight = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    resumed = load_file(tmp_path / "split" / "model" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.allclose(straight[name], resumed[name], atol=1e-6), name


def test_last_checkpoint_is_a_link_to_best_when_both_hold_the_same_step(tiny_model_dir, tmp_path: Path) -> None:
    # One evaluation, at the end: best and last hold the same state, written once (engine/checkpoint_callbacks.py).
    _train(tiny_model_dir("llama"), tmp_path / "run", 4, "--eval-every-steps", "4")
    best, last = tmp_path / "run" / "checkpoints" / "best.ckpt", tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert best.is_file() and last.is_file() and not last.is_symlink(), sorted(os.listdir(best.parent))
    assert os.path.samefile(best, last)
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 4
    assert not [p.name for p in best.parent.iterdir() if p.name.startswith(".")]  # no temporary link left


def test_loader_order_depends_only_on_seed_and_epoch() -> None:
    data = list(range(10))
    first = ResumableLoader(data, batch_size=3, seed=7, collate_fn=list)
    full = [b for b in first]
    # A fresh loader told that 2 batches of epoch 0 were done yields exactly the rest.
    second = ResumableLoader(data, batch_size=3, seed=7, collate_fn=list)
    second.load_state_dict({"epoch": 0, "batches_done": 2})
    second.order.set_epoch(0)
    assert [b for b in second] == full[2:]
    assert second.state_dict() == {"epoch": 0, "batches_done": len(full)}
    # The next epoch is a different, but again reproducible, order.
    first.order.set_epoch(1)
    epoch1 = [b for b in first]
    assert epoch1 != full and sorted(sum(epoch1, [])) == data


@pytest.mark.parametrize("seed", [1, 2])
def test_different_seeds_give_different_orders(seed: int) -> None:
    a = [b for b in ResumableLoader(list(range(20)), batch_size=5, seed=seed, collate_fn=list)]
    b = [b for b in ResumableLoader(list(range(20)), batch_size=5, seed=seed + 10, collate_fn=list)]
    assert a != b
