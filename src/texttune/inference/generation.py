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
from typing import Any

from texttune.config import GenerationConfig
from texttune.inference.backends import backend_for, generation_kwargs

__all__ = ["generate_texts", "generation_kwargs"]


def generate_texts(
    model: Any,
    tokenizer: Any,
    inputs: Sequence[list[int]],
    *,
    decoder_only: bool,
    options: GenerationConfig,
) -> list[str]:
    """Generate one text per tokenized input, in input order.

    ``model`` is a transformers model or a :class:`~texttune.inference.backends.GenerationBackend`.
    """
    # Longest first: the first batch shows any out-of-memory at once, and similar lengths pad little.
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]), reverse=True)
    outputs: list[str] = [""] * len(inputs)
    chunks = [order[start : start + options.generation_batch_size] for start in range(0, len(order), options.generation_batch_size)]
    with backend_for(model).generation(tokenizer, decoder_only=decoder_only, options=options) as generate:
        pending = [(chunk, generate([inputs[i] for i in chunk])) for chunk in chunks]  # all submitted: workers never idle
        for chunk, result in pending:
            texts = tokenizer.batch_decode(result(), skip_special_tokens=True)
            for i, text in zip(chunk, texts):
                outputs[i] = text.strip()
    return outputs
