"""Batched generation shared by evaluate, predict and serve.

Inputs are sorted by length before batching so each batch pads little, then the
outputs are put back in input order. Decoder-only prompts are left-padded so
every prompt ends at the same position and the completion is simply the tokens
after it; encoder-decoder inputs are right-padded as their encoders expect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from texttune.config import GenerationConfig


def generation_kwargs(options: GenerationConfig, *, pad_token_id: int, eos_token_id: int | list[int] | None) -> dict[str, Any]:
    """Keyword arguments for ``model.generate``; only options that apply are passed.

    ``max_new_tokens`` must be resolved by the caller: transformers falls back to
    ``max_length=20`` otherwise, the silent truncation this library exists to avoid.
    """
    if options.max_new_tokens is None:
        raise ValueError("max_new_tokens must be resolved before generation")
    kwargs: dict[str, Any] = {
        "max_new_tokens": options.max_new_tokens,
        "num_beams": options.num_beams,
        "do_sample": options.do_sample,
        "pad_token_id": pad_token_id,
        "use_cache": True,
    }
    if eos_token_id is not None:
        kwargs["eos_token_id"] = eos_token_id
    if options.min_new_tokens:
        kwargs["min_new_tokens"] = options.min_new_tokens
    if options.do_sample:
        kwargs["temperature"] = options.temperature
        kwargs["top_k"] = options.top_k if options.top_k is not None else 0
        kwargs["top_p"] = options.top_p if options.top_p is not None else 1.0
    else:  # neutralise sampling defaults some checkpoints ship in generation_config.json
        kwargs.update(temperature=None, top_k=None, top_p=None)
    if options.no_repeat_ngram_size:
        kwargs["no_repeat_ngram_size"] = options.no_repeat_ngram_size
    if options.num_beams > 1 and options.length_penalty is not None:
        kwargs["length_penalty"] = options.length_penalty
    if options.repetition_penalty is not None:
        kwargs["repetition_penalty"] = options.repetition_penalty
    return kwargs


def _pad(batch: Sequence[list[int]], pad_id: int, *, left: bool) -> tuple[Any, Any]:
    import torch

    width = max(len(ids) for ids in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, seq in enumerate(batch):
        if left:
            ids[row, width - len(seq):] = torch.tensor(seq)
            mask[row, width - len(seq):] = 1
        else:
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
    return ids, mask  # (B, T) each


def generate_texts(
    model: Any,
    tokenizer: Any,
    inputs: Sequence[list[int]],
    *,
    decoder_only: bool,
    options: GenerationConfig,
) -> list[str]:
    """Generate one text per tokenized input, in input order."""
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = model.generation_config.eos_token_id if model.generation_config.eos_token_id is not None else tokenizer.eos_token_id
    kwargs = generation_kwargs(options, pad_token_id=pad_id, eos_token_id=eos)
    # Longest first: the first batch shows any out-of-memory at once, and similar lengths pad little.
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]), reverse=True)
    outputs: list[str] = [""] * len(inputs)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), options.generation_batch_size):
            chunk = order[start : start + options.generation_batch_size]
            ids, mask = _pad([inputs[i] for i in chunk], pad_id, left=decoder_only)
            with torch.inference_mode():
                generated = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)
            if decoder_only:
                generated = generated[:, ids.shape[1]:]  # (B, new tokens): drop the prompt
            texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
            for i, text in zip(chunk, texts):
                outputs[i] = text.strip()
    finally:
        model.train(was_training)
    return outputs
