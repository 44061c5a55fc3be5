"""Tiny random models with real-looking tokenizers, built locally for fast tests.

Why: texttune's tests must run offline (no model hub) and in seconds, yet they
need every model family the library supports (T5, BART, Llama with and without
a chat template, BERT-to-BERT encoder-decoder, plain BERT) with the same
special-token conventions as the real checkpoints, because that is where
fine-tuning code usually breaks (decoder start ids, missing pad tokens, EOS
handling, chat templates, token type ids).

Each builder trains a small tokenizer with the ``tokenizers`` library on the
real text samples in ``tests/data`` (see ``CORPUS_FILES``), wraps it in a
``transformers`` fast tokenizer, creates a randomly initialised model whose
vocabulary size equals ``len(tokenizer)``, and writes both with
``save_pretrained`` so the directory loads with the Auto classes.

Everything is deterministic: tokenizer training is deterministic for the
byte-level / metaspace BPE used here, the WordPiece vocabulary is built by a
deterministic counting rule (the ``tokenizers`` WordPiece trainer is not
deterministic across processes), and weights come from ``torch.manual_seed(0)``
inside a forked RNG so the caller's random state is left untouched.

Importing this module has no side effects and does not import torch or
transformers; only the builders do.

Usage::

    from tiny_models import build_tiny_model
    path = build_tiny_model("t5", tmp_path / "t5")
    model = AutoModelForSeq2SeqLM.from_pretrained(path)
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only, keeps import cheap
    from tokenizers import AddedToken, Tokenizer
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "CORPUS_FILES",
    "KINDS",
    "SPECIAL_TOKEN_IDS",
    "CHATML_TEMPLATE",
    "build_tiny_model",
    "build_tiny_tokenizer",
    "corpus_texts",
]

#: Kinds accepted by :func:`build_tiny_model`.
KINDS: tuple[str, ...] = ("t5", "bart", "llama", "llama-chat", "bert2bert", "bert")

#: Target tokenizer size; the real size is ``len(tokenizer)`` and is what the
#: model config gets.
VOCAB_SIZE = 800

DATA_DIR = Path(__file__).resolve().parent / "data"

#: Files (and their text fields) the tokenizers are trained on. Listed
#: explicitly so that new files in ``tests/data`` do not change vocabularies.
CORPUS_FILES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("summarization.jsonl", ("document", "summary")),
    ("translation.jsonl", ("en", "fr")),
    ("qg.jsonl", ("question", "answer_context")),
)

#: Special-token ids per kind, fixed by the order of the trainer's special
#: tokens (they do not depend on the corpus). Tests may rely on these.
SPECIAL_TOKEN_IDS: dict[str, dict[str, int]] = {
    # like t5-small: <pad>=0, </s>=1, <unk>=2; decoder starts with pad
    "t5": {"pad": 0, "eos": 1, "unk": 2, "decoder_start": 0},
    # like facebook/bart-base: <s>=0, <pad>=1, </s>=2, <unk>=3; decoder starts with </s>
    "bart": {"bos": 0, "pad": 1, "eos": 2, "unk": 3, "mask": 4, "decoder_start": 2},
    # like Llama-2: <unk>=0, <s>=1, </s>=2, no pad token
    "llama": {"unk": 0, "bos": 1, "eos": 2},
    # like SmolLM2-Instruct: ChatML markers, eos = pad = <|im_end|>
    "llama-chat": {"unk": 0, "bos": 1, "eos": 4, "pad": 4, "im_start": 3, "im_end": 4},  # </s> stays id 2
    # like bert2bert checkpoints: start with [CLS], stop at [SEP]
    "bert2bert": {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4, "decoder_start": 2, "eos": 3},
    "bert": {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4},
}

#: Minimal ChatML template (the SmolLM2 / Qwen layout, without a default system turn).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# --------------------------------------------------------------------------- corpus


def corpus_texts(data_dir: Path = DATA_DIR) -> list[str]:
    """Return the training text for the tiny tokenizers, in a fixed order.

    Why real text: tokenizers trained on it split English (and some French)
    into plausible sub-words, so tests see realistic sequence lengths and
    multi-piece words.
    """
    texts: list[str] = []
    for name, fields in CORPUS_FILES:
        path = data_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; regenerate it with `python scripts/make_samples.py`")
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    row = json.loads(line)
                    texts.extend(str(row[field]) for field in fields)
    return texts


# --------------------------------------------------------------------------- tokenizers


def _train_bpe(tokenizer: Tokenizer, special_tokens: list[str | AddedToken], byte_level: bool) -> None:
    """Train ``tokenizer`` (a BPE model) in place on :func:`corpus_texts`."""
    from tokenizers import pre_tokenizers, trainers

    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet() if byte_level else [],
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus_texts(), trainer=trainer)


def _metaspace_bpe(special_tokens: list[str], unk: str) -> Tokenizer:
    """SentencePiece-like BPE (``▁`` marks word starts), as used by T5."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    tokenizer = Tokenizer(models.BPE(unk_token=unk))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    _train_bpe(tokenizer, special_tokens, byte_level=False)
    return tokenizer


