"""The attention implementation a model is loaded with: FlashAttention 2, SDPA or eager, for every combination.

No GPU and no flash_attn package are needed: the rule is a pure function of the model
class, the device type and the precision; "is flash_attn installed" is looked up with
``importlib.util.find_spec``, which the tests replace.
"""

from __future__ import annotations

import importlib.util
import itertools
from typing import Any

import pytest

from texttune.backbones import attention
from texttune.backbones.attention import EAGER, FLASH, SDPA, AttentionChoice, choose_attention, model_class_for


class FlashAndSdpa:
    _supports_flash_attn = True
    _supports_sdpa = True


class OldFlashName:  # a class written for transformers 4 (the flag's former name), no SDPA
    _supports_flash_attn_2 = True


class SdpaOnly:
    _supports_flash_attn = False
    _supports_sdpa = True


class Neither:
    pass


CLASSES = (FlashAndSdpa, OldFlashName, SdpaOnly, Neither)
DEVICES = ("cuda", "cpu", "mps")
PRECISIONS = ("32", "bf16-mixed", "16-mixed")


def expected(cls: type, device: str, precision: str, installed: bool) -> str:
    flash = getattr(cls, "_supports_flash_attn", False) or getattr(cls, "_supports_flash_attn_2", False)
    if flash and device == "cuda" and precision != "32" and installed:
        return FLASH
    return SDPA if getattr(cls, "_supports_sdpa", False) else EAGER


@pytest.mark.parametrize("cls, device, precision, installed",
                         list(itertools.product(CLASSES, DEVICES, PRECISIONS, (True, False))))
def test_every_combination(cls: type, device: str, precision: str, installed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (object() if installed else None) if name == "flash_attn" else real(name, *a))
    assert attention.flash_attention_installed() is installed
    choice = choose_attention(cls, device_type=device, precision=precision)
    assert choice.implementation == expected(cls, device, precision, installed)
    assert choice.model_kwargs() == {"attn_implementation": choice.implementation}
    assert choice.reason  # always says why
    if cls not in (FlashAndSdpa, OldFlashName):
        assert "does not support FlashAttention" in choice.reason
    elif device != "cuda":
        assert "CUDA only" in choice.reason
    elif precision == "32":
        assert "half-precision" in choice.reason
    elif not installed:
        assert "flash_attn package is not installed" in choice.reason
    # the explicit argument gives the same answer as the look-up
    assert choose_attention(cls, device_type=device, precision=precision, flash_installed=installed) == choice


def test_an_instance_is_judged_by_its_class() -> None:
    choice = choose_attention(FlashAndSdpa(), device_type="cuda", precision="bf16-mixed", flash_installed=True)
    assert choice.implementation == FLASH and "FlashAndSdpa" in choice.reason


def test_unknown_class_leaves_the_choice_to_transformers() -> None:
    choice = choose_attention(None, device_type="cuda", precision="bf16-mixed", flash_installed=True)
    assert choice == AttentionChoice(None, choice.reason) and choice.model_kwargs() == {}


@pytest.mark.parametrize("auto_class, config_class, model_class", [
    ("AutoModelForSeq2SeqLM", "T5Config", "T5ForConditionalGeneration"),
    ("AutoModelForCausalLM", "LlamaConfig", "LlamaForCausalLM"),
    ("AutoModelForTokenClassification", "BertConfig", "BertForTokenClassification"),
    ("AutoModelForSeq2SeqLM", "EncoderDecoderConfig", "EncoderDecoderModel"),
])
def test_the_class_an_auto_class_builds(auto_class: str, config_class: str, model_class: str) -> None:
    import transformers

    config: Any = getattr(transformers, config_class)
    if config_class == "EncoderDecoderConfig":
        bert = transformers.BertConfig()
        config = config.from_encoder_decoder_configs(bert, bert)
    else:
        config = config()
    assert model_class_for(auto_class, config).__name__ == model_class


def test_real_transformers_classes() -> None:
    import transformers

    t5 = choose_attention(transformers.T5ForConditionalGeneration, device_type="cuda", precision="bf16-mixed",
                          flash_installed=True)
    assert t5.implementation == SDPA and "does not support FlashAttention" in t5.reason
    llama = choose_attention(transformers.LlamaForCausalLM, device_type="cuda", precision="bf16-mixed", flash_installed=True)
    assert llama.implementation == FLASH
    assert choose_attention(transformers.LlamaForCausalLM, device_type="cpu", precision="bf16-mixed").implementation == SDPA


def test_a_config_no_table_knows_gives_no_class() -> None:
    import transformers

    class CustomConfig(transformers.PretrainedConfig):
        model_type = "texttune-test-custom"

    assert model_class_for("AutoModelForCausalLM", CustomConfig()) is None
    assert model_class_for("NoSuchAutoClass", transformers.LlamaConfig()) is None
    assert model_class_for("AutoModelForQuestionAnswering", transformers.T5Config()) is not None  # T5 has a QA head


def test_actual_attention_reads_the_loaded_config() -> None:
    import transformers

    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=50))
    assert attention.actual_attention(model) in {SDPA, EAGER}
    model.set_attn_implementation(EAGER)
    assert attention.actual_attention(model) == EAGER
    assert attention.actual_attention(object()) is None
