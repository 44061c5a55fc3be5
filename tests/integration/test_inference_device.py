"""--device and --dtype on saved models, on any machine: bfloat16 on the CPU, inputs that follow the model's
device (a model moved to torch's ``meta`` device: any input left on the CPU would show), the CLI's one-line
refusals of a missing GPU, and the server's report of where its model runs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import texttune
from texttune import api
from texttune.config import serve_config
from texttune.serving import ModelPredictor, create_app
from run_files import assert_user_error

Cli = Callable[..., tuple[int, str, str]]
DOCUMENTS = ["The server was restarted after the update.", "Disk usage grew after the logs were rotated."]


@pytest.fixture(scope="module")
def saved(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """task -> an untrained model of that task on a tiny backbone, saved once per module."""
    builders: dict[str, Callable[[], Any]] = {
        "summarization": lambda: api.Summarization(backbone=str(tiny_model_dir("t5"))),
        "causal-lm": lambda: api.CausalLM(backbone=str(tiny_model_dir("llama")), max_length=16, max_new_tokens=4),
        "text-classification": lambda: api.TextClassification(backbone=str(tiny_model_dir("bert")),
                                                              label_list="games,python,science,sound", top_k=2),
        "token-classification": lambda: api.TokenClassification(backbone=str(tiny_model_dir("bert")),
                                                                label_list="O,B-PER,I-PER"),
        "question-answering": lambda: api.QuestionAnswering(backbone=str(tiny_model_dir("bert"))),
        "masked-lm": lambda: api.MaskedLM(backbone=str(tiny_model_dir("bert")), max_length=16),
    }
    root = tmp_path_factory.mktemp("device-models")
    return lambda task: builders[task]().save(root / task) if not (root / task).exists() else root / task


def _placement(model: Any) -> set[tuple[str, torch.dtype]]:
    return {(p.device.type, p.dtype) for p in model.backbone.model.parameters()}


def test_bfloat16_on_the_cpu_loads_in_bfloat16_and_predicts(saved: Callable[[str], Path]) -> None:
    causal = texttune.load(saved("causal-lm"), device="cpu", dtype="bfloat16")
    assert _placement(causal) == {("cpu", torch.bfloat16)}
    [text] = causal.predict(["The server"])
    assert isinstance(text, str)
    assert _placement(texttune.load(saved("causal-lm"))) == {("cpu", torch.float32)}  # auto on a CPU: float32

    classifier = texttune.load(saved("text-classification"), device="cpu", dtype="bfloat16")
    assert _placement(classifier) == {("cpu", torch.bfloat16)}
    [scored] = classifier.predict(["A puzzle game for children"])
    scores = [scored["score"], *(entry["score"] for entry in scored["top_k"])]
    assert all(type(s) is float for s in scores)  # plain floats (from float32 probabilities): JSON-ready
    json.dumps(scored)

    fill = texttune.load(saved("masked-lm"), device="cpu", dtype="bfloat16")
    [found] = fill.predict(["The server was [MASK] after the update."])
    assert all(type(c["score"]) is float for c in found["candidates"])


def test_evaluate_in_bfloat16_gives_float_metrics(saved: Callable[[str], Path], tmp_path: Path) -> None:
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCUMENTS * 3), encoding="utf-8")
    model = texttune.load(saved("causal-lm"), device="cpu", dtype="bfloat16")
    metrics = model.evaluate(str(data))
    assert type(metrics["perplexity"]) is float and metrics["perplexity"] > 1
    json.dumps(metrics)


class Reached(Exception):
    """Raised by the spies once they have seen what reached the model."""


def _spy(model: Any) -> list[str]:
    """Move ``model`` to torch's meta device; record the devices of the tensors its forward or generate receives."""
    seen: list[str] = []

    def record(values: Any) -> None:
        seen.extend(v.device.type for v in values if isinstance(v, torch.Tensor))
        raise Reached

    model.to("meta")
    model.register_forward_pre_hook(lambda module, args, kwargs: record([*args, *kwargs.values()]), with_kwargs=True)
    model.generate = lambda *args, **kwargs: record([*args, *kwargs.values()])  # generate's own checks need real values
    return seen


CALLS: dict[str, list[Callable[[Any], Any]]] = {
    "summarization": [lambda m: m.predict(DOCUMENTS)],
    "causal-lm": [lambda m: m.predict(["The server"]), lambda m: m.evaluate({"text": DOCUMENTS})],
    "text-classification": [lambda m: m.predict(["A puzzle game for children"])],
    "token-classification": [lambda m: m.predict(["John Smith lives in Paris"]),  # the pipeline's entities
                             lambda m: m.predict([{"tokens": ["John", "lives", "here"]}])],  # texttune's own tagging
    "question-answering": [lambda m: m.predict([{"question": "Who won?", "context": "The Broncos won the game."}])],
    "masked-lm": [lambda m: m.predict(["The server was [MASK] after the update."]), lambda m: m.evaluate({"text": DOCUMENTS * 4})],
}


