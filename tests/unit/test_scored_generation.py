"""One pass over each input (inference/scored.py) gives generate's outputs and the loss pass's loss."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from texttune.config import GenerationConfig
from texttune.inference.generation import Prompts, generate_texts
from texttune.inference.scored import applies, generate_scored
from texttune.tasks.base import pad_batch
from texttune.tasks.causal_loss import target_only_loss
from texttune.tasks.packing import model_inputs


def _rows(tokenizer: Any, count: int, *, seed: int = 0) -> tuple[list[list[int]], list[list[int]]]:
    rng = random.Random(seed)
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id  # BERT: [SEP]
    # inputs of 1 token (a decoder-only prompt with nothing to prefill) to 14; targets of 1-6 tokens ending with EOS
    inputs = [[rng.randrange(5, 700) for _ in range(1 if i == 0 else rng.randrange(2, 15))] for i in range(count)]
    targets = [[rng.randrange(5, 700) for _ in range(rng.randrange(0, 6))] + [eos] for _ in range(count)]
    return inputs, targets


def _loss_pass(model: Any, features: list[dict[str, list[int]]], pad: int, *, decoder_only: bool) -> tuple[float, int]:
    """The validation loss pass: right-padded batches, the mean loss weighted by the scored tokens."""
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(features), 3):
            batch = pad_batch(features[start : start + 3], pad_token_id=pad)
            tokens = int((batch["labels"] != -100).sum())
            loss = target_only_loss(model, batch) if decoder_only else model(**model_inputs(batch)).loss
            total, count = total + float(loss) * tokens, count + tokens
    return total, count


@pytest.mark.parametrize(("kind", "batch_size", "beams"), [("llama", 1, 1), ("llama", 4, 1), ("t5", 4, 1),
                                                           ("bart", 3, 1), ("bert2bert", 4, 1), ("t5", 4, 2)])
def test_one_pass_gives_generate_outputs_and_the_padded_loss(tiny_model_dir: Callable[[str], Path], kind: str,
                                                             batch_size: int, beams: int) -> None:
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    path, decoder_only = tiny_model_dir(kind), kind == "llama"
    auto = AutoModelForCausalLM if decoder_only else AutoModelForSeq2SeqLM
    # float64: the two ways round differ only in the order of float operations, which float64 makes invisible
    model = auto.from_pretrained(path, attn_implementation="sdpa" if decoder_only else None).double().eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    inputs, targets = _rows(tokenizer, 11)
    options = GenerationConfig(max_new_tokens=6, generation_batch_size=batch_size, num_beams=beams)
    assert applies(model, options)
    _end_rows_early(model, tokenizer, inputs, decoder_only=decoder_only)

    scored = generate_scored(model, Prompts(tokenizer=tokenizer, ids=inputs, decoder_only=decoder_only, options=options),
                             targets)

    assert scored.texts == generate_texts(model, tokenizer, inputs, decoder_only=decoder_only, options=options)
    assert any(scored.texts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    features = ([{"input_ids": i + t, "labels": [-100] * len(i) + t} for i, t in zip(inputs, targets)] if decoder_only
                else [{"input_ids": i, "labels": t} for i, t in zip(inputs, targets)])
    total, count = _loss_pass(model, features, pad, decoder_only=decoder_only)
    assert scored.tokens == count == sum(len(t) for t in targets)
    assert scored.loss_sum / scored.tokens == pytest.approx(total / count, rel=1e-6)
    assert model.training is False


def _end_rows_early(model: Any, tokenizer: Any, inputs: list[list[int]], *, decoder_only: bool) -> None:
    """Make rows of one batch end at different steps: tokens the model itself picks at steps 2-4 of some rows become
    end-of-sequence tokens too (a random tiny model almost never picks its real EOS)."""
    from texttune.inference.backends import pad_ids

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids, mask = pad_ids(inputs, pad, left=decoder_only)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=pad)
    out = out[:, ids.shape[1]:] if decoder_only else out[:, 1:]  # (B, 6): the generated tokens
    ends = {int(out[row, 1 + row % 3]) for row in range(0, len(inputs), 3)}
    eos = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = sorted(ends | set(eos if isinstance(eos, list) else [eos]))
    ended = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=pad)
    lengths = {int((row != pad).sum()) for row in ended[:, ids.shape[1]:]} if decoder_only else {0, 1}
    assert len(lengths) > 1  # some rows end before others


def test_positions_that_ignore_the_left_padding_would_be_caught(tiny_model_dir: Callable[[str], Path],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above is sharp: counting positions from the padded column changes the loss."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import texttune.inference.scored as scored_module

    path = tiny_model_dir("llama")
    model = AutoModelForCausalLM.from_pretrained(path).double().eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    inputs, targets = _rows(tokenizer, 6, seed=1)
    prompts = Prompts(tokenizer=tokenizer, ids=inputs, decoder_only=True,
                      options=GenerationConfig(max_new_tokens=4, generation_batch_size=6))
    right = generate_scored(model, prompts, targets)
    real_pad_ids = scored_module.pad_ids

    def ones_mask(batch: list[list[int]], pad_id: int, *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = real_pad_ids(batch, pad_id, left=left)
        return ids, torch.ones_like(mask)  # positions from column 0, padding attended

    monkeypatch.setattr(scored_module, "pad_ids", ones_mask)
    wrong = generate_scored(model, prompts, targets)
    assert abs(wrong.loss_sum - right.loss_sum) > 1e-3


def test_where_it_does_not_apply(tiny_model_dir: Callable[[str], Path]) -> None:
    from transformers import AutoModelForCausalLM

    llama = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), attn_implementation="sdpa")
    assert applies(llama, GenerationConfig())
    assert not applies(llama, GenerationConfig(num_beams=2))  # beam search expands the decoder-only cache itself
    eager = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), attn_implementation="eager")
    assert applies(eager, GenerationConfig())
