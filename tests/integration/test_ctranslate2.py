"""The CTranslate2 backend through texttune's own API: same greedy outputs as transformers, and clear refusals.

Each tiny family (T5, BART, Marian, Llama with and without a chat template) is
converted at float32 and must give exactly the transformers backend's greedy
outputs through ``TaskModel.predict``, for inputs of different lengths batched
together; int8 must produce text. The models are sharpened copies of the tiny
models (``ct2_models.py``) so outputs differ per input and end at different lengths.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from texttune.api import CausalLM, Summarization, load
from texttune.errors import BackboneError, ConfigError
from ct2_models import KINDS, TEXTS, build_model_dir, require_ctranslate2


@pytest.fixture(scope="module", autouse=True)
def ct2_installed() -> None:
    require_ctranslate2()


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``model_dir(kind)``: a saved, sharpened tiny model of that kind, built once per module."""
    built: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in built:
            tiny = None if kind == "marian" else tiny_model_dir(kind)
            built[kind] = build_model_dir(kind, tiny, tmp_path_factory.mktemp(f"ct2-{kind}"))
        return built[kind]

    return get


OPTION_SETS = [{}, {"min_new_tokens": 6}, {"max_new_tokens": 1}]


@pytest.mark.parametrize("kind", list(KINDS))
def test_float32_greedy_outputs_match_transformers(kind: str, model_dir: Callable[[str], Path]) -> None:
    reference, fast = load(model_dir(kind)), load(model_dir(kind), backend="ctranslate2", compute_type="float32")
    assert reference.inference_backend == "transformers" and fast.inference_backend == "ctranslate2"
    extra = [{"repetition_penalty": 1.5}, {"no_repeat_ngram_size": 2}] if kind in {"t5", "marian"} else []
    for options in OPTION_SETS + extra:
        options = {"max_new_tokens": 12, **options}
        expected = reference.predict(TEXTS, batch_size=4, **options)
        assert fast.predict(TEXTS, batch_size=4, **options) == expected, (kind, options)
        if kind != "marian" and options == {"max_new_tokens": 12}:  # the tiny Marian repeats one token whatever it reads
            assert len(set(expected)) >= 3 and len({len(t) for t in expected}) >= 3, expected


def test_causal_lm_predict_matches_and_perplexity_needs_transformers(tiny_model_dir: Callable[[str], Path],
                                                                     tmp_path: Path) -> None:
    saved = CausalLM(backbone=str(tiny_model_dir("llama"))).save(tmp_path / "lm")
    prompts = ["The package", "A library for parsing json files"]
    expected = load(saved).predict(prompts, max_new_tokens=8)
    fast = load(saved, backend="ctranslate2", compute_type="float32")
    assert fast.predict(prompts, max_new_tokens=8) == expected
    with pytest.raises(ConfigError, match="perplexity"):
        fast.evaluate({"text": ["some text to score"]})


def test_int8_generates_text_and_conversions_are_cached(model_dir: Callable[[str], Path], texttune_home: Path) -> None:
    cache = texttune_home / "ctranslate2"
    model = load(model_dir("llama-chat"), backend="ctranslate2")  # the CPU default: int8
    assert model.backbone.model.compute_type.startswith("int8")
    outputs = model.predict(TEXTS, max_new_tokens=8)
    assert len(outputs) == len(TEXTS) and all(isinstance(o, str) for o in outputs) and any(outputs)
    converted = {p.name: p.stat().st_mtime_ns for p in cache.iterdir() if p.is_dir()}
    assert any("-int8-" in name for name in converted)
    source = next(cache / name / "texttune-source.json" for name in converted if "-int8-" in name)
    assert json.loads(source.read_text())["smoothquant"] is True  # a Llama at int8 is smoothed (ct2_smooth.py)
    again = load(model_dir("llama-chat"), backend="ctranslate2", compute_type="int8")
    assert again.predict(TEXTS, max_new_tokens=8) == outputs
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir() if p.is_dir()} == converted  # reused, not redone


