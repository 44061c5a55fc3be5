"""Every task is servable: inputs, per-task options and output shapes through the HTTP API.

Untrained heads on tiny models give meaningless answers; what is checked is the
shape of each task's request and response and that the server's output equals
the library's for the same input.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from texttune.api import load
from texttune.config import serve_config
from texttune.serving import ModelPredictor, create_app


@pytest.fixture
def serve(ready_client: Callable[..., Any]) -> Callable[[Path], Any]:
    """``with serve(model_dir) as client:`` the model behind a default-configured app."""
    return lambda model_dir: ready_client(create_app(config=serve_config({}), load=lambda: ModelPredictor(model_dir, load=load)))


@pytest.fixture(scope="module")
def saved(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    from texttune import api

    builders: dict[str, Callable[[], Any]] = {
        "token-classification": lambda: api.TokenClassification(backbone=str(tiny_model_dir("bert")), label_list="O,B-PER,I-PER"),
        "question-answering": lambda: api.QuestionAnswering(backbone=str(tiny_model_dir("bert"))),
        "masked-lm": lambda: api.MaskedLM(backbone=str(tiny_model_dir("bert"))),
        "causal-lm": lambda: api.CausalLM(backbone=str(tiny_model_dir("llama"))),
        "translation": lambda: api.Translation(backbone=str(tiny_model_dir("bart"))),
        "text-classification": lambda: api.TextClassification(backbone=str(tiny_model_dir("bert")),
                                                              label_list="games,python,science,sound"),
    }
    root = tmp_path_factory.mktemp("served-tasks")
    return lambda task: builders[task]().save(root / task) if not (root / task).exists() else root / task


def _post(client: TestClient, body: dict[str, Any]) -> Any:
    response = client.post("/v1/predict", json=body)
    assert response.status_code == 200, response.text
    return response.json()["outputs"]


def test_token_classification(saved: Callable[[str], Path], serve: Callable[[Path], Any]) -> None:
    from texttune.api import load

    model_dir = saved("token-classification")
    with serve(model_dir) as client:
        info = client.get("/v1/model").json()
        assert info["labels"] == ["O", "B-PER", "I-PER"] and info["options"] == ["aggregation"]
        assert info["generation_defaults"] is None
        text = "John Smith lives in Paris"
        expected = load(model_dir).predict([text], aggregation="none")
        assert _post(client, {"inputs": text, "aggregation": "none"}) == expected
        entity = expected[0]["entities"][0]
        assert set(entity) >= {"score", "word", "start", "end"}
        words = _post(client, {"inputs": [{"tokens": ["John", "lives", "here"]}]})
        assert len(words[0]["tags"]) == 3 and set(words[0]["tags"]) <= {"O", "B-PER", "I-PER"}
        refused = client.post("/v1/predict", json={"inputs": text, "aggregation": "median"})
        assert refused.status_code == 422 and "aggregation" in refused.json()["error"]["message"]
        refused = client.post("/v1/predict", json={"inputs": text, "max_new_tokens": 3})
        assert refused.status_code == 422 and "does not apply to task 'token-classification'" in refused.text


def test_question_answering(saved: Callable[[str], Path], serve: Callable[[Path], Any]) -> None:
    with serve(saved("question-answering")) as client:
        assert client.get("/v1/model").json()["inputs"] == ["question", "context"]
        context = "The package ships a command line tool and a Python library."
        [answer] = _post(client, {"inputs": [{"question": "What does it ship?", "context": context}]})
        assert set(answer) == {"answer", "score", "start", "end"}
        assert context[answer["start"]:answer["end"]] == answer["answer"]
        missing = client.post("/v1/predict", json={"inputs": {"question": "What?"}})
        assert missing.status_code == 422 and "context" in missing.json()["error"]["message"]
        plain = client.post("/v1/predict", json={"inputs": "just a text"})
        assert plain.status_code == 422 and "question" in plain.json()["error"]["message"]


def test_masked_lm(saved: Callable[[str], Path], serve: Callable[[Path], Any]) -> None:
    with serve(saved("masked-lm")) as client:
        assert client.get("/v1/model").json()["mask_token"] == "[MASK]"
        [out] = _post(client, {"inputs": "the tool [MASK] files", "top_k": 3})
        assert len(out["candidates"]) == 3 and all("token_str" in c and "score" in c for c in out["candidates"])


def test_causal_lm_and_translation(saved: Callable[[str], Path], serve: Callable[[Path], Any]) -> None:
    from texttune.api import load

    for task in ("causal-lm", "translation"):
        model_dir = saved(task)
        prompts = ["Once upon a time", "The library"]
        expected = load(model_dir).predict(prompts, max_new_tokens=4)
        with serve(model_dir) as client:
            assert _post(client, {"inputs": prompts, "max_new_tokens": 4}) == expected
            assert client.get("/v1/model").json()["generation_defaults"]["num_beams"] == 1


def test_text_classification(saved: Callable[[str], Path], serve: Callable[[Path], Any]) -> None:
    from texttune.api import load

    model_dir = saved("text-classification")
    with serve(model_dir) as client:
        info = client.get("/v1/model").json()
        assert info["labels"] == ["games", "python", "science", "sound"] and info["options"] == ["top_k", "threshold"]
        assert info["inputs"] == ["text"]  # the pair only for a model trained on pairs
        texts = ["A puzzle game", "Python bindings for a library"]
        expected = load(model_dir).predict(texts, top_k=2)
        assert _post(client, {"inputs": texts, "top_k": 2}) == expected
        assert expected[0]["label"] in info["labels"] and len(expected[0]["top_k"]) == 2
        refused = client.post("/v1/predict", json={"inputs": texts, "top_k": 0})
        assert refused.status_code == 422 and "top_k" in refused.json()["error"]["message"]
        refused = client.post("/v1/predict", json={"inputs": texts, "num_beams": 2})
        assert refused.status_code == 422 and "does not apply to task 'text-classification'" in refused.text