def _byte_level_bpe(special_tokens: list[str | AddedToken], unk: str | None) -> Tokenizer:
    """GPT-2-style byte-level BPE (BART, Llama-3/SmolLM2): never produces unknowns."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE(unk_token=unk))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    _train_bpe(tokenizer, special_tokens, byte_level=True)
    return tokenizer


def _wordpiece_vocab(tokenizer: Tokenizer, size: int) -> dict[str, int]:
    """Build a WordPiece vocabulary by a deterministic counting rule.

    Why not ``WordPieceTrainer``: its output changes from process to process
    (hash-map order), which would make the tiny BERT models non-reproducible.
    Rule: special tokens, every character and its ``##`` form (so any word of
    known characters is representable), then whole words, word prefixes and
    ``##`` suffixes of 2-6 characters ranked by ``count * (length - 1)``
    (characters saved), ties broken alphabetically.
    """
    assert tokenizer.normalizer is not None and tokenizer.pre_tokenizer is not None
    words: Counter[str] = Counter()
    for text in corpus_texts():
        normalized = tokenizer.normalizer.normalize_str(text)
        words.update(word for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(normalized))
    chars = sorted({char for word in words for char in word})
    candidates: Counter[str] = Counter()
    for word, count in words.items():
        if len(word) > 1:
            candidates[word] += count
        for n in range(2, min(len(word), 7)):
            candidates[word[:n]] += count
            candidates["##" + word[-n:]] += count

    def saved(piece: str) -> int:
        return candidates[piece] * (len(piece.removeprefix("##")) - 1)

    vocab: dict[str, int] = {}
    for token in [*_BERT_SPECIALS, *chars, *("##" + char for char in chars)]:
        vocab.setdefault(token, len(vocab))
    for piece in sorted(candidates, key=lambda p: (-saved(p), p)):
        if len(vocab) >= size:
            break
        vocab.setdefault(piece, len(vocab))
    return vocab


def _bert_wordpiece() -> Tokenizer:
    """Lower-casing BERT WordPiece tokenizer with [CLS] A [SEP] (B [SEP]) templates."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    probe = Tokenizer(models.WordPiece(vocab={"[UNK]": 0}, unk_token="[UNK]"))
    probe.normalizer = normalizers.BertNormalizer(lowercase=True, clean_text=True, handle_chinese_chars=True)
    probe.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    vocab = _wordpiece_vocab(probe, VOCAB_SIZE)

    tokenizer = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = probe.normalizer
    tokenizer.pre_tokenizer = probe.pre_tokenizer
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.add_special_tokens(_BERT_SPECIALS)
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return tokenizer


def _check_ids(tokenizer: Tokenizer, expected: dict[str, int]) -> None:
    """Fail loudly if a special token did not land on its documented id."""
    for token, token_id in expected.items():
        actual = tokenizer.token_to_id(token)
        if actual != token_id:
            raise RuntimeError(f"special token {token!r} has id {actual}, expected {token_id}")


