"""Slow tier: masked-LM domain adaptation of the offline MiniLM encoder on real reviews.

MiniLM (alias ``minilm``) ships as a bare encoder, so its MLM head starts from
random weights and the zero-shot perplexity is worse than guessing uniformly;
a short adaptation on IMDb reviews from ../shared/datasets must bring it down
by far, and the adapted encoder must remain a usable token-classification
backbone and fill masks. About 2 minutes on 2 busy CPU cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "language-modeling" / "imdb-sample"

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets is not beside the checkout")
def test_minilm_masked_lm_lowers_perplexity_on_imdb(tmp_path: Path) -> None:
    from transformers import AutoModelForTokenClassification

    from texttune import MaskedLM, load

    task = MaskedLM(max_length=64, options={"learning_rate": 3e-4, "warmup_ratio": 0.1, "progress_bar": False})
    result = task.fit(train=str(SHARED / "sample.jsonl"), max_steps=30, batch_size=8, output_dir=tmp_path / "run")
    before, after = result.metrics["zero_shot"]["perplexity"], result.metrics["fine_tuned"]["perplexity"]
    assert after < before / 10, (before, after)
    tagger = AutoModelForTokenClassification.from_pretrained(tmp_path / "run" / "model", num_labels=5)
    assert tagger.config.model_type == "bert"
    candidates = load(tmp_path / "run").predict(["This movie was a complete [MASK] of time."])[0]["candidates"]
    assert len(candidates) == 5 and all(c["sequence"] for c in candidates)
