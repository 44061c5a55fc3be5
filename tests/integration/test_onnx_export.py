"""``texttune export --format onnx``: parity with transformers on the encoder tasks, refusals, atomicity.

Why: an ONNX graph is traced from one example batch, so what breaks is what the trace fixed:
a batch or sequence length baked in, padding handled differently, an input (token_type_ids)
dropped or mixed up, a head's outputs renamed. Each encoder task's tiny BERT (its head sharpened so
that its outputs are O(1), not 0.01, and a difference would show) is exported and ONNX Runtime's
outputs must equal transformers' to 1e-4 on padded text-pair batches of other sizes and lengths
than the trace's. User errors are one ``texttune: error:`` line (exit 2) and leave nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import texttune
from texttune.errors import BackboneError
from texttune.extras import missing
from texttune.inference import onnx_export
from run_files import assert_user_error, read_json


@pytest.fixture(scope="module", autouse=True)
def onnx_installed() -> None:
    """Skip without texttune[onnx]; fail in CI, which installs it (make install: .[all,test])."""
    if missing("onnx"):
        if os.environ.get("CI"):
            pytest.fail(f"texttune[onnx] is not installed ({', '.join(missing('onnx'))}): make install")
        pytest.skip("texttune[onnx] is not installed")

Cli = Callable[..., tuple[int, str, str]]
SECTIONS = ["games", "python", "science", "sound"]
NER = Path(__file__).resolve().parents[1] / "data" / "ner.jsonl"
FAST = ["--max-steps", "2", "--batch-size", "4", "--no-progress-bar", "--max-eval-samples", "6"]
#: Batches unlike the trace's (2 pairs): 3 padded pairs, 1 long unpadded text, 5 short texts.
BATCHES: list[tuple[list[str], list[str] | None]] = [
    (["A game", "Python bindings for the sound library, with a longer description than the first one", "Science"],
     ["What is it?", "Which language do the bindings target, and which library do they wrap?", "Why?"]),
    ([" ".join(["The package provides a small command line tool for converting audio files between formats."] * 4)], None),
    (["one", "two words", "three words here", "and four words here", "x"], None),
]


def sharpen(model_dir: Path, auto_class: str) -> None:
    """Scale the head so the outputs are O(1): a random head's outputs (~0.01) would hide any difference."""
    import torch
    import transformers

    model = getattr(transformers, auto_class).from_pretrained(model_dir)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith(("classifier.", "qa_outputs.", "cls.predictions.transform.LayerNorm.weight")):
                param.mul_(100)
    model.save_pretrained(model_dir)


@pytest.fixture(scope="module")
def saved(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory, cli_module: Cli) -> dict[str, Path]:
    """One saved model directory per encoder task variant (token classification: a 2-step training run)."""
    from texttune import MaskedLM, QuestionAnswering, TextClassification

    bert, work = str(tiny_model_dir("bert")), tmp_path_factory.mktemp("onnx-models")
    dirs = {
        "text-classification": TextClassification(backbone=bert, label_list=SECTIONS, max_length=64).save(work / "tc"),
        "multi-label": TextClassification(backbone=bert, label_list=SECTIONS, problem_type="multi-label",
                                          max_length=64).save(work / "ml"),
        "question-answering": QuestionAnswering(backbone=bert, max_length=96, stride=24).save(work / "qa"),
        "masked-lm": MaskedLM(backbone=bert, max_length=64).save(work / "mlm"),
    }
    code, _, err = cli_module("-q", "train", "token-classification", "--backbone", bert, "--train-file", NER,
                              "--output-dir", work / "ner", *FAST)
    assert code == 0, err
    dirs["token-classification"] = work / "ner" / "model"
    for path in dirs.values():
        sharpen(Path(path), read_json(Path(path) / "texttune.json")["auto_class"])
    return {name: Path(path) for name, path in dirs.items()}


@pytest.fixture(scope="module")
def cli_module() -> Cli:
    """``texttune`` in-process for module fixtures (stdout/stderr not captured: only the exit code is used)."""
    from texttune.cli.main import main

    def run(*argv: str | Path) -> tuple[int, str, str]:
        return main([str(a) for a in argv]), "", ""

    return run


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or p.name.endswith(".old") or "float32-" in p.name)


