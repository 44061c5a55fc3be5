"""The CTranslate2 backend from the command line and the server: export, predict, evaluate, serve.

Success paths compare with the transformers backend on the same sharpened tiny
models as test_ctranslate2.py (float32 and greedy, so outputs must be identical);
every user error is one ``texttune: error:`` line with exit status 2, and an
export that fails leaves nothing behind.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from texttune.api import Summarization, load
from texttune.config import serve_config
from texttune.serving import ModelPredictor, create_app
from ct2_models import TEXTS, build_model_dir, require_ctranslate2
from run_files import assert_user_error, read_json, read_jsonl

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module", autouse=True)
def ct2_installed() -> None:
    require_ctranslate2()


@pytest.fixture(scope="module")
def t5_dir(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_dir("t5", tiny_model_dir("t5"), tmp_path_factory.mktemp("ct2-cli-t5"))


@pytest.fixture(scope="module")
def chat_dir(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_dir("llama-chat", tiny_model_dir("llama-chat"), tmp_path_factory.mktemp("ct2-cli-chat"))


@pytest.fixture(scope="module")
def inputs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ct2-data") / "data.jsonl"
    path.write_text("".join(json.dumps({"text": t, "summary": "a short summary"}) + "\n" for t in TEXTS), encoding="utf-8")
    return path


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or p.name.endswith(".old"))


def test_export_writes_a_loadable_directory_atomically(cli: Cli, chat_dir: Path, inputs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    code, stdout, err = cli("export", chat_dir, "--format", "ctranslate2", "--quantization", "float32", "--output", out)
    assert code == 0, err
    assert stdout.strip() == str(out) and _leftovers(tmp_path) == []
    assert {"config.json", "model.bin", "tokenizer.json", "texttune.json"} <= {p.name for p in out.iterdir()}
    meta = read_json(out / "texttune.json")
    assert meta["task"] == "summarization" and meta["backend"] == "ctranslate2"
    assert meta["ctranslate2"]["quantization"] == "float32" and meta["ctranslate2"]["source_model"] == str(chat_dir.resolve())
    assert (out / "transformers-config" / "generation_config.json").is_file()
    import ctranslate2

    ctranslate2.Generator(str(out))  # a plain CTranslate2 model directory as well
    for directory in (chat_dir, out):  # an export needs no --backend
        code, _, err = cli("predict", directory, "--input-file", inputs_file, "--output-file", tmp_path / f"{directory.name}.jsonl",
                           "--max-new-tokens", "10", "--generation-batch-size", "4")
        assert code == 0, err
    assert read_jsonl(tmp_path / "exported.jsonl") == read_jsonl(tmp_path / f"{chat_dir.name}.jsonl")
    code, _, err = cli("export", chat_dir, "--format", "ctranslate2", "--output", out)  # an earlier export is replaced
    assert code == 0, err
    assert read_json(out / "texttune.json")["ctranslate2"]["quantization"] == "int8" and _leftovers(tmp_path) == []


def test_export_errors_are_one_line_and_leave_nothing(cli: Cli, t5_dir: Path, tiny_model_dir: Callable[[str], Path],
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    bert2bert = Summarization(backbone=str(tiny_model_dir("bert2bert"))).save(tmp_path / "b2b")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    cases: list[tuple[tuple[Any, ...], tuple[str, ...]]] = [
        ((t5_dir, "--format", "tflite", "--output", out), ("--format 'tflite'", "'ctranslate2'", "'onnx'")),
        ((t5_dir, "--format", "ctranslate2", "--quantization", "int4", "--output", out), ("int4", "'int8'", "'float32'")),
        ((bert2bert, "--format", "ctranslate2", "--output", out), ("EncoderDecoderModel", "supported families", "T5")),
        ((tmp_path / "nowhere", "--format", "ctranslate2", "--output", out), ("no such run or model directory",)),
        ((t5_dir, "--format", "ctranslate2", "--output", tmp_path / "taken"), ("exists and is not a CTranslate2 export",)),
        ((t5_dir, "--format", "ctranslate2", "--output", t5_dir / "ct2"), ("overlaps the model directory",)),
    ]
    for args, needles in cases:
        code, _, err = cli("export", *args)
        assert_user_error(code, err, *needles)
    assert not out.exists() and not (t5_dir / "ct2").exists() and (tmp_path / "taken" / "notes.txt").read_text() == "mine"

    from texttune.errors import BackboneError
    from texttune.inference import ct2_export

    def half_written(model_dir: Path, output: Path, *, quantization: str, calibration: Any = None) -> bool:
        (output / "model.bin").write_bytes(b"partial")
        raise BackboneError("converter crashed half-way")

    monkeypatch.setattr(ct2_export, "convert", half_written)
    code, _, err = cli("export", t5_dir, "--format", "ctranslate2", "--output", out)
    assert_user_error(code, err, "converter crashed half-way")
    assert not out.exists() and _leftovers(tmp_path) == []


def test_predict_and_evaluate_with_backend_flag(cli: Cli, t5_dir: Path, inputs_file: Path, tmp_path: Path) -> None:
    common = ("--max-new-tokens", "10", "--generation-batch-size", "4")
    for name, flags in (("hf", ()), ("ct2", ("--backend", "ctranslate2", "--compute-type", "float32", "--threads", "1"))):
        code, _, err = cli("predict", t5_dir, "--input-file", inputs_file, "--output-file", tmp_path / f"{name}.jsonl", *common, *flags)
        assert code == 0, err
        code, stdout, err = cli("evaluate", t5_dir, "--data-file", inputs_file, "--metrics-file", tmp_path / f"{name}-metrics.json",
                                *common, *flags)
        assert code == 0, err
    assert read_jsonl(tmp_path / "ct2.jsonl") == read_jsonl(tmp_path / "hf.jsonl")
    assert read_json(tmp_path / "ct2-metrics.json") == read_json(tmp_path / "hf-metrics.json")


def test_backend_flag_errors(cli: Cli, t5_dir: Path, tiny_model_dir: Callable[[str], Path], inputs_file: Path,
                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from texttune.api import MaskedLM

    encoder = MaskedLM(backbone=str(tiny_model_dir("bert"))).save(tmp_path / "mlm")
    code, _, err = cli("predict", encoder, "--input-file", inputs_file, "--backend", "ctranslate2")
    assert_user_error(code, err, "text generation tasks", "'masked-lm'")
    code, _, err = cli("evaluate", t5_dir, "--data-file", inputs_file, "--compute-type", "int8")
    assert_user_error(code, err, "--backend ctranslate2")
    code, _, err = cli("predict", t5_dir, "--input-file", inputs_file, "--backend", "ctranslate2", "--threads", "0")
    assert_user_error(code, err, "'threads' must be > 0")
    monkeypatch.setitem(sys.modules, "ctranslate2", None)
    code, _, err = cli("predict", t5_dir, "--input-file", inputs_file, "--backend", "ctranslate2")
    assert_user_error(code, err, "pip install 'texttune[ct2]'")


def test_serve_on_ctranslate2(t5_dir: Path, ready_client: Callable[..., Any], tmp_path: Path) -> None:
    expected = load(t5_dir).predict(TEXTS, max_new_tokens=8)
    config = serve_config({"backend": "ctranslate2", "compute_type": "float32", "threads": 1})
    app = create_app(config=config, load=lambda: ModelPredictor(t5_dir, load=load, backend="ctranslate2",
                                                                     compute_type="float32", threads=1))
    with ready_client(app) as client:
        info = client.get("/v1/model").json()
        assert info["backend"]["name"] == "ctranslate2" and info["backend"]["compute_type"] == "float32"
        assert info["backend"]["threads"] == 1 and info["architecture"] == "T5ForConditionalGeneration"
        answer = client.post("/v1/predict", json={"inputs": TEXTS, "max_new_tokens": 8})
        assert answer.status_code == 200 and answer.json()["outputs"] == expected
    exported = tmp_path / "export"
    from texttune.inference.ct2_export import export

    export(t5_dir, output=exported, quantization="float32")
    with ready_client(create_app(config=serve_config({}), load=lambda: ModelPredictor(exported, load=load))) as client:
        assert client.get("/v1/model").json()["backend"]["name"] == "ctranslate2"
        assert client.post("/v1/predict", json={"inputs": TEXTS, "max_new_tokens": 8}).json()["outputs"] == expected


def test_serve_refuses_an_unsupported_model_before_listening(cli: Cli, tiny_model_dir: Callable[[str], Path],
                                                             tmp_path: Path) -> None:
    bert2bert = Summarization(backbone=str(tiny_model_dir("bert2bert"))).save(tmp_path / "b2b")
    code, out, err = cli("serve", bert2bert, "--backend", "ctranslate2", "--port", "0")
    assert_user_error(code, err, "EncoderDecoderModel", "supported families")
    assert "serving" not in out
