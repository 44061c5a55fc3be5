"""--streaming trains from glob patterns past the end of the files, and resumes exactly where it stopped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

DATA = Path(__file__).resolve().parents[1] / "data"


def _train(cli, tiny: Path, shards: Path, out: Path, steps: int, *extra: str) -> None:
    # Evaluations at the same steps in every run: model/ holds the best evaluated weights, so the runs
    # must choose among the same candidates. The constant schedule does not depend on --max-steps.
    code, _, err = cli("-q", "train", "text2text", "--streaming", "--train-file", str(shards / "part-*.jsonl"),
                       "--validation-file", str(DATA / "qg.jsonl"), "--max-eval-samples", "3", "--backbone", str(tiny),
                       "--max-steps", str(steps), "--batch-size", "4", "--shuffle-buffer", "8", "--no-baselines",
                       "--no-progress-bar", "--no-tensorboard", "--max-source-length", "32", "--max-target-length", "8",
                       "--max-new-tokens", "4", "--lr-schedule", "constant", "--eval-every-steps", "2", "--output-dir", str(out), *extra)
    assert code == 0, err


def test_streaming_resume_matches_a_straight_run(cli, tiny_model_dir, tmp_path: Path) -> None:
    tiny = tiny_model_dir("llama")
    shards = tmp_path / "shards"
    shards.mkdir()
    rows = (DATA / "qg.jsonl").read_text().splitlines()  # 30 rows in 2 files: 10 steps of 4 run past the end
    (shards / "part-0.jsonl").write_text("\n".join(rows[:17]) + "\n")
    (shards / "part-1.jsonl").write_text("\n".join(rows[17:]) + "\n")
    _train(cli, tiny, shards, tmp_path / "straight", 10)
    _train(cli, tiny, shards, tmp_path / "split", 4)
    _train(cli, tiny, shards, tmp_path / "split", 10, "--resume", "latest")
    assert json.loads((tmp_path / "split" / "metrics.json").read_text())["steps"] == 10
    stats = json.loads((tmp_path / "straight" / "data_stats.json").read_text())
    assert stats["train"]["rows"] == 30 and "first 30 rows" in stats["train"]["source"]
    a, b = (load_file(tmp_path / r / "model" / "model.safetensors") for r in ("straight", "split"))
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-7), name
    shutil.rmtree(shards)
