"""Slow tier: CTranslate2 on the real SmolLM2-135M, against texttune's transformers backend.

Zero-shot summaries of 32 Debian package descriptions from ../shared/datasets:

- float32: the same greedy outputs as transformers (first 8 rows);
- int8 (the CPU default, SmoothQuant-calibrated): ROUGE-L within 1 point of transformers.

Why 1 point: it is the issue's quality bar for int8, and the size of the noise
between near-identical decoders on so few rows. On 256 rows the measured gap
was +0.07 (zero-shot) and -0.40 / -0.73 (fine-tuned demo model, two disjoint
row sets); plain int8 without smoothing was 1.5-1.8 points below (docs/inference.md).
Skipped when the shared data is absent; about 3 minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "summarization" / "debian-descriptions"
ROWS = 32
TOLERANCE = 1.0  # ROUGE-L points, see the module docstring

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets is not beside the checkout")]


@pytest.fixture(scope="module")
def zero_shot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The untrained SmolLM2 summarizer saved as a model directory, and the first ROWS validation rows."""
    pytest.importorskip("ctranslate2")
    from texttune import Summarization

    work = tmp_path_factory.mktemp("ct2-real")
    lines = (SHARED / "validation.jsonl").read_text(encoding="utf-8").split("\n")[:ROWS]
    data = work / "val.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Summarization(backbone="smollm2-135m").save(work / "model"), data


def test_smollm2_int8_rouge_within_one_point_and_float32_identical(zero_shot: tuple[Path, Path]) -> None:
    from texttune import load

    model_dir, data = zero_shot
    generation = {"max_new_tokens": 48}
    reference = load(model_dir)
    expected = reference.evaluate(str(data), generation=generation)
    int8 = load(model_dir, backend="ctranslate2")
    assert int8.backbone.model.compute_type.startswith("int8")
    got = int8.evaluate(str(data), generation=generation)
    assert abs(got["rougeL"] - expected["rougeL"]) <= TOLERANCE, (expected, got)

    texts = [json.loads(line)["document"] for line in data.read_text(encoding="utf-8").splitlines()[:8]]
    float32 = load(model_dir, backend="ctranslate2", compute_type="float32")
    assert float32.predict(texts, max_new_tokens=32) == reference.predict(texts, max_new_tokens=32)