def _wrap(tokenizer: Tokenizer, **kwargs: Any) -> PreTrainedTokenizerBase:
    """Wrap a ``tokenizers.Tokenizer`` as a transformers fast tokenizer (512 tokens max)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=512, **kwargs)


def _t5_tokenizer() -> PreTrainedTokenizerBase:
    """T5 conventions: no BOS, ``</s>`` appended to every sequence, pad id 0."""
    from tokenizers import processors

    tokenizer = _metaspace_bpe(["<pad>", "</s>", "<unk>"], unk="<unk>")
    _check_ids(tokenizer, {"<pad>": 0, "</s>": 1, "<unk>": 2})
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    return _wrap(
        tokenizer,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_input_names=["input_ids", "attention_mask"],
    )


def _bart_tokenizer() -> PreTrainedTokenizerBase:
    """BART/RoBERTa conventions: ``<s> A </s>`` and ``<s> A </s></s> B </s>``."""
    from tokenizers import AddedToken, processors

    mask = AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)
    tokenizer = _byte_level_bpe(["<s>", "<pad>", "</s>", "<unk>", mask], unk="<unk>")
    _check_ids(tokenizer, {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4})
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False)
    return _wrap(
        tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token=mask,
        model_input_names=["input_ids", "attention_mask"],
    )


def _llama_tokenizer(chat: bool) -> PreTrainedTokenizerBase:
    """Llama conventions (``<unk>``=0, ``<s>``=1, ``</s>``=2), optionally ChatML.

    The base tokenizer prepends ``<s>`` and has no pad token (callers must pick
    one, usually EOS). The chat tokenizer follows SmolLM2-Instruct: ChatML
    markers as special tokens, EOS and pad are ``<|im_end|>``, and nothing is
    added automatically because the chat template already frames each turn.
    """
    from tokenizers import processors

    specials: list[str | AddedToken] = ["<unk>", "<s>", "</s>"]
    if chat:
        specials += ["<|im_start|>", "<|im_end|>"]
    tokenizer = _byte_level_bpe(specials, unk="<unk>")
    _check_ids(tokenizer, {str(token): index for index, token in enumerate(specials)})
    common: dict[str, Any] = {
        "bos_token": "<s>",
        "unk_token": "<unk>",
        "model_input_names": ["input_ids", "attention_mask"],
    }
    if not chat:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
        )
        return _wrap(tokenizer, eos_token="</s>", **common)
    return _wrap(
        tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        chat_template=CHATML_TEMPLATE,
        **common,
    )


def _bert_tokenizer() -> PreTrainedTokenizerBase:
    """BERT conventions (lower-case WordPiece, token type ids for sentence pairs)."""
    tokenizer = _bert_wordpiece()
    _check_ids(tokenizer, {token: index for index, token in enumerate(_BERT_SPECIALS)})
    return _wrap(
        tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        do_lower_case=True,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


_TOKENIZER_BUILDERS: dict[str, Callable[[], PreTrainedTokenizerBase]] = {
    "t5": _t5_tokenizer,
    "bart": _bart_tokenizer,
    "llama": lambda: _llama_tokenizer(chat=False),
    "llama-chat": lambda: _llama_tokenizer(chat=True),
    "bert2bert": _bert_tokenizer,
    "bert": _bert_tokenizer,
}


def build_tiny_tokenizer(kind: str) -> PreTrainedTokenizerBase:
    """Train and return the tokenizer of ``kind`` without writing anything."""
    try:
        builder = _TOKENIZER_BUILDERS[kind]
    except KeyError:
        raise ValueError(f"unknown tiny model kind {kind!r}; expected one of {', '.join(KINDS)}") from None
    return builder()


# --------------------------------------------------------------------------- models


def _t5_model(tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """T5 v1.0 layout (ReLU FFN, tied embeddings), decoder starts with ``<pad>``."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_ff=64,
        d_kv=16,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="relu",
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    model = T5ForConditionalGeneration(config)
    _set_generation_ids(model, pad=tokenizer.pad_token_id, eos=tokenizer.eos_token_id, decoder_start=tokenizer.pad_token_id)
    return model


