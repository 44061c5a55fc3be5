"""Evaluation inside training on one pass over each input: the loss pass's work reused by generation.

Why: an evaluation inside training runs a loss pass over (input + target) and then
generates from the input, so every input goes through the model twice.

Decoder-only (SmolLM2-135M on Debian descriptions: prompts of ~200 tokens, targets of
~20): a batch's loss pass and generation's prefill cost about the same, and each costs
several times the greedy decoding steps, so the second prompt pass is about a third of
the evaluation (docs/speed.md). Here each batch of prompts goes through the model once:

1. prefill: the left-padded prompts but their last token, keeping the key/value cache;
2. loss: the last prompt token and the target (right-padded) on top of that cache,
   the head applied only where a target token is scored;
3. generation: the cache cropped back to the prompt (less its last token), handed to
   ``model.generate`` with the whole prompt, which recomputes that one token and
   decodes as it would have from its own prefill.

Positions follow the attention mask (left padding is skipped), as transformers' own
generation counts them. Greedy or sampled search on one beam only: beam search
expands the cache itself.

Encoder-decoder (T5, BART, Marian, bert2bert): the encoder runs once per batch; the
teacher-forced loss and ``generate`` both take its outputs (``encoder_outputs``).

The loss is the padded loss pass's and the outputs are ``generate``'s (a test compares
both in float64; in float32 the loss differs by rounding only, batches being made by
input length here and by input + target length in the loss pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from texttune.config import GenerationConfig
from texttune.inference.backends import generation_kwargs, pad_ids, special_ids
from texttune.inference.generation import Prompts, decode_completions

__all__ = ["ScoredGeneration", "applies", "generate_scored"]

@dataclass(frozen=True)
class ScoredGeneration:
    """Generated texts (in input order, decoded as ``generate_texts`` decodes them) and the summed target
    cross-entropy over ``tokens`` target tokens."""

    texts: list[str]
    loss_sum: float
    tokens: int


def applies(model: Any, options: GenerationConfig) -> bool:
    """Whether ``generate_scored`` can run this model with these options (else: a loss pass, then generation).

    A decoder-only model's logits must also be ``lm_head(last_hidden_state)``, which the caller knows
    (``tasks/causal_loss.supports_target_only``, the same condition as the target-only loss)."""
    import inspect

    import torch

    if not isinstance(model, torch.nn.Module) or model.get_output_embeddings() is None:
        return False
    if model.config.is_encoder_decoder:
        return "encoder_outputs" in inspect.signature(model.forward).parameters and hasattr(model, "get_encoder")
    # FlashAttention's unpadding of a cached, left- and right-padded batch is not exercised here (no GPU): SDPA, eager
    attention = getattr(model.config, "_attn_implementation", None) or "eager"
    return attention in ("sdpa", "eager") and options.num_beams == 1


def generate_scored(model: Any, prompts: Prompts, targets: Sequence[list[int]]) -> ScoredGeneration:
    """Generate from each prompt and score its target (teacher-forced), one pass over each input.

    ``targets[i]`` are the token ids the loss scores for ``prompts.ids[i]``: the training labels (decoder-only: the
    ids after the prompt, with EOS). Batches of ``generation_batch_size``, longest input first, as
    ``generate_texts`` makes them.
    """
    import torch

    tokenizer, options = prompts.tokenizer, prompts.options
    pad_id, eos = special_ids(tokenizer, model.generation_config)
    kwargs = generation_kwargs(options, pad_token_id=pad_id, eos_token_id=eos,
                               forced_bos_token_id=prompts.forced_bos_token_id)
    device = next(model.parameters()).device
    order = sorted(range(len(prompts.ids)), key=lambda i: len(prompts.ids[i]), reverse=True)
    size = options.generation_batch_size
    texts: list[str] = [""] * len(prompts.ids)
    loss_sum, tokens = torch.zeros((), dtype=torch.float64), 0
    one_batch = _seq2seq_batch if model.config.is_encoder_decoder else _causal_batch
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), size):
                chunk = order[start : start + size]
                batch_loss, batch_tokens, generated = one_batch(
                    model, [prompts.ids[i] for i in chunk], [targets[i] for i in chunk], pad_id=pad_id, device=device,
                    kwargs=kwargs)
                loss_sum += batch_loss.double().cpu()
                tokens += batch_tokens
                decoded = decode_completions(tokenizer, generated, forced_bos_token_id=prompts.forced_bos_token_id)
                for i, text in zip(chunk, decoded):
                    texts[i] = text.split(prompts.end_text)[0].strip() if prompts.end_text else text
    finally:
        model.train(was_training)
    return ScoredGeneration(texts=texts, loss_sum=float(loss_sum), tokens=tokens)


def _seq2seq_batch(model: Any, sources: list[list[int]], targets: list[list[int]], *, pad_id: int, device: Any,
                   kwargs: dict[str, Any]) -> tuple[Any, int, list[list[int]]]:
    import torch
    import torch.nn.functional as F

    ids, mask = pad_ids(sources, pad_id, left=False)  # (B, S): encoder inputs, right-padded as generate pads them
    ids, mask = ids.to(device), mask.to(device)
    encoded = model.get_encoder()(input_ids=ids, attention_mask=mask)  # last_hidden_state (B, S, H), once
    labels = torch.full((len(targets), max(len(t) for t in targets)), -100, dtype=torch.long, device=device)
    for row, target in enumerate(targets):
        labels[row, : len(target)] = torch.tensor(target, device=device)  # (B, T)
    # the model shifts the labels into decoder inputs (its decoder start token first), as in the loss pass
    logits = model(attention_mask=mask, encoder_outputs=encoded, labels=labels).logits  # (B, T, V)
    keep = labels != -100
    loss = F.cross_entropy(logits[keep].float(), labels[keep], reduction="sum")
    start = _decoder_start(model)
    if start is not None and plain_greedy(model, kwargs):
        return loss, int(keep.sum()), _greedy_seq2seq(model, encoded, mask, start=start, kwargs=kwargs)
    generated = model.generate(input_ids=ids, attention_mask=mask, encoder_outputs=encoded, **kwargs)
    return loss, int(keep.sum()), generated.tolist()


def _decoder_start(model: Any) -> int | None:
    """The token an encoder-decoder's generation starts from, as ``generate`` takes it (its config's, else None)."""
    start = getattr(model.generation_config, "decoder_start_token_id", None)
    return start if start is not None else getattr(model.config, "decoder_start_token_id", None)


def _causal_batch(model: Any, prompts: list[list[int]], targets: list[list[int]], *, pad_id: int, device: Any,
               kwargs: dict[str, Any]) -> tuple[Any, int, list[list[int]]]:
    import torch
    import torch.nn.functional as F
    from transformers import DynamicCache

    ids, mask = pad_ids(prompts, pad_id, left=True)  # (B, P): every prompt ends at column P-1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, P): 0 at each prompt's first real token
    width = ids.shape[1]
    cache = DynamicCache(config=model.config)
    # transformers 5.2x renamed the argument (``past_key_values`` is deprecated there, the only name before)
    cached = {_cache_argument(model): cache}
    if width > 1:  # 1. prefill all but the last prompt column
        model.base_model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1],
                         use_cache=True, **cached)
    # 2. loss: x = [last prompt token, t_0 .. t_{n-2}] predicts y = [t_0 .. t_{n-1}] (right-padded, -100 beyond)
    span = max(len(t) for t in targets)
    x = torch.full((len(targets), span), pad_id, dtype=torch.long, device=device)
    y = torch.full((len(targets), span), -100, dtype=torch.long, device=device)
    x[:, 0] = ids[:, -1]
    for row, target in enumerate(targets):
        x[row, 1 : len(target)] = torch.tensor(target[:-1], device=device)
        y[row, : len(target)] = torch.tensor(target, device=device)
    x_mask = (y != -100).long()  # (B, n): the inputs that predict a scored token are the real ones
    x_mask[:, 0] = 1
    x_positions = positions[:, -1:] + torch.arange(span, device=device)  # (B, n): on from the last prompt token
    hidden = model.base_model(input_ids=x, attention_mask=torch.cat([mask[:, :-1], x_mask], dim=1), position_ids=x_positions,
                              use_cache=True, **cached).last_hidden_state  # (B, n, H)
    keep = y != -100
    logits = model.get_output_embeddings()(hidden[keep]).float()  # (N, V): only the scored positions
    loss = F.cross_entropy(logits, y[keep], reduction="sum")
    # 3. generation from the prompt's cache, which then recomputes the last prompt token only
    cache.crop(-span)  # a negative count removes that many tokens, in every transformers version since 4.36
    if plain_greedy(model, kwargs):
        return loss, int(keep.sum()), _greedy(model, cached, ids[:, -1], mask, positions[:, -1], kwargs=kwargs)
    generated = model.generate(input_ids=ids, attention_mask=mask, **cached, **kwargs)
    return loss, int(keep.sum()), generated[:, width:].tolist()


#: Generation settings (the call's or the model's generation_config) that change greedy search; none may be set.
_PROCESSORS = ("min_length", "min_new_tokens", "repetition_penalty", "encoder_repetition_penalty", "no_repeat_ngram_size",
               "encoder_no_repeat_ngram_size", "bad_words_ids", "forced_bos_token_id", "forced_eos_token_id",
               "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens", "sequence_bias",
               "guidance_scale", "renormalize_logits", "remove_invalid_values", "stop_strings", "watermarking_config")
_NEUTRAL = (None, 0, 1, 1.0, False, [], {})


def plain_greedy(model: Any, kwargs: dict[str, Any]) -> bool:
    """Whether ``generate`` with ``kwargs`` is plain greedy search: the argmax, and a row ends at EOS or the limit."""
    config = model.generation_config
    return (not kwargs.get("do_sample") and kwargs.get("num_beams", 1) == 1
            and all(kwargs.get(name, getattr(config, name, None)) in _NEUTRAL for name in _PROCESSORS))


# Greedy search that drops each row as it ends. Why not ``generate``: it keeps a finished row in the batch
# (decoding padding) until every row has ended; on CPU a decoding step costs about the same per row whatever the
# batch, so with outputs of 10 tokens under a limit of 22 about half of its decoding is spent on rows that have
# ended (docs/speed.md). The tokens are the same: each step's argmax, with the positions, attention and cache
# ``generate`` would use (a test compares both, rows ending at different steps).

def _greedy(model: Any, cached: dict[str, Any], last: Any, mask: Any, position: Any, *,
            kwargs: dict[str, Any]) -> list[list[int]]:
    """Decoder-only, from a prompt cache that lacks only the prompts' last token: ``last`` (B,) those tokens,
    ``mask`` (B, P) the prompts' attention mask, ``position`` (B,) the position of each last token."""
    import torch

    cache = next(iter(cached.values()))
    head = model.get_output_embeddings()
    tokens, position = last[:, None], position[:, None]  # (b, 1) each
    search = _Search(kwargs, rows=last.shape[0])
    while True:
        hidden = model.base_model(input_ids=tokens, attention_mask=mask, position_ids=position, use_cache=True,
                                  **cached).last_hidden_state[:, -1]  # (b, H)
        chosen = head(hidden).float().argmax(-1)  # (b,)
        keep = search.step(chosen.tolist())
        if keep is None:
            return search.outputs
        if len(keep) < chosen.shape[0]:
            index = torch.tensor(keep, device=mask.device)
            cache.batch_select_indices(index)
            chosen, mask, position = chosen[index], mask[index], position[index]
        tokens, position = chosen[:, None], position + 1
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)  # (b, P + steps)