@pytest.mark.parametrize("task", list(CALLS))
def test_every_task_moves_its_inputs_to_the_models_device(task: str, saved: Callable[[str], Path]) -> None:
    for call in CALLS[task]:
        model = texttune.load(saved(task), device="cpu")
        seen = _spy(model.backbone.model)
        with pytest.raises(Reached):
            call(model)
        assert seen and set(seen) == {"meta"}, (task, seen)


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This machine as one without CUDA or MPS, whatever it really has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    yield


def test_the_cli_refuses_what_this_machine_or_model_cannot_do(cli: Cli, saved: Callable[[str], Path], tmp_path: Path,
                                                               no_gpu: None) -> None:
    inputs = tmp_path / "in.txt"
    inputs.write_text("The server was restarted.\n", encoding="utf-8")
    t5, llama = saved("summarization"), saved("causal-lm")
    predict = ("predict", t5, "--input-file", inputs)
    assert_user_error(*cli(*predict, "--device", "cuda")[::2], "--device cuda: no CUDA GPU is available", "use --device cpu")
    assert_user_error(*cli(*predict, "--device", "cuda:1")[::2], "--device cuda:1: no CUDA GPU is available")
    assert_user_error(*cli(*predict, "--device", "mps")[::2], "--device mps: no Apple GPU (MPS)")
    assert_user_error(*cli(*predict, "--device", "gpu")[::2], "option 'device' got 'gpu'; valid: auto, cpu, cuda, cuda:N")
    assert_user_error(*cli(*predict, "--dtype", "float16")[::2], "--dtype float16: t5 models (the T5 family) overflow")
    assert_user_error(*cli("predict", llama, "--input-file", inputs, "--dtype", "float16")[::2], "--dtype float16 needs a GPU")
    assert_user_error(*cli(*predict, "--backend", "ctranslate2", "--dtype", "bfloat16")[::2], "--compute-type")
    code, out, err = cli("evaluate", t5, "--data-file", tmp_path / "missing.jsonl", "--device", "cuda")
    assert_user_error(code, err, "no CUDA GPU is available")  # refused before the data file is even looked at
    code, out, err = cli("serve", t5, "--port", "0", "--device", "cuda:0")
    assert_user_error(code, err, "no CUDA GPU is available")
    assert "serving" not in out  # refused before listening
    code, out, _ = cli("predict", llama, "--input-file", inputs, "--device", "cpu", "--dtype", "bfloat16")
    assert code == 0 and len(out.splitlines()) == 1


class Placed:
    """A predictor that says it runs on ``device`` and echoes its inputs."""

    task = "summarization"
    options = ()

    def __init__(self, device: str) -> None:
        self.device = device

    def info(self) -> dict[str, Any]:
        return {"task": self.task, "backend": {"name": "transformers", "device": self.device, "dtype": "bfloat16"}}

    def check_input(self, value: Any, index: int) -> Any:
        return value

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return options

    def predict(self, rows: list[Any], options: dict[str, Any]) -> list[Any]:
        return rows


def test_the_server_reports_device_and_dtype(saved: Callable[[str], Path], ready_client: Callable[..., Any]) -> None:
    model_dir = saved("summarization")
    app = create_app(config=serve_config({}), load=lambda: ModelPredictor(model_dir, load=texttune.load, device="cpu",
                                                                             dtype="bfloat16"))
    with ready_client(app) as client:
        info = client.get("/v1/model").json()
        attention = info["backend"].pop("attention")
        assert info["backend"] == {"name": "transformers", "device": "cpu", "dtype": "bfloat16"}
        # The rule training uses (backbones/attention.py): SDPA where the class has it, on CPU never FlashAttention.
        model_class = type(texttune.load(model_dir).backbone.model)
        assert attention == ("sdpa" if getattr(model_class, "_supports_sdpa", False) else "eager")
        assert info["limits"]["max_batch_size"] == 16  # the CPU's default
        assert client.post("/v1/predict", json={"inputs": DOCUMENTS[0], "max_new_tokens": 3}).status_code == 200
    with ready_client(create_app(config=serve_config({}), load=lambda: ModelPredictor(model_dir, load=texttune.load))) as client:
        backend = client.get("/v1/model").json()["backend"]
        assert {k: backend[k] for k in ("name", "device", "dtype")} == {"name": "transformers", "device": "cpu", "dtype": "float32"}


def test_the_servers_batch_size_follows_the_device_unless_given(ready_client: Callable[..., Any]) -> None:
    with ready_client(create_app(config=serve_config({}), load=lambda: Placed("cuda:0"))) as client:
        assert client.get("/v1/model").json()["limits"]["max_batch_size"] == 64
    with ready_client(create_app(config=serve_config({"max_batch_size": 8}), load=lambda: Placed("cuda:0"))) as client:
        assert client.get("/v1/model").json()["limits"]["max_batch_size"] == 8
