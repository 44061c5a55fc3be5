"""Fixtures of the slow tier."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DEBIAN = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "summarization" / "debian-descriptions"


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on a 2-core machine shared with other jobs, two threads hand work back and forth and a
    step runs 2-3x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def debian_sample(src: Path, dst: Path, n: int, *, max_chars: int = 600) -> Path:
    """The first ``n`` rows with short documents, so a CPU step stays a few seconds."""
    rows = []
    with src.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if 80 <= len(row["document"]) <= max_chars and 10 <= len(row["summary"]) <= 80:
                rows.append(row)
            if len(rows) == n:
                break
    dst.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return dst


@dataclass(frozen=True)
class FineTuned:
    """One short fine-tune of SmolLM2-135M on Debian descriptions, shared by the tests that need a trained model."""

    run_dir: Path
    validation: list[dict[str, Any]]
    metrics: dict[str, Any]


@pytest.fixture(scope="session")
def smollm2_debian(tmp_path_factory: pytest.TempPathFactory) -> FineTuned:
    """SmolLM2-135M-Instruct (offline alias) fine-tuned for 25 steps on 400 Debian rows; 40 validation rows.
    Skipped when ../shared/datasets is not beside the checkout."""
    if not DEBIAN.is_dir():
        pytest.skip("../shared/datasets is not beside the checkout")
    from texttune import Summarization

    work = tmp_path_factory.mktemp("smollm2-debian")
    train = debian_sample(DEBIAN / "train.jsonl", work / "train.jsonl", 400)
    val = debian_sample(DEBIAN / "validation.jsonl", work / "val.jsonl", 40)
    task = Summarization(backbone="smollm2-135m", options={
        "max_source_length": 192, "max_target_length": 40, "learning_rate": 1e-4, "warmup_ratio": 0.1,
        "generation_batch_size": 20, "progress_bar": False,
    })
    result = task.fit(train=str(train), validation=str(val), max_steps=25, batch_size=8, output_dir=work / "run")
    # The tests read model/; the ~1.5 GB training checkpoints would only crowd the disk for the rest of the session.
    shutil.rmtree(work / "run" / "checkpoints")
    rows = [json.loads(line) for line in val.read_text(encoding="utf-8").splitlines()]
    return FineTuned(run_dir=work / "run", validation=rows, metrics=result.metrics)