def _greedy_seq2seq(model: Any, encoded: Any, mask: Any, *, start: int, kwargs: dict[str, Any]) -> list[list[int]]:
    """Encoder-decoder, from the encoder's outputs (``last_hidden_state`` (B, S, H)) and its attention mask (B, S)."""
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    states = encoded.last_hidden_state  # (b, S, H)
    tokens = torch.full((states.shape[0], 1), start, dtype=torch.long, device=states.device)  # (b, 1)
    cache: Any = None
    name = _cache_argument(model)
    search = _Search(kwargs, rows=states.shape[0])
    while True:
        out = model(encoder_outputs=BaseModelOutput(last_hidden_state=states), attention_mask=mask,
                    decoder_input_ids=tokens, use_cache=True, **({} if cache is None else {name: cache}))
        cache = out.past_key_values  # (self-attention, cross-attention) per layer
        chosen = out.logits[:, -1].float().argmax(-1)  # (b,)
        keep = search.step(chosen.tolist())
        if keep is None:
            return search.outputs
        if len(keep) < chosen.shape[0]:
            index = torch.tensor(keep, device=states.device)
            cache.batch_select_indices(index)
            chosen, mask, states = chosen[index], mask[index], states[index]
        tokens = chosen[:, None]


class _Search:
    """The rows of a greedy search: each one's tokens so far, and which are still decoding."""

    def __init__(self, kwargs: dict[str, Any], *, rows: int) -> None:
        eos = kwargs.get("eos_token_id")
        self.stops = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        self.limit = kwargs["max_new_tokens"]
        self.rows = list(range(rows))  # the output each batch row feeds
        self.outputs: list[list[int]] = [[] for _ in self.rows]

    def step(self, chosen: list[int]) -> list[int] | None:
        """Record one token per batch row; the batch rows that go on (None when none does)."""
        alive = []
        for index, (row, token) in enumerate(zip(self.rows, chosen)):
            self.outputs[row].append(token)
            if token not in self.stops and len(self.outputs[row]) < self.limit:
                alive.append(index)
        self.rows = [self.rows[i] for i in alive]
        return alive or None


def _cache_argument(model: Any) -> str:
    import inspect

    return "cache" if "cache" in inspect.signature(model.base_model.forward).parameters else "past_key_values"
