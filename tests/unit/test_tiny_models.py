"""Checks that the tiny test models load, generate and follow their families' conventions.

Why: every other model test trusts these checkpoints; if a special-token id or
a config field drifted, failures elsewhere would be confusing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSeq2SeqLM,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedModel,
)

import tiny_models

TinyModelDir = Callable[[str], Path]

AUTO_CLASS = {
    "t5": AutoModelForSeq2SeqLM,
    "bart": AutoModelForSeq2SeqLM,
    "bert2bert": AutoModelForSeq2SeqLM,
    "llama": AutoModelForCausalLM,
    "llama-chat": AutoModelForCausalLM,
    "bert": AutoModelForMaskedLM,
}

#: kind -> {tokenizer attribute: (token, id)}; None means "must not be set".
EXPECTED_SPECIALS: dict[str, dict[str, tuple[str, int] | None]] = {
    "t5": {"pad_token": ("<pad>", 0), "eos_token": ("</s>", 1), "unk_token": ("<unk>", 2), "bos_token": None},
    "bart": {
        "bos_token": ("<s>", 0),
        "pad_token": ("<pad>", 1),
        "eos_token": ("</s>", 2),
        "unk_token": ("<unk>", 3),
        "mask_token": ("<mask>", 4),
    },
    "llama": {"unk_token": ("<unk>", 0), "bos_token": ("<s>", 1), "eos_token": ("</s>", 2), "pad_token": None},
    "llama-chat": {
        "unk_token": ("<unk>", 0),
        "bos_token": ("<s>", 1),
        "eos_token": ("<|im_end|>", 4),
        "pad_token": ("<|im_end|>", 4),
    },
    "bert2bert": {
        "pad_token": ("[PAD]", 0),
        "unk_token": ("[UNK]", 1),
        "cls_token": ("[CLS]", 2),
        "sep_token": ("[SEP]", 3),
        "mask_token": ("[MASK]", 4),
    },
    "bert": {
        "pad_token": ("[PAD]", 0),
        "unk_token": ("[UNK]", 1),
        "cls_token": ("[CLS]", 2),
        "sep_token": ("[SEP]", 3),
        "mask_token": ("[MASK]", 4),
    },
}

SENTENCES = ["Plasma is unable to start.", "This package contains the development files for the library."]


def _load(kind: str, tiny_model_dir: TinyModelDir) -> tuple[object, PreTrainedModel]:
    path = tiny_model_dir(kind)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AUTO_CLASS[kind].from_pretrained(path)
    model.eval()
    return tokenizer, model


def _vocab_size(model: PreTrainedModel) -> int:
    config = model.config.decoder if model.config.model_type == "encoder-decoder" else model.config
    return int(config.vocab_size)


@pytest.mark.parametrize("kind", tiny_models.KINDS)
def test_loads_with_auto_classes_and_vocab_matches(kind: str, tiny_model_dir: TinyModelDir) -> None:
    tokenizer, model = _load(kind, tiny_model_dir)
    assert len(tokenizer) == _vocab_size(model)
    assert 400 <= len(tokenizer) <= 1000
    assert tokenizer.model_max_length == 512
    assert sum(p.numel() for p in model.parameters()) < 500_000
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)


@pytest.mark.parametrize("kind", tiny_models.KINDS)
def test_special_tokens(kind: str, tiny_model_dir: TinyModelDir) -> None:
    tokenizer, _ = _load(kind, tiny_model_dir)
    for attribute, expected in EXPECTED_SPECIALS[kind].items():
        if expected is None:
            assert getattr(tokenizer, attribute) is None, attribute
        else:
            assert (getattr(tokenizer, attribute), getattr(tokenizer, f"{attribute}_id")) == expected, attribute
    for name, token_id in tiny_models.SPECIAL_TOKEN_IDS[kind].items():
        assert token_id < len(tokenizer), name


@pytest.mark.filterwarnings("ignore:Version v4.12.0 introduces:FutureWarning")  # bert2bert with labels
@pytest.mark.parametrize("kind", ["t5", "bart", "bert2bert"])
def test_seq2seq_generates_on_a_batch(kind: str, tiny_model_dir: TinyModelDir) -> None:
    tokenizer, model = _load(kind, tiny_model_dir)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    assert set(batch) == set(tokenizer.model_input_names)
    with torch.no_grad():
        output = model.generate(**batch, max_new_tokens=6, do_sample=False)
    assert output.shape[0] == len(SENTENCES)
    start = tiny_models.SPECIAL_TOKEN_IDS[kind]["decoder_start"]
    assert output[:, 0].tolist() == [start] * len(SENTENCES)
    assert model.generation_config.decoder_start_token_id == start
    assert model.config.decoder_start_token_id == start
    # a forward pass with labels gives a finite loss (what fine-tuning needs)
    labels = tokenizer(["Plasma", "Development files"], padding=True, return_tensors="pt")["input_ids"]
    labels[labels == tokenizer.pad_token_id] = -100
    with torch.no_grad():
        loss = model(**batch, labels=labels).loss
    assert torch.isfinite(loss)


@pytest.mark.parametrize("kind", ["llama", "llama-chat"])
def test_causal_generates_with_left_padding(kind: str, tiny_model_dir: TinyModelDir) -> None:
    tokenizer, model = _load(kind, tiny_model_dir)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**batch, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    prompt_length = batch["input_ids"].shape[1]
    assert output.shape == (len(SENTENCES), prompt_length + 5)
    assert torch.equal(output[:, :prompt_length], batch["input_ids"])
    mask = batch["attention_mask"]
    assert (mask[:, 0] == 0).any() and bool(mask[:, -1].all())  # padding really is on the left


def test_t5_conventions(tiny_model_dir: TinyModelDir) -> None:
    tokenizer, model = _load("t5", tiny_model_dir)
    ids = tokenizer("Plasma is unable to start.")["input_ids"]
    assert ids[-1] == 1 and 1 not in ids[:-1] and 0 not in ids
    assert model.config.model_type == "t5"
    assert (model.config.d_model, model.config.d_ff, model.config.d_kv) == (32, 64, 16)
    assert (model.config.num_layers, model.config.num_decoder_layers, model.config.num_heads) == (2, 2, 2)
    assert model.config.pad_token_id == 0 and model.config.eos_token_id == 1


def test_bart_conventions(tiny_model_dir: TinyModelDir) -> None:
    tokenizer, model = _load("bart", tiny_model_dir)
    assert tokenizer("Plasma")["input_ids"][0] == 0 and tokenizer("Plasma")["input_ids"][-1] == 2
    config, generation = model.config, model.generation_config
    assert (config.bos_token_id, config.pad_token_id, config.eos_token_id, config.decoder_start_token_id) == (0, 1, 2, 2)
    assert (generation.bos_token_id, generation.pad_token_id, generation.eos_token_id) == (0, 1, 2)
    assert (generation.forced_bos_token_id, generation.forced_eos_token_id) == (0, 2)
    assert (config.d_model, config.encoder_ffn_dim, config.encoder_attention_heads) == (32, 64, 2)
    assert tokenizer.decode(tokenizer("Enter the search term.")["input_ids"], skip_special_tokens=True) == (
        "Enter the search term."
    )


def test_llama_has_no_pad_and_no_chat_template(tiny_model_dir: TinyModelDir) -> None:
    tokenizer, model = _load("llama", tiny_model_dir)
    assert tokenizer.pad_token is None
    assert tokenizer.chat_template is None
    assert model.config.pad_token_id is None
    ids = tokenizer("Plasma is unable to start.")["input_ids"]
    assert ids[0] == 1 and ids[-1] != 2
    assert (model.config.hidden_size, model.config.intermediate_size) == (32, 64)
    assert (model.config.num_hidden_layers, model.config.num_attention_heads) == (2, 2)


def test_llama_chat_template(tiny_model_dir: TinyModelDir) -> None:
    tokenizer, model = _load("llama-chat", tiny_model_dir)
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert rendered == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert ids.count(3) == 2 and ids.count(4) == 2  # markers are single special tokens
    assert tokenizer(rendered)["input_ids"] == ids  # nothing added automatically
    assert tokenizer.decode(ids) == rendered
    assert (model.config.eos_token_id, model.config.pad_token_id) == (4, 4)
    assert (model.generation_config.eos_token_id, model.generation_config.pad_token_id) == (4, 4)


def test_bert2bert_conventions(tiny_model_dir: TinyModelDir) -> None:
    _, model = _load("bert2bert", tiny_model_dir)
    config = model.config
    assert config.model_type == "encoder-decoder"
    assert config.decoder.is_decoder and config.decoder.add_cross_attention
    assert not config.encoder.is_decoder
    assert (config.decoder_start_token_id, config.eos_token_id, config.pad_token_id) == (2, 3, 0)
    generation = model.generation_config
    assert (generation.decoder_start_token_id, generation.eos_token_id, generation.pad_token_id) == (2, 3, 0)
    assert AutoConfig.from_pretrained(tiny_model_dir("bert2bert")).decoder_start_token_id == 2


def test_bert_wordpiece_pairs_and_heads(tiny_model_dir: TinyModelDir) -> None:
    path = tiny_model_dir("bert")
    tokenizer, model = _load("bert", tiny_model_dir)
    encoding = tokenizer("Where is it?", "It is in the Debian archive.")
    assert encoding["input_ids"][0] == 2 and encoding["input_ids"].count(3) == 2
    assert set(encoding["token_type_ids"]) == {0, 1}
    assert tokenizer.decode(tokenizer("The DEBIAN Archive")["input_ids"], skip_special_tokens=True) == "the debian archive"
    multi_piece = tokenizer("Xylophones", add_special_tokens=False).word_ids()
    assert len(multi_piece) > 1 and set(multi_piece) == {0}
    masked = tokenizer(["the [MASK] archive"], return_tensors="pt")
    assert 4 in masked["input_ids"][0].tolist()
    with torch.no_grad():
        logits = model(**masked).logits
    assert logits.shape[-1] == len(tokenizer)
    # the same checkpoint serves token classification and extractive QA (new heads)
    assert AutoModelForTokenClassification.from_pretrained(path, num_labels=5).num_labels == 5
    assert AutoModelForQuestionAnswering.from_pretrained(path).config.model_type == "bert"


def test_builds_are_deterministic_and_keep_the_callers_rng(tmp_path: Path, tiny_model_dir: TinyModelDir) -> None:
    torch.manual_seed(1234)
    expected_draw = torch.rand(3)
    torch.manual_seed(1234)
    again = tiny_models.build_tiny_model("bart", tmp_path / "bart")
    assert torch.equal(torch.rand(3), expected_draw)
    first = tiny_model_dir("bart")
    for name in ("tokenizer.json", "model.safetensors", "config.json", "generation_config.json"):
        assert (again / name).read_bytes() == (first / name).read_bytes(), name


def test_tokenizers_are_identical_across_processes() -> None:
    """Hash-map order differs per process, so determinism must be checked in a new one."""
    here = {kind: tiny_models.build_tiny_tokenizer(kind).backend_tokenizer.to_str() for kind in tiny_models.KINDS}
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import tiny_models; "
        "print(json.dumps({k: tiny_models.build_tiny_tokenizer(k).backend_tokenizer.to_str() for k in tiny_models.KINDS}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(Path(tiny_models.__file__).parent)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    there = json.loads(result.stdout.strip().splitlines()[-1])
    for kind in tiny_models.KINDS:
        assert there[kind] == here[kind], kind


def test_unknown_kind_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tiny model kind"):
        tiny_models.build_tiny_model("gpt-17", tmp_path)


def test_session_environment_is_offline_and_isolated(texttune_home: Path) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["HF_DATASETS_OFFLINE"] == "1"
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
    assert Path(os.environ["TEXTTUNE_HOME"]) == texttune_home
    assert texttune_home.is_dir()
    from huggingface_hub import constants

    assert constants.is_offline_mode()


def test_corpus_comes_from_the_data_samples() -> None:
    texts = tiny_models.corpus_texts()
    assert len(texts) == 2 * (40 + 40 + 30)
    assert all(isinstance(text, str) and text for text in texts)
