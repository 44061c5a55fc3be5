"""Map a transformers generation config to CTranslate2's decoding arguments, or refuse.

The CTranslate2 backend must produce what ``model.generate`` would, so it starts
from the same *effective* config transformers uses: the model's
``generation_config.json`` updated with texttune's options
(:func:`texttune.inference.backends.generation_kwargs`). Every setting that
changes which tokens come out is either mapped, or refused with a
:class:`~texttune.errors.ConfigError` naming it; none is dropped silently.

Checked equivalences (tests/integration/test_ctranslate2.py, and by hand on tiny models):

- ``max_new_tokens`` / ``min_new_tokens``: CTranslate2's decoding length counts
  generated tokens the same way; the end token is never returned.
- BART's ``forced_bos_token_id``, and the target language of mBART-50/NLLB/M2M100
  (``tasks/lang_codes.py``), becomes a one-token target prefix, and its
  ``forced_eos_token_id`` (EOS forced at the last position) one token less to
  decode: the same tokens once special tokens are skipped.
- T5/BART/Marian decoder start tokens are written by the converter from the model config.
- Greedy decoding (with min/max lengths, forced tokens, encoder-decoder
  repetition penalties and n-gram blocking) gives identical tokens.
- Honoured with a different rule, and a warning says so once: decoder-only
  ``repetition_penalty`` and ``no_repeat_ngram_size`` (transformers also counts the
  prompt's tokens, CTranslate2 only the completion's); BART's repetition penalty
  (transformers also penalizes the decoder start token, which is BART's EOS); beam
  search (CTranslate2 stops like transformers' ``early_stopping=True``, whose
  default is False).
- Sampling with beam search crashes CTranslate2 4.x (segmentation fault): refused.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from texttune.config import GenerationConfig
from texttune.errors import ConfigError
from texttune.inference.backends import generation_kwargs

log = logging.getLogger("texttune.inference")

#: Generation settings CTranslate2 has no equivalent for, with the value that means "off".
_NO_EQUIVALENT: dict[str, Any] = {
    "begin_suppress_tokens": None, "forced_decoder_ids": None, "sequence_bias": None, "typical_p": 1.0,
    "epsilon_cutoff": 0.0, "eta_cutoff": 0.0, "min_p": None, "top_h": None, "diversity_penalty": 0.0,
    "num_beam_groups": 1, "penalty_alpha": None, "encoder_repetition_penalty": 1.0, "encoder_no_repeat_ngram_size": 0,
    "exponential_decay_length_penalty": None, "guidance_scale": None, "force_words_ids": None, "constraints": None,
    "stop_strings": None, "watermarking_config": None, "dola_layers": None, "num_return_sequences": 1,
}


@dataclass
class DecodingPlan:
    """What one ``translate_batch`` / ``generate_batch`` call needs besides the inputs."""

    kwargs: dict[str, Any]  # CTranslate2 keyword arguments
    prefix: list[str] = field(default_factory=list)  # tokens forced first (BART's BOS); stripped from the results
    steps: int = 0  # tokens to decode; 0 means every completion is empty (max_new_tokens 1 with a forced EOS)
    warnings: list[str] = field(default_factory=list)


def effective_config(generation_config: Any, options: GenerationConfig, *, pad_token_id: int,
                     eos_token_id: int | list[int] | None, forced_bos_token_id: int | None = None) -> Any:
    """The config ``model.generate`` would run with: the model's own, updated with texttune's options.

    ``forced_bos_token_id`` (a many-to-many model's target language) becomes the target prefix, as BART's does.
    """
    config = copy.deepcopy(generation_config)
    config.update(**generation_kwargs(options, pad_token_id=pad_token_id, eos_token_id=eos_token_id,
                                      forced_bos_token_id=forced_bos_token_id))
    return config


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(value)] if isinstance(value, int) else [int(v) for v in value]


def _refuse_unsupported(config: Any, *, decoder_only: bool) -> None:
    for name, off in _NO_EQUIVALENT.items():
        value = getattr(config, name, off)
        if value not in (off, None, [], {}):
            raise ConfigError(f"generation setting {name}={value!r} (from the model's generation_config.json) has no "
                              "CTranslate2 equivalent; remove it there, or use --backend transformers")
    if config.do_sample and config.num_beams > 1:
        raise ConfigError("sampling with beam search (--do-sample with --num-beams > 1) is not supported by the ctranslate2 "
                          "backend; use one or the other, or --backend transformers")
    if decoder_only and (getattr(config, "min_length", 0) or 0) > 0:
        raise ConfigError(f"min_length={config.min_length} in the model's generation_config.json counts prompt tokens, which "
                          "the ctranslate2 backend cannot do for decoder-only models; use --min-new-tokens instead")
    if decoder_only and getattr(config, "forced_bos_token_id", None) is not None:
        raise ConfigError("forced_bos_token_id in a decoder-only model's generation_config.json is not supported by the "
                          "ctranslate2 backend; remove it there, or use --backend transformers")


def _suppressed(config: Any, tokenizer: Any, vocabulary: set[str]) -> list[list[str]]:
    """``suppress_tokens`` and ``bad_words_ids`` as token sequences (ones CTranslate2 cannot emit anyway are left out)."""
    sequences = [[t] for t in _ids(getattr(config, "suppress_tokens", None))]
    sequences += [list(s) for s in (getattr(config, "bad_words_ids", None) or [])]
    out = []
    for ids in sequences:
        tokens = tokenizer.convert_ids_to_tokens(ids)
        if all(t in vocabulary for t in tokens):  # e.g. Marian's <pad>: the converter drops it from the vocabulary
            out.append(tokens)
    return out


def plan_decoding(config: Any, tokenizer: Any, *, decoder_only: bool, vocabulary: set[str]) -> DecodingPlan:
    """CTranslate2 arguments equivalent to the effective transformers ``config``; ConfigError if there are none."""
    _refuse_unsupported(config, decoder_only=decoder_only)
    steps = config.max_new_tokens - (1 if config.forced_eos_token_id is not None else 0)
    min_new = config.min_new_tokens or 0
    if not decoder_only and (config.min_length or 0) > 1:  # counts the decoder start token
        min_new = max(min_new, config.min_length - 1)
    kwargs: dict[str, Any] = {
        "beam_size": config.num_beams, "num_hypotheses": 1, "return_end_token": False,
        "end_token": _ids(config.eos_token_id),
        "length_penalty": config.length_penalty if config.length_penalty is not None else 1.0,
        "repetition_penalty": config.repetition_penalty if config.repetition_penalty is not None else 1.0,
        "no_repeat_ngram_size": config.no_repeat_ngram_size or 0,
        "sampling_topk": 1, "sampling_topp": 1.0, "sampling_temperature": 1.0,
    }
    if config.do_sample:
        kwargs.update(sampling_topk=config.top_k or 0,  # 0: the whole vocabulary, like transformers' top_k=0
                      sampling_topp=config.top_p if config.top_p is not None else 1.0,
                      sampling_temperature=config.temperature if config.temperature is not None else 1.0)
    suppressed = _suppressed(config, tokenizer, vocabulary)
    if suppressed:
        kwargs["suppress_sequences"] = suppressed
    if decoder_only:
        kwargs.update(max_length=max(steps, 0), min_length=min_new, include_prompt_in_result=False)
    else:
        kwargs.update(max_decoding_length=max(steps, 0), min_decoding_length=min_new, max_input_length=0)
    plan = DecodingPlan(kwargs=kwargs, steps=max(steps, 0))
    if not decoder_only and config.forced_bos_token_id is not None:
        plan.prefix = tokenizer.convert_ids_to_tokens([config.forced_bos_token_id])
    plan.warnings = _differences(config, kwargs, decoder_only=decoder_only)
    return plan


def _differences(config: Any, kwargs: dict[str, Any], *, decoder_only: bool) -> list[str]:
    """Settings CTranslate2 honours with a different rule than transformers: said once, not refused."""
    out = []
    if decoder_only and (kwargs["repetition_penalty"] != 1.0 or kwargs["no_repeat_ngram_size"]):
        out.append("with the ctranslate2 backend, repetition_penalty and no_repeat_ngram_size look at the generated "
                   "tokens only; transformers also counts the prompt's, so outputs may differ")
    start = getattr(config, "decoder_start_token_id", None)
    if not decoder_only and kwargs["repetition_penalty"] != 1.0 and start is not None and start in kwargs["end_token"]:
        out.append("with the ctranslate2 backend, repetition_penalty does not count the decoder start token; this model "
                   "starts with its end token (BART style), which transformers therefore penalizes, so outputs may differ")
    if config.num_beams > 1 and config.early_stopping is not True:
        shown = False if config.early_stopping is None else config.early_stopping  # None is transformers' default, False
        out.append(f"ctranslate2 beam search stops once num_beams hypotheses are finished (transformers' early_stopping=True); "
                   f"this model generates with early_stopping={shown!r}, so beam outputs may differ")
    return out
