"""Slow tier: causal LM on Brown Corpus sentences, fine-tuned and from scratch.

SmolLM2-135M (alias ``smollm2-135m``) fine-tuned briefly on Brown sentences
(tokenized with spaces before punctuation and `` '' quotes, unlike its
pre-training text) must lower its perplexity on held-out sentences; a tiny
Llama trained from scratch with its own tokenizer must fall far below the
perplexity of its random initialisation (about the vocabulary size). Each test
takes 2-3 minutes on 2 busy CPU cores: SmolLM2 steps are kept to 4 x 64 tokens.
"""

from __future__ import annotations

from pathlib import Path

import pytest

BROWN = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "language-modeling" / "brown" / "train.jsonl"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not BROWN.is_file(), reason="../shared/datasets is not beside the checkout"),
              pytest.mark.usefixtures("one_torch_thread")]


def test_smollm2_fine_tuning_lowers_perplexity_on_brown(tmp_path: Path) -> None:
    from texttune import CausalLM, load

    task = CausalLM(backbone="smollm2-135m", max_length=64, options={
        "learning_rate": 1e-4, "warmup_ratio": 0.1, "max_train_samples": 2000, "max_eval_samples": 40, "progress_bar": False})
    result = task.fit(train=str(BROWN), max_steps=12, batch_size=4, output_dir=tmp_path / "run")
    before, after = result.metrics["zero_shot"]["perplexity"], result.metrics["fine_tuned"]["perplexity"]
    assert after < 0.8 * before, (before, after)
    out = load(tmp_path / "run").predict(["The jury said"], max_new_tokens=8)
    assert out[0].strip()


def test_tiny_llama_from_scratch_learns_brown(tmp_path: Path) -> None:
    import json

    from texttune import CausalLM

    task = CausalLM(from_scratch="tiny", vocab_size=4000, options={
        "learning_rate": 2e-3, "warmup_ratio": 0.05, "max_train_samples": 10000, "max_eval_samples": 300, "progress_bar": False})
    result = task.fit(train=str(BROWN), max_steps=200, batch_size=8, output_dir=tmp_path / "run")
    before, after = result.metrics["zero_shot"]["perplexity"], result.metrics["fine_tuned"]["perplexity"]
    vocab = json.loads((tmp_path / "run" / "data_stats.json").read_text())["learned"]["vocab_size"]
    assert before > 0.5 * vocab, (before, vocab)  # a random model: about as unsure as the vocabulary is large
    assert after < before / 5, (before, after)
    assert task.predict(["The jury said"], max_new_tokens=8)[0].strip()
