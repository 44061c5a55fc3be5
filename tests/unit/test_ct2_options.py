"""Mapping transformers generation settings to CTranslate2, and splitting decoder-only batches by length.

Pure functions: no CTranslate2 needed. The end-to-end equivalence is checked in
tests/integration/test_ctranslate2.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from texttune.config import GenerationConfig
from texttune.errors import ConfigError
from texttune.inference.ct2_backend import length_groups
from texttune.inference.ct2_options import effective_config, plan_decoding


class Tokenizer:
    """Just enough of a tokenizer: ids <-> "t<id>" strings."""

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [f"t{i}" for i in ids]


VOCABULARY = {f"t{i}" for i in range(100)}


def plan(model: dict[str, Any], *, decoder_only: bool = False, **options: Any) -> Any:
    from transformers import GenerationConfig as HFGenerationConfig

    config = effective_config(HFGenerationConfig(**model), GenerationConfig(**{"max_new_tokens": 10, **options}),
                              pad_token_id=0, eos_token_id=model.get("eos_token_id", 1))
    return plan_decoding(config, Tokenizer(), decoder_only=decoder_only, vocabulary=VOCABULARY)


def test_greedy_lengths_and_end_tokens() -> None:
    seq2seq = plan({"eos_token_id": [1, 7]}, min_new_tokens=3)
    assert seq2seq.kwargs["max_decoding_length"] == 10 and seq2seq.kwargs["min_decoding_length"] == 3
    assert seq2seq.kwargs["end_token"] == [1, 7] and seq2seq.kwargs["beam_size"] == 1 and seq2seq.kwargs["sampling_topk"] == 1
    assert seq2seq.kwargs["max_input_length"] == 0  # texttune truncates inputs itself
    causal = plan({"eos_token_id": 2}, decoder_only=True)
    assert causal.kwargs["max_length"] == 10 and causal.kwargs["include_prompt_in_result"] is False
    assert causal.kwargs["end_token"] == [2] and not causal.warnings


def test_bart_forced_tokens() -> None:
    bart = plan({"eos_token_id": 2, "forced_bos_token_id": 0, "forced_eos_token_id": 2})
    assert bart.prefix == ["t0"]  # transformers forces <s> first
    assert bart.kwargs["max_decoding_length"] == 9 and bart.steps == 9  # and </s> last: one token less to decode
    assert plan({"eos_token_id": 2, "forced_eos_token_id": 2}, max_new_tokens=1).steps == 0
    assert plan({"min_length": 5}).kwargs["min_decoding_length"] == 4  # min_length counts the decoder start token


def test_sampling_and_penalties() -> None:
    sampled = plan({}, do_sample=True, top_k=None, top_p=0.9, temperature=0.5).kwargs
    assert (sampled["sampling_topk"], sampled["sampling_topp"], sampled["sampling_temperature"]) == (0, 0.9, 0.5)
    beams = plan({"early_stopping": True}, num_beams=4, length_penalty=2.0, repetition_penalty=1.2, no_repeat_ngram_size=3)
    assert beams.kwargs["beam_size"] == 4 and beams.kwargs["length_penalty"] == 2.0
    assert beams.kwargs["repetition_penalty"] == 1.2 and beams.kwargs["no_repeat_ngram_size"] == 3 and not beams.warnings
    assert "early_stopping=False" in plan({}, num_beams=2).warnings[0]
    assert "prompt" in plan({}, decoder_only=True, repetition_penalty=1.2).warnings[0]
    bart = plan({"eos_token_id": 2, "decoder_start_token_id": 2}, repetition_penalty=1.2)
    assert "decoder start token" in bart.warnings[0]


def test_suppressed_tokens_the_model_cannot_emit_are_left_out() -> None:
    kwargs = plan({"suppress_tokens": [5], "bad_words_ids": [[6, 7], [500]]}).kwargs
    assert kwargs["suppress_sequences"] == [["t5"], ["t6", "t7"]]  # t500 is not in the converted vocabulary


@pytest.mark.parametrize(("model", "options", "message"), [
    ({"typical_p": 0.5}, {}, r"typical_p=0\.5 .*no CTranslate2 equivalent"),
    ({"begin_suppress_tokens": [3]}, {}, "begin_suppress_tokens"),
    ({"num_beam_groups": 2, "diversity_penalty": 0.5}, {"num_beams": 4}, "no CTranslate2 equivalent"),
    ({}, {"do_sample": True, "num_beams": 2}, "sampling with beam search"),
])
def test_settings_without_equivalent_are_refused(model: dict[str, Any], options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan(model, **options)


def test_decoder_only_refusals() -> None:
    with pytest.raises(ConfigError, match="min-new-tokens"):
        plan({"min_length": 30}, decoder_only=True)
    with pytest.raises(ConfigError, match="forced_bos_token_id"):
        plan({"forced_bos_token_id": 1}, decoder_only=True)


def test_length_groups_split_a_long_tail_and_keep_similar_lengths_together() -> None:
    # The first batch of 16 Debian prompts (SmolLM2 chat template): one batch would feed 373 prompt
    # tokens one step at a time before the 64 new tokens.
    lengths = [524, 504, 473, 313, 311, 284, 270, 240, 228, 228, 179, 171, 167, 160, 158, 151]
    groups = length_groups(lengths, 64, example_cost=0.15)
    assert sorted(i for g in groups for i in g) == list(range(16)) and len(groups) > 2
    assert all(max(lengths[i] for i in g) - min(lengths[i] for i in g) < 64 for g in groups)
    assert length_groups([120, 118, 117, 115, 112, 110, 110, 107], 64, example_cost=0.15) == [list(range(8))]
    shuffled = [10, 300, 12, 305]
    assert sorted(map(sorted, length_groups(shuffled, 8, example_cost=0.15))) == [[0, 2], [1, 3]]
