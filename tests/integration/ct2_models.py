"""Tiny models for the CTranslate2 backend tests, with outputs worth comparing.

Importable as ``ct2_models`` (pytest puts this folder on sys.path: it has no __init__.py).

Why not the plain tiny models: their weights come from the models' own init
(std 0.02), so a T5 repeats one token whatever the input and a greedy comparison
between backends proves little. :func:`sharpen` redraws every weight matrix with
std 0.3, so outputs depend on the input, then makes the end token as likely as
the model's favourite token, so completions end at different lengths and EOS,
min_new_tokens and the padding of finished rows are exercised too. Embedding rows
of padding ids stay zero, as in real checkpoints (Marian's decoder starts from it).
"""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Any

import pytest

#: Inputs of different lengths (1 to ~20 words), so batches mix lengths and length groups split.
TEXTS = [
    "hello",
    "the cat sat on the mat",
    "a library for parsing json files quickly and safely",
    "Debian package manager frontend for the command line with many options and more words here to make it long",
    "fast",
    "translate this sentence into French please",
]
#: tiny kind -> (texttune task, whether the model is decoder-only)
KINDS: dict[str, tuple[str, bool]] = {
    "t5": ("summarization", False), "bart": ("summarization", False), "marian": ("translation", False),
    "llama": ("summarization", True), "llama-chat": ("summarization", True),
}


def require_ctranslate2() -> None:
    """Skip without the package (fail in CI, whose test extra installs it)."""
    try:
        import ctranslate2  # noqa: F401 - only whether it imports
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("ctranslate2 is not installed: pip install -e '.[test]'")
        pytest.skip("ctranslate2 is not installed (pip install 'texttune[ct2]')")


def sharpen(source: Path, target: Path, *, decoder_only: bool, std: float = 0.3) -> Path:
    """Copy a tiny model to ``target`` with redrawn weights and a likely end token (see the module docstring)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = (AutoModelForCausalLM if decoder_only else AutoModelForSeq2SeqLM).from_pretrained(source).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if weight.dim() >= 2 and "embed_positions" not in name:
                weight.normal_(0, std, generator=generator)
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding) and module.padding_idx is not None:
                module.weight[module.padding_idx] = 0
        counts: collections.Counter[int] = collections.Counter()
        for text in TEXTS:
            ids = tokenizer(text, return_tensors="pt").input_ids
            out = model.generate(ids, max_new_tokens=12, do_sample=False)[0, ids.shape[1] if decoder_only else 0:]
            counts.update(t for t in out.tolist() if t not in tokenizer.all_special_ids)
        eos = model.generation_config.eos_token_id
        eos = eos[0] if isinstance(eos, list) else eos
        head = model.get_output_embeddings().weight
        head[eos] = head[counts.most_common(1)[0][0]] * 1.2
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def build_tiny_marian(directory: Path) -> Path:
    """A Marian model like opus-mt: ``</s>``=0, ``<unk>``=1, ``<pad>`` last and the decoder start, never generated."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    from tiny_models import corpus_texts

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["</s>", "<unk>"], show_progress=False)
    tok.train_from_iterator(corpus_texts(), trainer=trainer)
    tok.add_special_tokens(["<pad>"])
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A $B </s>", special_tokens=[("</s>", 0)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                                        model_max_length=512)
    pad = tokenizer.pad_token_id
    config = MarianConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                          decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=512,
                          pad_token_id=pad, eos_token_id=0, bos_token_id=0, decoder_start_token_id=pad, forced_eos_token_id=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = MarianMTModel(config)
    generation: Any = model.generation_config
    generation.update(bad_words_ids=[[pad]], decoder_start_token_id=pad, eos_token_id=0, forced_eos_token_id=0, pad_token_id=pad)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_model_dir(kind: str, tiny_dir: Path | None, workdir: Path) -> Path:
    """A saved texttune model (untrained) of a sharpened tiny ``kind``; ``tiny_dir`` is None for Marian."""
    from texttune.api import Summarization, Translation

    task, decoder_only = KINDS[kind]
    source = tiny_dir if tiny_dir is not None else build_tiny_marian(workdir / "marian-tiny")
    sharp = sharpen(source, workdir / f"{kind}-sharp", decoder_only=decoder_only)
    cls = Translation if task == "translation" else Summarization
    return cls(backbone=str(sharp)).save(workdir / f"{kind}-model")
