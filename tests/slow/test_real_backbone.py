"""Slow tier: a real offline backbone, real data, a real improvement.

Fine-tunes SmolLM2-135M-Instruct (offline alias ``smollm2-135m``) briefly on
Debian package descriptions from ../shared/datasets and checks that ROUGE-L on
held-out rows goes up over the zero-shot model. Skipped when the shared data
is absent. Run with ``make test-slow`` (a few minutes on 2 CPU cores).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "summarization" / "debian-descriptions"

pytestmark = pytest.mark.slow


def _sample(src: Path, dst: Path, n: int, *, max_chars: int = 600) -> Path:
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


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets is not beside the checkout")
def test_smollm2_summarization_improves_rouge_l(tmp_path: Path) -> None:
    from texttune import Summarization, load

    train = _sample(SHARED / "train.jsonl", tmp_path / "train.jsonl", 400)
    val = _sample(SHARED / "validation.jsonl", tmp_path / "val.jsonl", 40)
    task = Summarization(backbone="smollm2-135m", options={
        "max_source_length": 192, "max_target_length": 40, "learning_rate": 1e-4, "warmup_ratio": 0.1,
        "generation_batch_size": 20, "progress_bar": False,
    })
    result = task.fit(train=str(train), validation=str(val), max_steps=25, batch_size=8, output_dir=tmp_path / "run")
    before, after = result.metrics["zero_shot"]["rougeL"], result.metrics["fine_tuned"]["rougeL"]
    assert after > before + 2.0, (before, after)
    # The saved model reloads and generates non-empty summaries.
    again = load(tmp_path / "run")
    out = again.predict([json.loads(val.read_text().splitlines()[0])["document"]])
    assert out[0].strip()
