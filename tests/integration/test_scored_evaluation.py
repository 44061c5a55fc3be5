"""Evaluation inside training on one pass over each prompt: the same val_loss and outputs as a loss pass + generation."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from texttune import Summarization
from texttune.engine.module import TextModule

FAST = {"baselines": False, "progress_bar": False, "tensorboard": False, "samples_per_eval": 0, "eval_every_steps": 2,
        "generation_batch_size": 3, "max_new_tokens": 5}
PAIRS = [(f"The package number {i} reads {'configuration ' * (i % 4)}files from disk and checks them.",
          f"{'a ' * (i % 3)}configuration reader {i}") for i in range(14)]


def _fit(tmp_path: Path, backbone: Path, name: str) -> tuple[list[dict[str, Any]], list[float]]:
    files = {}
    for part, pairs in (("train", PAIRS[:8]), ("validation", PAIRS[8:])):
        files[part] = tmp_path / f"{part}.jsonl"
        files[part].write_text("".join(json.dumps({"input": i, "target": t}) + "\n" for i, t in pairs))
    result = Summarization(backbone=str(backbone), options=FAST).fit(
        train=files["train"], validation=files["validation"], output_dir=tmp_path / name, max_steps=4, batch_size=4)
    evals = [json.loads(line) for line in (result.run_dir / "evals.jsonl").read_text().splitlines()]
    with (result.run_dir / "logs" / "metrics.csv").open() as logged:
        losses = [float(row["val_loss"]) for row in csv.DictReader(logged) if row.get("val_loss")]
    return evals, losses


@pytest.mark.parametrize("kind", ["llama", "t5"])
def test_one_pass_evaluation_logs_the_loss_pass_loss(tiny_model_dir: Callable[[str], Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    backbone = tiny_model_dir(kind)
    chosen: list[bool] = []
    decide = TextModule._scores_loss_while_generating

    def record(self: TextModule) -> bool:
        chosen.append(decide(self))
        return chosen[-1]

    monkeypatch.setattr(TextModule, "_scores_loss_while_generating", record)
    one_pass, one_pass_losses = _fit(tmp_path, backbone, "one-pass")
    assert chosen and all(chosen)  # both evaluations took it
    monkeypatch.setattr(TextModule, "_scores_loss_while_generating", lambda self: False)
    two_passes, two_passes_losses = _fit(tmp_path, backbone, "two-passes")

    assert len(one_pass_losses) == len(two_passes_losses) == 2
    assert one_pass_losses == pytest.approx(two_passes_losses, rel=1e-5)
    assert one_pass == two_passes  # every metric of both evaluations, so the same generated outputs
