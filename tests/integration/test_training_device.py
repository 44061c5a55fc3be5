"""The recipe's own evaluations run where Lightning trains: the strategy's root device.

On this CPU-only machine the root device is the CPU, so the test checks that the
recipe asks the trainer and evaluates there: a spy on the task's ``evaluate`` records
the model's device at each call, one on ``placement.move_model`` records where the
recipe put the model and for what. On a GPU machine the same recipe gives ``cuda:0``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from run_files import read_json

DATA = Path(__file__).resolve().parents[1] / "data"


def test_baselines_and_final_evaluation_run_on_the_trainers_root_device(
        tiny_model_dir: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        cli: Callable[..., Any]) -> None:
    from texttune.engine import finetune, placement
    from texttune.tasks.text2text import SummarizationTask

    trainers: list[Any] = []
    evaluated: list[Any] = []
    moves: list[tuple[str, Any]] = []
    real_trainer, real_evaluate, real_move = finetune._trainer, SummarizationTask.evaluate, placement.move_model

    def keep_trainer(*args: Any, **kwargs: Any) -> Any:
        trainers.append(real_trainer(*args, **kwargs))
        return trainers[-1]

    def spy_evaluate(self: Any, model: Any, rows: Any, **kwargs: Any) -> Any:
        evaluated.append(next(model.parameters()).device)
        return real_evaluate(self, model, rows, **kwargs)

    def spy_move(model: Any, device: Any, *, purpose: str) -> None:
        moves.append((purpose, device))
        real_move(model, device, purpose=purpose)

    monkeypatch.setattr(finetune, "_trainer", keep_trainer)
    monkeypatch.setattr(SummarizationTask, "evaluate", spy_evaluate)
    monkeypatch.setattr(placement, "move_model", spy_move)
    run = tmp_path / "run"
    # No evaluation inside the 2 steps (every 5): no best checkpoint, so the final evaluation cannot be reused.
    code, _, err = cli("-q", "train", "summarization", "--backbone", tiny_model_dir("t5"), "--train-file",
                       DATA / "summarization.jsonl", "--output-dir", run, "--max-steps", "2", "--batch-size", "4",
                       "--max-eval-samples", "3", "--eval-every-steps", "5", "--no-progress-bar", "--no-tensorboard")
    assert code == 0, err
    [trainer] = trainers
    root = trainer.strategy.root_device
    assert read_json(run / "metrics.json")["timing"]["final_eval_reused"] is False
    assert evaluated == [root, root]  # zero-shot, then the best (here: final) weights
    assert [purpose for purpose, _ in moves] == ["the baselines", "the final evaluation"]
    assert all(device == root for _, device in moves)
    assert read_json(run / "environment.json")["training_device"] == str(root)
