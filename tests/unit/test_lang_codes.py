"""Language codes of many-to-many translation models (``tasks/lang_codes.py``) on their real tokenizer classes.

Why: mBART-50, NLLB and M2M100 learn and generate whatever language their special
tokens say. A user's ``fr`` must become the model's own code, the source code must
open every input and the target code every label, and a code the model lacks (or
none at all) must be refused in one line instead of training the wrong language.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tiny_multilingual import build_tiny_multilingual

from texttune.errors import ConfigError
from texttune.tasks.lang_codes import language_pair
from texttune.tasks.text2text import TranslationOptions, TranslationTask


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Any]:
    """``tokenizer(kind)``: the saved tiny tokenizer of mbart50, m2m100 or nllb, reloaded with AutoTokenizer."""
    from transformers import AutoTokenizer

    built: dict[str, Path] = {}

    def load(kind: str) -> Any:
        if kind not in built:
            built[kind] = build_tiny_multilingual(kind, tmp_path_factory.mktemp(kind))
        return AutoTokenizer.from_pretrained(built[kind])

    return load


@pytest.mark.parametrize(("kind", "given", "expected"), [
    ("mbart50", "fr", "fr_XX"), ("mbart50", "fr_XX", "fr_XX"), ("mbart50", "fra_Latn", "fr_XX"),
    ("mbart50", "pt-BR", "pt_XX"), ("mbart50", "zh", "zh_CN"), ("mbart50", "ro", "ro_RO"),
    ("nllb", "fr", "fra_Latn"), ("nllb", "fra_Latn", "fra_Latn"), ("nllb", "FRA_LATN", "fra_Latn"),
    ("nllb", "fra", "fra_Latn"), ("nllb", "fr_XX", "fra_Latn"), ("nllb", "ar", "arb_Arab"), ("nllb", "en", "eng_Latn"),
    ("m2m100", "fr", "fr"), ("m2m100", "__fr__", "fr"), ("m2m100", "fra_Latn", "fr"), ("m2m100", "ast", "ast"),
])
def test_codes_map_to_the_models_own(tokenizer: Callable[[str], Any], kind: str, given: str, expected: str) -> None:
    tok = tokenizer(kind)
    pair = language_pair(tok, source="en", target=given)
    assert pair is not None and pair.target == expected
    want = tok.get_lang_id(expected) if kind == "m2m100" else tok.convert_tokens_to_ids(expected)
    assert pair.target_token_id == want


@pytest.mark.parametrize(("kind", "shown"), [("mbart50", "fr_XX"), ("nllb", "fra_Latn"), ("m2m100", "fr")])
def test_unknown_and_missing_codes_are_refused(tokenizer: Callable[[str], Any], kind: str, shown: str) -> None:
    tok = tokenizer(kind)
    with pytest.raises(ConfigError) as unknown:
        language_pair(tok, source="en", target="xx")
    message = str(unknown.value)
    assert "\n" not in message and "--target-lang 'xx'" in message and f"{shown}," in message  # a few valid ones
    for missing in (None, "", " "):
        with pytest.raises(ConfigError, match="give --source-lang"):
            language_pair(tok, source=missing, target="fr")
    with pytest.raises(ConfigError, match="--metric-language"):
        language_pair(tok, source="en", target=None, options=("--metric-language", "--metric-language"))


def test_an_ambiguous_code_lists_the_choices(tokenizer: Callable[[str], Any]) -> None:
    with pytest.raises(ConfigError, match="ambiguous for NLLB: use one of zho_Hans, zho_Hant"):
        language_pair(tokenizer("nllb"), source="en", target="zh")
    assert language_pair(tokenizer("nllb"), source="en", target="zho_Hant").target == "zho_Hant"


def test_other_tokenizers_take_no_codes(tiny_model_dir: Callable[[str], Path]) -> None:
    from transformers import AutoTokenizer

    for kind in ("t5", "bart"):  # one pair (or none) per model: the codes only name columns and prompts
        assert language_pair(AutoTokenizer.from_pretrained(tiny_model_dir(kind)), source="en", target="xx") is None


@pytest.mark.parametrize(("kind", "source", "target", "codes"), [  # not English: each tokenizer's default source
    ("mbart50", "ro", "en", ("ro_RO", "en_XX")),
    ("nllb", "fra_Latn", "de", ("fra_Latn", "deu_Latn")),
    ("m2m100", "de", "ro", ("de", "ro")),
])
def test_sources_and_labels_start_with_their_language(tokenizer: Callable[[str], Any], kind: str, source: str,
                                                      target: str, codes: tuple[str, str]) -> None:
    tok = tokenizer(kind)
    task = TranslationTask(TranslationOptions(source_lang=source, target_lang=target))
    task.family = "seq2seq"
    task._attach(tok, None)
    assert task.languages is not None and (task.languages.source, task.languages.target) == codes
    assert task.format is not None
    encoded = task.format.encode("Die Datei öffnen.", "Open the file.", max_source_length=64, max_target_length=64)
    ids = {code: tok.get_lang_id(code) if kind == "m2m100" else tok.convert_tokens_to_ids(code) for code in codes}
    assert encoded.input_ids[0] == ids[codes[0]] and encoded.input_ids[-1] == tok.eos_token_id
    assert encoded.labels[0] == ids[codes[1]] and encoded.labels[-1] == tok.eos_token_id
    assert ids[codes[0]] not in encoded.labels and ids[codes[1]] not in encoded.input_ids
    # inference inputs are encoded like training inputs, and a saved tokenizer remembers both languages
    assert task.format.encode("Die Datei öffnen.", None, max_source_length=64, max_target_length=64).input_ids == encoded.input_ids
    assert (tok.init_kwargs["src_lang"], tok.init_kwargs["tgt_lang"]) == codes


def test_ctranslate2_decodes_from_the_target_language(tokenizer: Callable[[str], Any]) -> None:
    """The forced token becomes CTranslate2's target prefix, whatever the saved generation config says."""
    from transformers import GenerationConfig as HFGenerationConfig

    from texttune.config import GenerationConfig
    from texttune.inference.ct2_options import effective_config, plan_decoding

    tok = tokenizer("nllb")
    target = tok.convert_tokens_to_ids("deu_Latn")
    options = GenerationConfig(max_new_tokens=5)
    config = effective_config(HFGenerationConfig(decoder_start_token_id=2), options, pad_token_id=1, eos_token_id=2,
                              forced_bos_token_id=target)
    assert plan_decoding(config, tok, decoder_only=False, vocabulary=set()).prefix == ["deu_Latn"]
    plain = effective_config(HFGenerationConfig(decoder_start_token_id=2), options, pad_token_id=1, eos_token_id=2)
    assert plan_decoding(plain, tok, decoder_only=False, vocabulary=set()).prefix == []


def test_a_saved_model_remembers_its_target(tokenizer: Callable[[str], Any]) -> None:
    from types import SimpleNamespace

    from texttune.tasks.lang_codes import remember_languages, set_languages

    for kind, tokenizer_class in (("mbart50", "MBart50Tokenizer"), ("nllb", None)):
        tok = tokenizer(kind)
        pair = set_languages(tok, source="en", target="fr")
        model = SimpleNamespace(generation_config=SimpleNamespace(), config=SimpleNamespace())
        remember_languages(model, pair)
        assert model.generation_config.forced_bos_token_id == pair.target_token_id
        assert getattr(model.config, "tokenizer_class", None) == tokenizer_class  # CTranslate2 reads it for mBART-50
        assert (tok.src_lang, tok.tgt_lang) == (pair.source, pair.target)
