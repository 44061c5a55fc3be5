"""Tiny random many-to-many translation models (mBART-50, M2M100, NLLB) with their real tokenizer classes.

Why: these models are told their languages through special tokens (``en_XX``,
``__fr__``, ``fra_Latn``) that only their own tokenizer classes place, so the
tests need ``MBart50Tokenizer``, ``M2M100Tokenizer`` and ``NllbTokenizer``
themselves, with every language code, built offline. Each tokenizer is trained on
a few hundred lines of the corpus of ``tiny_models.py`` (a Unigram vocabulary for
mBART-50, a SentencePiece model for M2M100, BPE merges for NLLB); the models come
from configs (``MBartForConditionalGeneration``, ``M2M100ForConditionalGeneration``,
the latter also for NLLB, as the real checkpoints are) and start decoding with
``</s>`` as theirs do. Importing this module loads neither torch nor transformers.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from tiny_models import _seeded, corpus_texts

#: Kinds accepted by :func:`build_tiny_multilingual`.
MULTILINGUAL_KINDS: tuple[str, ...] = ("mbart50", "m2m100", "nllb")
#: <s>, <pad>, </s>, <unk> as fairseq numbers them, in all three.
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
_VOCAB = 300
_LINES = 400


def _metaspace_model(model: Any, trainer: Any) -> dict[str, Any]:
    """Train ``model`` (a ``tokenizers`` model) with a SentencePiece-like pre-tokenizer; its JSON."""
    from tokenizers import Tokenizer, pre_tokenizers

    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tokenizer.train_from_iterator(corpus_texts()[:_LINES], trainer)
    return json.loads(tokenizer.to_str())["model"]


def _mbart50_tokenizer() -> Any:
    """mBART-50: a Unigram vocabulary (fairseq order), then the 52 language codes and <mask>."""
    from tokenizers import models, trainers
    from transformers import MBart50Tokenizer
    from transformers.models.mbart50.tokenization_mbart50 import FAIRSEQ_LANGUAGE_CODES

    trained = _metaspace_model(models.Unigram(), trainers.UnigramTrainer(
        vocab_size=_VOCAB, special_tokens=SPECIALS, unk_token="<unk>", show_progress=False))
    vocab = [(str(p), float(s)) for p, s in trained["vocab"]] + [(c, 0.0) for c in FAIRSEQ_LANGUAGE_CODES]
    return MBart50Tokenizer(vocab=[*vocab, ("<mask>", 0.0)], bos_token="<s>", model_max_length=512)  # as the hub's


def _nllb_tokenizer() -> Any:
    """NLLB: BPE vocabulary and merges; the 202 language codes are added as special tokens by the class."""
    from tokenizers import models, trainers
    from transformers import NllbTokenizer

    trained = _metaspace_model(models.BPE(unk_token="<unk>"), trainers.BpeTrainer(
        vocab_size=_VOCAB, special_tokens=SPECIALS, show_progress=False))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split()) for m in trained["merges"]]
    return NllbTokenizer(vocab=trained["vocab"], merges=merges, model_max_length=512)


def _m2m100_tokenizer(directory: Path) -> Any:
    """M2M100: a SentencePiece model plus vocab.json (the slow tokenizer reads both from files)."""
    import sentencepiece as spm
    from transformers import M2M100Tokenizer

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus_texts()[:_LINES]), model_writer=model, vocab_size=_VOCAB,
                                   model_type="unigram", character_coverage=1.0, bos_id=-1, eos_id=-1, unk_id=0,
                                   minloglevel=2, num_threads=1)
    spm_file = directory / "sentencepiece.bpe.model"
    spm_file.write_bytes(model.getvalue())
    processor = spm.SentencePieceProcessor(model_file=str(spm_file))
    encoder = {token: i for i, token in enumerate(SPECIALS)}
    for i in range(processor.get_piece_size()):
        encoder.setdefault(processor.id_to_piece(i), len(encoder))
    vocab_file = directory / "vocab.json"
    vocab_file.write_text(json.dumps(encoder), encoding="utf-8")
    return M2M100Tokenizer(vocab_file=str(vocab_file), spm_file=str(spm_file), model_max_length=512)


def _vocab_size(tokenizer: Any) -> int:
    """``len(tokenizer)``, or for M2M100 its language ids and 8 "made-up words" past them, as the real vocabularies."""
    if type(tokenizer).__name__ != "M2M100Tokenizer":
        return len(tokenizer)
    return max(tokenizer.lang_code_to_id.values()) + 1 + tokenizer.num_madeup_words


def _model(kind: str, tokenizer: Any) -> Any:
    """The tiny model: hidden 32, 2+2 layers, 2 heads; decoding starts with </s> (id 2) like the real ones."""
    from transformers import M2M100Config, M2M100ForConditionalGeneration, MBartConfig, MBartForConditionalGeneration

    shape = dict(vocab_size=_vocab_size(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2,
                 encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                 max_position_embeddings=128, bos_token_id=0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2)
    if kind == "mbart50":  # facebook/mbart-large-50 names its tokenizer class (CTranslate2 reads it)
        model = MBartForConditionalGeneration(MBartConfig(**shape, tokenizer_class="MBart50Tokenizer"))
    else:
        model = M2M100ForConditionalGeneration(M2M100Config(**shape))
    for name in ("bos_token_id", "pad_token_id", "eos_token_id", "decoder_start_token_id"):
        setattr(model.generation_config, name, shape[name])
    return model


def build_tiny_multilingual(kind: str, directory: Path) -> Path:
    """Write a tiny random ``kind`` model (mbart50, m2m100, nllb) and its tokenizer to ``directory``; returns it."""
    if kind not in MULTILINGUAL_KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(MULTILINGUAL_KINDS)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    builders = {"mbart50": _mbart50_tokenizer, "nllb": _nllb_tokenizer, "m2m100": lambda: _m2m100_tokenizer(directory)}
    tokenizer = builders[kind]()
    with _seeded():
        model = _model(kind, tokenizer)
    model.eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