@pytest.mark.parametrize("kind", ["llama", "llama-chat"])
def test_smoothquant_keeps_the_function(kind: str, model_dir: Callable[[str], Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Smoothing rescales weights without changing what the model computes: at float32, same greedy outputs."""
    from texttune.inference import ct2_smooth

    monkeypatch.setenv("TEXTTUNE_HOME", str(tmp_path))  # its own conversion cache
    monkeypatch.setattr(ct2_smooth, "applies", lambda model_type, quantization: model_type == "llama")
    smoothed = load(model_dir(kind), backend="ctranslate2", compute_type="float32")
    assert json.loads((smoothed.backbone.model.directory / "texttune-source.json").read_text())["smoothquant"] is True
    options = {"max_new_tokens": 12, "batch_size": 4}
    assert smoothed.predict(TEXTS, **options) == load(model_dir(kind)).predict(TEXTS, **options)


def test_sampling_runs_and_beam_sampling_is_refused(model_dir: Callable[[str], Path]) -> None:
    fast = load(model_dir("t5"), backend="ctranslate2", compute_type="float32")
    sampled = fast.predict(TEXTS, max_new_tokens=6, do_sample=True, top_k=5, top_p=0.9, temperature=0.7)
    assert len(sampled) == len(TEXTS) and all(isinstance(s, str) for s in sampled)
    with pytest.raises(ConfigError, match="sampling with beam search"):
        fast.predict(TEXTS, do_sample=True, num_beams=2)


def test_settings_without_equivalent_are_refused_and_differences_warned(model_dir: Callable[[str], Path],
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    fast = load(model_dir("llama-chat"), backend="ctranslate2", compute_type="float32")
    fast.backbone.model.generation_config.typical_p = 0.5
    with pytest.raises(ConfigError, match=r"typical_p=0\.5 .* no CTranslate2 equivalent"):
        fast.predict(TEXTS[:1])
    fast.backbone.model.generation_config.typical_p = 1.0
    with caplog.at_level(logging.WARNING, logger="texttune"):
        fast.predict(TEXTS[:2], max_new_tokens=4, repetition_penalty=1.3)
        fast.predict(TEXTS[:2], max_new_tokens=4, repetition_penalty=1.3)
    warnings = [r.getMessage() for r in caplog.records if "prompt" in r.getMessage()]
    assert len(warnings) == 1 and "repetition_penalty" in warnings[0]  # said once per model, not per call


def test_unsupported_models_and_tasks_get_one_clear_error(tiny_model_dir: Callable[[str], Path], tmp_path: Path,
                                                         texttune_home: Path) -> None:
    before = sorted((texttune_home / "ctranslate2").glob("*-ct2v*")) if (texttune_home / "ctranslate2").exists() else []
    bert2bert = Summarization(backbone=str(tiny_model_dir("bert2bert"))).save(tmp_path / "b2b")
    with pytest.raises(BackboneError, match="EncoderDecoderModel .*supported families: .*Bart.*Llama.*Marian.*T5"):
        load(bert2bert, backend="ctranslate2")
    from texttune.api import MaskedLM

    encoder = MaskedLM(backbone=str(tiny_model_dir("bert"))).save(tmp_path / "mlm")
    with pytest.raises(BackboneError, match="text generation tasks .*'masked-lm' needs the transformers backend"):
        load(encoder, backend="ctranslate2")
    after = sorted((texttune_home / "ctranslate2").glob("*-ct2v*")) if (texttune_home / "ctranslate2").exists() else []
    assert after == before  # refused before converting anything


def test_loaded_on_ctranslate2_cannot_be_trained_or_saved(model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    fast = load(model_dir("t5"), backend="ctranslate2", compute_type="float32")
    with pytest.raises(ConfigError, match="cannot be saved"):
        fast.save(tmp_path / "copy")
    with pytest.raises(ConfigError, match="cannot be trained"):
        fast.fit(inputs=["a"], targets=["b"], max_steps=1, output_dir=tmp_path / "run")
    assert not (tmp_path / "copy").exists() and not (tmp_path / "run").exists()


def test_option_checks(model_dir: Callable[[str], Path]) -> None:
    with pytest.raises(ConfigError, match="valid choices: 'ctranslate2', 'transformers'"):
        load(model_dir("t5"), backend="onnx")
    with pytest.raises(ConfigError, match="compute_type applies to the ctranslate2 backend"):
        load(model_dir("t5"), compute_type="int8")
    with pytest.raises(ConfigError, match="'threads' must be > 0"):
        load(model_dir("t5"), backend="ctranslate2", threads=0)


def test_missing_package_names_the_extra(model_dir: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # import ctranslate2 now raises ImportError
    with pytest.raises(BackboneError, match=r"pip install 'texttune\[ct2\]'"):
        load(model_dir("t5"), backend="ctranslate2")
