"""A transformers fast tokenizer as GGUF metadata: vocabulary, merges, token types, special ids, add-BOS flag.

llama.cpp rebuilds a tokenizer from a handful of keys (``tokenizer.ggml.*``): the model kind
(``gpt2`` is byte-level BPE), the pre-tokenizer by name (the regular expressions that split text
before merging), every token in id order with its type, and the merges in rank order. It cannot
run an arbitrary ``tokenizer.json``: only byte-level BPE whose pre-tokenizer is one llama.cpp knows
and which has no normalizer is written here; anything else (WordPiece, Unigram, SentencePiece-style
byte-fallback BPE, a custom split) is refused in one line rather than exported to tokenize
differently in llama.cpp.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from texttune.errors import ConfigError

#: llama.cpp token types (llama_token_type): what each id is.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED = 1, 2, 3, 4, 5

#: Llama-3's split expression, as its tokenizer.json spells it (llama.cpp pre-tokenizer "llama-bpe").
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
                 r"|\s+(?!\S)|\s+")
#: Mistral's Tekken split (Mistral Nemo, Small 3; llama.cpp "tekken").
_TEKKEN_SPLIT = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
                 r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
#: Split expressions llama.cpp knows by name.
_SPLITS = {_LLAMA3_SPLIT: "llama-bpe", _TEKKEN_SPLIT: "tekken"}


@dataclass
class GGUFVocab:
    """Everything llama.cpp needs to tokenize as transformers does (see the module docstring)."""

    model: str  # tokenizer.ggml.model
    pre: str  # tokenizer.ggml.pre
    tokens: list[str]  # id order, padded to the embedding rows
    types: list[int]
    merges: list[str]  # "left right", rank order
    special_ids: dict[str, int] = field(default_factory=dict)  # bos / eos / unk / pad -> id
    add_bos: bool = False
    add_eos: bool = False
    chat_template: str | None = None


def _pre_tokenizer_name(pre: dict[str, Any] | None, where: str) -> str:
    """llama.cpp's name for this byte-level pre-tokenizer, or ConfigError.

    Recognised shapes: ``ByteLevel`` with its GPT-2 expression ("gpt-2"), individual ``Digits`` then
    ``ByteLevel`` (SmolLM's, "smollm"), Llama-3's or Mistral Tekken's ``Split`` then a ``ByteLevel`` without
    expression ("llama-bpe", "tekken").
    """
    steps = (pre or {}).get("pretokenizers", [pre]) if (pre or {}).get("type") == "Sequence" else [pre]
    kinds = [step.get("type") if step else None for step in steps]
    last = steps[-1] or {}
    if last.get("add_prefix_space"):
        raise ConfigError(f"{where}: GGUF cannot represent a byte-level pre-tokenizer that adds a prefix space; "
                          "llama.cpp adds none")
    if kinds == ["ByteLevel"] and last.get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and last.get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and not last.get("use_regex", True):
        pattern = (steps[0].get("pattern") or {}).get("Regex")
        if pattern in _SPLITS and steps[0].get("behavior") == "Isolated" and not steps[0].get("invert"):
            return _SPLITS[pattern]
    raise ConfigError(f"{where}: GGUF cannot represent this tokenizer's pre-tokenizer ({' + '.join(map(str, kinds))}); "
                      "llama.cpp knows byte-level BPE split as GPT-2, SmolLM, Llama-3 or Mistral Tekken do")


def _check_byte_level_bpe(spec: dict[str, Any], where: str) -> None:
    """ConfigError unless the tokenizer is byte-level BPE without a normalizer (what llama.cpp's gpt2 kind runs)."""
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        raise ConfigError(f"{where}: GGUF export needs a byte-level BPE tokenizer and this one is "
                          f"{model.get('type')}; llama.cpp would tokenize it differently")
    if model.get("byte_fallback") or (spec.get("decoder") or {}).get("type") != "ByteLevel":
        raise ConfigError(f"{where}: GGUF export supports byte-level BPE tokenizers (GPT-2, SmolLM, Llama-3, Tekken style); "
                          "this one is SentencePiece-style BPE (byte fallback), which texttune does not export yet")
    normalizer = spec.get("normalizer")
    if normalizer and not (normalizer.get("type") == "Sequence" and not normalizer.get("normalizers")):
        raise ConfigError(f"{where}: GGUF cannot represent this tokenizer's normalizer ({normalizer.get('type')}); "
                          "llama.cpp's byte-level BPE applies none")


def _merges(model: dict[str, Any]) -> list[str]:
    """The merges as "left right" strings (tokenizers writes pairs or strings, by version)."""
    return [merge if isinstance(merge, str) else " ".join(merge) for merge in model.get("merges", [])]


def _tokens(tokenizer: Any, rows: int, where: str) -> tuple[list[str], list[int]]:
    """Every token in id order and its llama.cpp type, padded with unused tokens up to ``rows`` embedding rows."""
    vocab = tokenizer.get_vocab()  # token -> id, added tokens included
    by_id = {index: token for token, index in vocab.items()}
    if max(by_id) >= rows:
        raise ConfigError(f"{where}: the tokenizer has ids up to {max(by_id)} but the model only {rows} embeddings")
    added = {index: token for index, token in tokenizer.added_tokens_decoder.items()}
    tokens, types = [], []
    for index in range(rows):
        if index not in by_id:
            tokens.append(f"[PAD{index}]")
            types.append(UNUSED)
        elif index in added:
            tokens.append(by_id[index])
            types.append(CONTROL if added[index].special else USER_DEFINED)
        else:
            tokens.append(by_id[index])
            types.append(NORMAL)
    if tokenizer.unk_token_id is not None and types[tokenizer.unk_token_id] == NORMAL:
        types[tokenizer.unk_token_id] = UNKNOWN
    return tokens, types


def _adds(tokenizer: Any) -> tuple[bool, bool]:
    """Whether encoding a text puts BOS in front / EOS behind (the tokenizer's post-processor decides)."""
    ids = tokenizer("a")["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    return bool(ids) and bos is not None and ids[0] == bos, len(ids) > 1 and eos is not None and ids[-1] == eos


def gguf_vocab(tokenizer: Any, *, rows: int, where: str) -> GGUFVocab:
    """The GGUF vocabulary of a transformers fast tokenizer for a model with ``rows`` embedding rows; ConfigError
    for one llama.cpp cannot run (``where`` names the model directory in the message)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"{where}: GGUF export needs a fast tokenizer (tokenizer.json)")
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    _check_byte_level_bpe(spec, where)
    pre = _pre_tokenizer_name(spec.get("pre_tokenizer"), where)
    tokens, types = _tokens(tokenizer, rows, where)
    special = {name: getattr(tokenizer, f"{name}_token_id") for name in ("bos", "eos", "unk", "pad")}
    add_bos, add_eos = _adds(tokenizer)
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    return GGUFVocab(model="gpt2", pre=pre, tokens=tokens, types=types, merges=_merges(spec["model"]),
                     special_ids={name: index for name, index in special.items() if index is not None},
                     add_bos=add_bos, add_eos=add_eos, chat_template=template)


def write_vocab(writer: Any, vocab: GGUFVocab) -> None:
    """Add the vocabulary's keys to a ``gguf.GGUFWriter``."""
    writer.add_tokenizer_model(vocab.model)
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    writer.add_token_merges(vocab.merges)
    adders = {"bos": writer.add_bos_token_id, "eos": writer.add_eos_token_id, "unk": writer.add_unk_token_id,
              "pad": writer.add_pad_token_id}
    for name, index in vocab.special_ids.items():
        adders[name](index)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)


__all__ = ["GGUFVocab", "gguf_vocab", "write_vocab"]
