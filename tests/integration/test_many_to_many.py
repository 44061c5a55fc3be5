"""Translation with many-to-many models (mBART-50, NLLB, M2M100): the target language on every generation path.

Why: these models write whichever language their first generated token names, so
every path that generates (evaluation during training, ``texttune.load(...).predict``,
``evaluate``, the server, plain transformers on the saved directory, CTranslate2)
must force the target language's token; and a saved model must remember its
languages, so it generates the right one without flags. Generation is watched at
the token level: the model class's ``generate`` is wrapped to record what it returns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tiny_multilingual import build_tiny_multilingual

import texttune
from texttune import Summarization, Translation
from texttune.errors import BackboneError, ConfigError

DATA = Path(__file__).resolve().parents[1] / "data"
FAST: dict[str, Any] = {"progress_bar": False, "max_eval_samples": 4}
#: kind -> (--source-lang, --target-lang as the user writes them, the model's codes)
LANGUAGES = {"mbart50": ("en", "fr", ("en_XX", "fr_XX")), "nllb": ("en", "fra_Latn", ("eng_Latn", "fra_Latn")),
             "m2m100": ("en_XX", "fr", ("en", "fr"))}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    built: dict[str, Path] = {}

    def build(kind: str) -> Path:
        if kind not in built:
            built[kind] = build_tiny_multilingual(kind, tmp_path_factory.mktemp(f"tiny-{kind}"))
        return built[kind]

    return build


@pytest.fixture
def generated(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[int]]]:
    """The first two tokens of every sequence ``generate`` returns (decoder start, then the first generated)."""
    from transformers import GenerationMixin

    seen: list[list[int]] = []
    original = GenerationMixin.generate

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = original(self, *args, **kwargs)
        seen.extend(out[:, :2].tolist())
        return out

    monkeypatch.setattr(GenerationMixin, "generate", spy)
    yield seen


def _target_id(model_dir: Path, code: str) -> int:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    return tok.get_lang_id(code) if type(tok).__name__ == "M2M100Tokenizer" else tok.convert_tokens_to_ids(code)


@pytest.mark.parametrize("kind", ["mbart50", "nllb", "m2m100"])
def test_every_path_forces_the_target_language(kind: str, model_dir: Callable[[str], Path], tmp_path: Path,
                                               generated: list[list[int]]) -> None:
    source, target, codes = LANGUAGES[kind]
    task = Translation(backbone=str(model_dir(kind)), source_lang=source, target_lang=target, options=FAST)
    result = task.fit(train=DATA / "translation.jsonl", output_dir=tmp_path / "run", max_steps=2, batch_size=4)
    start = [2, _target_id(result.model_dir, codes[1])]  # </s> starts decoding, then the forced language code
    assert generated and all(pair == start for pair in generated)  # zero-shot and final evaluations
    state = json.loads((result.model_dir / "texttune.json").read_text())["task_state"]
    assert state["language_codes"] == {"source": codes[0], "target": codes[1]}
    assert json.loads((result.model_dir / "generation_config.json").read_text())["forced_bos_token_id"] == start[1]

    generated.clear()
    again = texttune.load(result.run_dir)  # no language given: the saved model knows them
    outputs = again.predict(["Open the file.", "Close the window."])
    assert generated == [start, start]
    marker = f"__{codes[1]}__" if kind == "m2m100" else codes[1]  # M2M100's tokenizer does not skip its own
    assert outputs and not any(marker in text for text in outputs)  # the language marker is not text
    generated.clear()
    again.evaluate(DATA / "translation.jsonl", max_samples=3)
    assert generated == [start] * 3

    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer  # plain transformers on model/

    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(result.model_dir)
    assert (tokenizer.src_lang, tokenizer.tgt_lang) == codes
    generated.clear()
    model.generate(**tokenizer(["Open the file."], return_tensors="pt"), max_new_tokens=3)
    assert generated == [start]


def test_the_server_generates_the_saved_language(model_dir: Callable[[str], Path], tmp_path: Path,
                                                 generated: list[list[int]], ready_client: Callable[..., Any]) -> None:
    from texttune.config import serve_config
    from texttune.serving import ModelPredictor, create_app

    task = Translation(backbone=str(model_dir("nllb")), source_lang="en", target_lang="de", options=FAST)
    saved = task.save(tmp_path / "model")
    # The model's own codes are what a loaded model goes by (not the user's spelling of them).
    metadata = json.loads((saved / "texttune.json").read_text())
    metadata["task_state"].update(source_lang=None, target_lang=None)
    (saved / "texttune.json").write_text(json.dumps(metadata))
    generated.clear()
    app = create_app(config=serve_config({}), load=lambda: ModelPredictor(saved, load=texttune.load))
    with ready_client(app) as client:
        response = client.post("/v1/predict", json={"inputs": ["Open the file."]})
    assert response.status_code == 200, response.text
    assert generated == [[2, _target_id(saved, "deu_Latn")]]


@pytest.mark.parametrize("kind", ["mbart50", "nllb"])
def test_ctranslate2_gets_the_target_prefix(kind: str, model_dir: Callable[[str], Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ctranslate2")
    from texttune.inference.ct2_backend import CTranslate2Model

    monkeypatch.setenv("TEXTTUNE_HOME", str(tmp_path / "home"))
    source, target, codes = LANGUAGES[kind]
    saved = Translation(backbone=str(model_dir(kind)), source_lang=source, target_lang=target, options=FAST).save(
        tmp_path / "model")
    prefixes: list[Any] = []
    original = CTranslate2Model._translate
    monkeypatch.setattr(CTranslate2Model, "_translate",
                        lambda self, tokens, plan: prefixes.append(plan.prefix) or original(self, tokens, plan))
    texts = ["Open the file.", "Close the window and save the document."]
    fast = texttune.load(saved, backend="ctranslate2", compute_type="float32").predict(texts)
    assert prefixes and all(prefix == [codes[1]] for prefix in prefixes)
    assert fast == texttune.load(saved).predict(texts)  # the same tokens as transformers


def test_ctranslate2_refuses_m2m100(model_dir: Callable[[str], Path], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ctranslate2")
    monkeypatch.setenv("TEXTTUNE_HOME", str(tmp_path / "home"))
    saved = Translation(backbone=str(model_dir("m2m100")), source_lang="en", target_lang="fr", options=FAST).save(
        tmp_path / "model")
    with pytest.raises(BackboneError, match="CTranslate2 cannot convert an M2M100 model.*--backend transformers"):
        texttune.load(saved, backend="ctranslate2")


def test_missing_or_unknown_languages_are_refused(model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    train = DATA / "translation.jsonl"
    with pytest.raises(ConfigError, match="mBART-50 is a many-to-many translation model: give --target-lang"):
        Translation(backbone=str(model_dir("mbart50")), source_lang="en", target_lang="", options=FAST).fit(
            train=train, columns={"target": "fr"}, output_dir=tmp_path / "a", max_steps=1, batch_size=4)
    with pytest.raises(ConfigError, match=r"--target-lang 'xx': NLLB has no such language; valid codes include eng_Latn"):
        Translation(backbone=str(model_dir("nllb")), source_lang="en", target_lang="xx", options=FAST).fit(
            train=train, columns={"target": "fr"}, output_dir=tmp_path / "b", max_steps=1, batch_size=4)
    # summarization reads and writes one language: --metric-language names it
    with pytest.raises(ConfigError, match="give --metric-language"):
        Summarization(backbone=str(model_dir("m2m100")), options=FAST).fit(
            train=DATA / "summarization.jsonl", output_dir=tmp_path / "c", max_steps=1, batch_size=4)
