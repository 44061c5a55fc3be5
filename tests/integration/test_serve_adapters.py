"""Several LoRA adapters over one base in one server (``texttune serve RUN --adapter NAME=DIR``).

Two adapters are trained on different data from the same tiny Llama and kept apart
(``merge_adapters=False``). Served together, each must answer exactly as its own run loaded
alone, the base as the plain backbone, and concurrent requests to all three must not see each
other's weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from texttune import api, load
from texttune.config import serve_config
from texttune.errors import ConfigError
from texttune.serving import ModelPredictor, create_app
from texttune.serving.server import parse_adapters

DATA = Path(__file__).parents[1] / "data"
INPUTS = ["a new package for parsing json", "tools for the sound card", "fonts for the console"]


def _train(tiny: Path, out: Path, targets: list[str] | None, *, merge: bool = False) -> Path:
    rows = [json.loads(line) for line in (DATA / "summarization.jsonl").read_text().splitlines()]
    model = api.Summarization(backbone=str(tiny), peft="lora", merge_adapters=merge, lora_dropout=0.0, max_source_length=48,
                              max_target_length=8, options={"progress_bar": False, "tensorboard": False, "baselines": False})
    model.fit(train={"document": [r["document"] for r in rows], "summary": targets or [r["summary"] for r in rows]},
              output_dir=out, max_steps=8, batch_size=4, learning_rate=1e-2)
    return out


@pytest.fixture(scope="module")
def runs(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root, tiny = tmp_path_factory.mktemp("adapters"), tiny_model_dir("llama")
    return {"alpha": _train(tiny, root / "alpha", None),
            "beta": _train(tiny, root / "beta", ["the answer is always this"] * 40),
            "tiny": tiny}


@pytest.fixture(scope="module")
def client(runs: dict[str, Path], ready_client: Callable[..., Any]) -> Iterator[Any]:
    predictor = lambda: ModelPredictor(runs["alpha"], load=load, adapters={"beta": runs["beta"] / "model"})  # noqa: E731
    with ready_client(create_app(config=serve_config({"max_wait_ms": 30}), load=predictor)) as c:
        yield c


def _complete(client: Any, model: str, prompt: str) -> str:
    response = client.post("/v1/completions", json={"model": model, "prompt": prompt, "max_tokens": 6, "temperature": 0})
    assert response.status_code == 200, response.json()
    return response.json()["choices"][0]["text"]


def _base_answer(runs: dict[str, Path], prompt: str) -> str:
    """The plain backbone's greedy answer to the served model's prompt layout, through transformers alone."""
    import torch
    from transformers import AutoModelForCausalLM

    prompts = load(runs["alpha"]).prompts([prompt], max_new_tokens=6)
    model = AutoModelForCausalLM.from_pretrained(runs["tiny"]).eval()
    ids = torch.tensor(prompts.ids)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                             pad_token_id=prompts.tokenizer.pad_token_id)
    return prompts.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_each_name_answers_as_its_own_model(client: Any, runs: dict[str, Path]) -> None:
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["alpha", "base", "beta"]
    assert client.get("/v1/model").json()["models"] == ["alpha", "base", "beta"]
    alone = {name: load(runs[name]).predict(INPUTS, max_new_tokens=6) for name in ("alpha", "beta")}
    assert alone["alpha"] != alone["beta"]  # trained on different data, they differ
    for name in ("alpha", "beta"):
        assert [_complete(client, name, x).strip() for x in INPUTS] == alone[name]
    assert [_complete(client, "base", x) for x in INPUTS] == [_base_answer(runs, x) for x in INPUTS]
    assert client.post("/v1/predict", json={"inputs": INPUTS, "max_new_tokens": 6}).json()["outputs"] == alone["alpha"]


def test_concurrent_requests_to_every_adapter_keep_their_own_weights(client: Any) -> None:
    expected = {(name, x): _complete(client, name, x) for name in ("alpha", "base", "beta") for x in INPUTS}
    jobs = list(expected) * 3
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda job: _complete(client, *job), jobs))
    assert got == [expected[job] for job in jobs]


def test_adapters_that_do_not_fit_are_refused(runs: dict[str, Path], tiny_model_dir: Callable[[str], Path],
                                               tmp_path: Path) -> None:
    merged = _train(runs["tiny"], tmp_path / "merged", None, merge=True)
    with pytest.raises(ConfigError, match="merged weights, not LoRA adapters"):
        load(runs["alpha"], adapters={"m": merged})
    other_task = api.CausalLM(backbone=str(runs["tiny"]), peft="lora", merge_adapters=False, max_length=32,
                              options={"progress_bar": False, "tensorboard": False})
    other_task.fit(train={"text": ["some text to continue, and more of it, " * 12] * 8}, output_dir=tmp_path / "causal",
                   max_steps=1, batch_size=4)
    with pytest.raises(ConfigError, match="a causal-lm model; the served model is summarization"):
        load(runs["alpha"], adapters={"c": tmp_path / "causal"})
    with pytest.raises(ConfigError, match="the name must be new"):
        load(runs["alpha"], adapters={"base": runs["beta"]})
    with pytest.raises(ConfigError, match="NAME=RUN_DIR"):
        parse_adapters(["beta"])
    with pytest.raises(ConfigError, match="given twice"):
        parse_adapters(["b=x", "b=y"])