def _bart_model(tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """BART layout; like facebook/bart-base the decoder starts with ``</s>`` then forces ``<s>``."""
    from transformers import BartConfig, BartForConditionalGeneration

    ids = SPECIAL_TOKEN_IDS["bart"]
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=512,
        bos_token_id=ids["bos"],
        pad_token_id=ids["pad"],
        eos_token_id=ids["eos"],
        decoder_start_token_id=ids["decoder_start"],
    )
    model = BartForConditionalGeneration(config)
    _set_generation_ids(
        model,
        bos=ids["bos"],
        pad=ids["pad"],
        eos=ids["eos"],
        decoder_start=ids["decoder_start"],
        forced_bos_token_id=ids["bos"],
        forced_eos_token_id=ids["eos"],
    )
    return model


def _llama_model(tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """Llama decoder; ``pad_token_id`` is only set when the tokenizer has a pad token."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    _set_generation_ids(model, bos=tokenizer.bos_token_id, eos=tokenizer.eos_token_id, pad=tokenizer.pad_token_id)
    return model


def _bert_config(vocab_size: int, **extra: Any) -> Any:
    """The shared tiny BERT shape (hidden 32, 2 layers, 2 heads, FFN 64)."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        type_vocab_size=2,
        pad_token_id=SPECIAL_TOKEN_IDS["bert"]["pad"],
        **extra,
    )


def _bert2bert_model(tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """EncoderDecoderModel of two BERTs: decoder starts with [CLS] and stops at [SEP]."""
    from transformers import EncoderDecoderConfig, EncoderDecoderModel

    ids = SPECIAL_TOKEN_IDS["bert2bert"]
    encoder = _bert_config(len(tokenizer))
    decoder = _bert_config(len(tokenizer), is_decoder=True, add_cross_attention=True)
    config = EncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = ids["decoder_start"]
    config.eos_token_id = ids["eos"]
    config.pad_token_id = ids["pad"]
    model = EncoderDecoderModel(config=config)
    _set_generation_ids(model, pad=ids["pad"], eos=ids["eos"], decoder_start=ids["decoder_start"])
    return model


def _bert_model(tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """Plain BERT encoder with an MLM head, reusable for token classification and QA."""
    from transformers import BertForMaskedLM

    return BertForMaskedLM(_bert_config(len(tokenizer)))


def _set_generation_ids(
    model: PreTrainedModel,
    *,
    bos: int | None = None,
    eos: int | None = None,
    pad: int | None = None,
    decoder_start: int | None = None,
    **extra: int,
) -> None:
    """Write the special ids on ``model.generation_config`` so ``generate`` and the saved file agree."""
    generation_config = model.generation_config
    if generation_config is None:  # pragma: no cover - every generative class has one
        return
    for name, value in (
        ("bos_token_id", bos),
        ("eos_token_id", eos),
        ("pad_token_id", pad),
        ("decoder_start_token_id", decoder_start),
        *extra.items(),
    ):
        if value is not None:
            setattr(generation_config, name, value)


_MODEL_BUILDERS: dict[str, Callable[[PreTrainedTokenizerBase], PreTrainedModel]] = {
    "t5": _t5_model,
    "bart": _bart_model,
    "llama": _llama_model,
    "llama-chat": _llama_model,
    "bert2bert": _bert2bert_model,
    "bert": _bert_model,
}


@contextlib.contextmanager
def _seeded(seed: int = 0) -> Iterator[None]:
    """Fork torch's RNG and seed it, so weights are reproducible and the caller's RNG is untouched."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_tiny_model(kind: str, directory: Path) -> Path:
    """Write a tiny random ``kind`` model plus tokenizer to ``directory`` and return it.

    The directory is created if needed and loads with ``AutoTokenizer`` and
    ``AutoModelForSeq2SeqLM`` (t5, bart, bert2bert), ``AutoModelForCausalLM``
    (llama, llama-chat) or ``AutoModelForMaskedLM`` (bert). See
    ``SPECIAL_TOKEN_IDS`` for the special-token ids of each kind.
    """
    tokenizer = build_tiny_tokenizer(kind)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with _seeded():
        model = _MODEL_BUILDERS[kind](tokenizer)
    model.eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