def _compare(model_dir: Path, export_dir: Path) -> list[float]:
    """Per batch: largest |ONNX Runtime - transformers| over the task's outputs; also checks padding changes nothing."""
    import numpy as np
    import torch
    import transformers

    meta = read_json(export_dir / "texttune.json")
    model = getattr(transformers, meta["auto_class"]).from_pretrained(model_dir).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(export_dir)
    session = onnx_export.open_session(export_dir / "model.onnx", threads=1)
    names, outputs = meta["onnx"]["inputs"], meta["onnx"]["outputs"]
    differences = []
    for texts, pairs in BATCHES:
        batch = tokenizer(texts, pairs, padding=True, return_tensors="pt") if pairs else tokenizer(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            expected = model(**{n: batch[n] for n in names})
        got = session.run(outputs, {n: batch[n].numpy() for n in names})
        reference = [getattr(expected, name).numpy() for name in outputs]
        assert max(float(np.abs(r).max()) for r in reference) > 0.5  # the head is sharp enough for 1e-4 to mean something
        differences.append(max(float(np.abs(g - r).max()) for g, r in zip(got, reference)))
        alone = tokenizer(texts[-1], pairs[-1] if pairs else None, return_tensors="np")  # the last row without padding
        single = session.run(outputs, {n: alone[n] for n in names})
        length = alone["input_ids"].shape[1]
        per_token = meta["task"] != "text-classification"  # (batch, tokens, ...) outputs: compare the unpadded tokens
        for padded, unpadded in zip(got, single):
            row = padded[-1][:length] if per_token else padded[-1]
            assert np.abs(row - unpadded[0]).max() < 1e-4
    return differences


@pytest.mark.parametrize("variant", ["text-classification", "multi-label", "token-classification", "question-answering", "masked-lm"])
def test_onnx_runtime_matches_transformers(variant: str, saved: dict[str, Path], tmp_path: Path) -> None:
    source = saved[variant]
    out = texttune.export(source.parent if variant == "token-classification" else source, output=tmp_path / "onnx", format="onnx")
    assert out == tmp_path / "onnx" and _leftovers(tmp_path) == []
    assert {"model.onnx", "config.json", "tokenizer.json", "texttune.json"} <= {p.name for p in out.iterdir()}
    meta, original = read_json(out / "texttune.json"), read_json(source / "texttune.json")
    assert meta["backend"] == "onnx" and meta["task"] == original["task"] and meta["task_state"] == original["task_state"]
    assert meta["onnx"]["quantization"] == "float32" and meta["onnx"]["source_model"] == str(source.resolve())
    assert meta["onnx"]["max_abs_difference"] < 1e-4
    assert read_json(out / "config.json").get("id2label") == read_json(source / "config.json").get("id2label")
    differences = _compare(source, out)
    assert max(differences) < 1e-4, differences


def test_int8_keeps_the_predictions_and_shrinks_the_file(saved: dict[str, Path], tmp_path: Path) -> None:
    import numpy as np

    source = saved["text-classification"]
    float32 = texttune.export(source, output=tmp_path / "f32", format="onnx")
    int8 = texttune.export(source, output=tmp_path / "i8", format="onnx", quantization="int8")
    assert read_json(int8 / "texttune.json")["onnx"]["quantization"] == "int8"
    # int8 matrix weights; the embeddings stay float32 (dynamic quantization leaves Gather alone): most of a tiny model
    assert (int8 / "model.onnx").stat().st_size < 0.7 * (float32 / "model.onnx").stat().st_size
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(int8)
    batch = tokenizer([t for texts, _ in BATCHES for t in texts], padding=True, return_tensors="np")
    names = read_json(int8 / "texttune.json")["onnx"]["inputs"]
    a, b = (onnx_export.open_session(d / "model.onnx").run(["logits"], {n: batch[n] for n in names})[0] for d in (float32, int8))
    assert np.abs(a - b).max() < 0.1 * np.abs(a).max()  # int8 rounds weights: close, not equal
    assert (a.argmax(-1) == b.argmax(-1)).mean() >= 0.75


def test_an_earlier_export_is_replaced_and_is_not_a_texttune_model(cli: Cli, saved: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "onnx"
    for quantization in ("int8", "float32"):
        code, stdout, err = cli("export", saved["masked-lm"], "--format", "onnx", "--quantization", quantization, "--output", out)
        assert code == 0, err
        assert stdout.strip() == str(out) and read_json(out / "texttune.json")["onnx"]["quantization"] == quantization
    assert _leftovers(tmp_path) == []
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"text": "a [MASK] test"}\n', encoding="utf-8")
    source = str(saved["masked-lm"].resolve())
    for args in (("predict", out, "--input-file", inputs, "--output-file", tmp_path / "p.jsonl"),  # the export is for ONNX Runtime
                 ("export", out, "--format", "onnx", "--output", tmp_path / "again")):
        code, _, err = cli(*args)
        assert_user_error(code, err, "is an ONNX export for ONNX Runtime", source)


def test_refusals_are_one_line_and_leave_nothing(cli: Cli, saved: dict[str, Path], t5_summarizer: Path, tmp_path: Path,
                                                 tiny_model_dir: Callable[[str], Path]) -> None:
    from texttune import TextClassification

    out = tmp_path / "out"
    decoder = TextClassification(backbone=str(tiny_model_dir("llama")), label_list=SECTIONS, max_length=32).save(tmp_path / "llama")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    lora = tmp_path / "lora"  # what --no-merge-adapters saves, as far as the refusal reads it: texttune.json's peft entry
    shutil.copytree(saved["text-classification"], lora)
    meta = read_json(lora / "texttune.json")
    (lora / "texttune.json").write_text(json.dumps({**meta, "peft": {"merged": False, "backbone": "bert"}}))
    source = saved["text-classification"]
    cases: list[tuple[tuple[Any, ...], tuple[str, ...]]] = [
        ((t5_summarizer, "--output", out), ("ONNX export covers the encoder tasks", "text-classification", "masked-lm",
                                            "'summarization'")),
        ((decoder, "--output", out), ("ONNX export covers encoder backbones", "causal model")),
        ((source, "--output", tmp_path / "taken"), ("exists and is not an ONNX export",)),
        ((lora, "--output", out), ("holds LoRA adapters", "merged")),
        ((source, "--quantization", "int4", "--output", out), ("int4", "'float32'", "'int8'")),
        ((source, "--output", source / "onnx"), ("overlaps the model directory",)),
        ((tmp_path / "nowhere", "--output", out), ("no such run or model directory",)),
    ]
    for args, needles in cases:
        code, _, err = cli("export", args[0], "--format", "onnx", *args[1:])
        assert_user_error(code, err, *needles)
    assert not out.exists() and not (source / "onnx").exists() and (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_an_interrupted_export_leaves_nothing(cli: Cli, saved: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, out = saved["question-answering"], tmp_path / "out"

    def half_written(model: Any, inputs: Any, path: Path, *, task: str) -> None:
        path.write_bytes(b"partial")
        raise BackboneError("torch could not export this model to ONNX (half-way)")

    monkeypatch.setattr(onnx_export, "write_graph", half_written)
    code, _, err = cli("export", source, "--format", "onnx", "--output", out)
    assert_user_error(code, err, "half-way")
    assert not out.exists() and _leftovers(tmp_path) == []

    def interrupted(model: Any, inputs: Any, path: Path, *, task: str) -> None:
        path.write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_export, "write_graph", interrupted)
    with pytest.raises(KeyboardInterrupt):
        texttune.export(source, output=out, format="onnx", quantization="int8")
    assert not out.exists() and _leftovers(tmp_path) == []


def test_without_the_extra_the_error_names_it(cli: Cli, saved: dict[str, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    code, _, err = cli("export", saved["masked-lm"], "--format", "onnx", "--output", tmp_path / "out")
    assert_user_error(code, err, "texttune[onnx]", "onnxruntime not installed", "pip install 'texttune[onnx]'")
    assert not (tmp_path / "out").exists()
