"""Batched generation shared by evaluate, predict and serve, whatever the backend.

Inputs are sorted by length before batching so each batch pads little, then the
outputs are put back in input order. The backend (``inference/backends.py``)
only runs one batch: transformers left-pads decoder-only prompts so every prompt
ends at the same position, and right-pads encoder-decoder inputs as their
encoders expect; CTranslate2 takes the token lists as they are. Decoding the
completions' token ids to text happens here, once, for every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from texttune.config import GenerationConfig
from texttune.inference.backends import backend_for, generation_kwargs

__all__ = ["Prompts", "decode_completions", "generate_prompts", "generate_texts", "generation_kwargs"]


@dataclass(frozen=True)
class Prompts:
    """Rows turned into what any backend generates from: what a generating task's ``prompts`` hook returns.

    One place for everything the task decides (prompt layout, lengths, the first forced token, where a reply
    ends), so predict, evaluate and the streaming routes of the server (``inference/streaming.py``) generate
    from the same token ids and cut the same way.
    """

    tokenizer: Any
    ids: list[list[int]]  # one prompt per row (token ids)
    decoder_only: bool  # decoder-only prompts are continued; encoder-decoder ones are encoded
    options: GenerationConfig  # max_new_tokens resolved
    forced_bos_token_id: int | None = None  # a many-to-many translation model's target language
    end_text: str | None = None  # text that ends an output (a chat template's end-of-turn that is no special token)


def generate_prompts(model: Any, prompts: Prompts) -> list[str]:
    """One stripped text per prompt, in order, cut before ``end_text``."""
    texts = generate_texts(model, prompts.tokenizer, prompts.ids, decoder_only=prompts.decoder_only,
                           options=prompts.options, forced_bos_token_id=prompts.forced_bos_token_id)
    if prompts.end_text:
        texts = [text.split(prompts.end_text)[0].strip() for text in texts]
    return texts


def generate_texts(
    model: Any,
    tokenizer: Any,
    inputs: Sequence[list[int]],
    *,
    decoder_only: bool,
    options: GenerationConfig,
    forced_bos_token_id: int | None = None,
) -> list[str]:
    """Generate one text per tokenized input, in input order.

    ``model`` is a transformers model or a :class:`~texttune.inference.backends.GenerationBackend`.
    ``forced_bos_token_id``: the first token every output must start with (a many-to-many translation
    model's target language, ``tasks/lang_codes.py``); it overrides the model's generation config and is
    left out of the decoded text.
    """
    # Longest first: the first batch shows any out-of-memory at once, and similar lengths pad little.
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]), reverse=True)
    outputs: list[str] = [""] * len(inputs)
    chunks = [order[start : start + options.generation_batch_size] for start in range(0, len(order), options.generation_batch_size)]
    with backend_for(model).generation(tokenizer, decoder_only=decoder_only, options=options,
                                              forced_bos_token_id=forced_bos_token_id) as generate:
        pending = [(chunk, generate([inputs[i] for i in chunk])) for chunk in chunks]  # all submitted: workers never idle
        for chunk, result in pending:
            for i, text in zip(chunk, decode_completions(tokenizer, result(), forced_bos_token_id=forced_bos_token_id)):
                outputs[i] = text
    return outputs


def decode_completions(tokenizer: Any, completions: list[list[int]], *, forced_bos_token_id: int | None = None) -> list[str]:
    """Generated token ids to stripped texts, special tokens (padding, EOS) left out."""
    if forced_bos_token_id is not None:  # a language marker, not text (M2M100's tokenizer does not skip it)
        completions = [[t for t in ids if t != forced_bos_token_id] for ids in completions]
    return [text.strip() for text in tokenizer.batch_decode(completions, skip_special_tokens=True)]
