"""The HTTP server in-process (FastAPI's TestClient): API, auth, every limit, metrics, concurrency.

A real tiny T5 summarization model serves most tests; a scripted predictor makes
slowness, a full queue and timeouts happen on demand. The subprocess tests
(graceful shutdown, CLI errors) are in ``test_serve_process.py``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from texttune.api import load
from texttune.config import GENERATION_OPTIONS, serve_config
from texttune.errors import DataError
from texttune.serving import ModelPredictor, create_app

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def t5_dir(t5_summarizer: Path) -> Path:
    return t5_summarizer


@pytest.fixture(scope="module")
def keyed(t5_dir: Path, ready_client: Callable[..., Any]) -> Iterator[TestClient]:
    with ready_client(create_app(config=serve_config({}), load=lambda: ModelPredictor(t5_dir, load=load), api_key=KEY)) as client:
        yield client


def _error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["status"] == status and body["error"]["code"] == code, body
    return body["error"]["message"]


# -- the API --------------------------------------------------------------------------------------
def test_predict_one_input_or_a_list_in_order(server: TestClient, t5_dir: Path) -> None:
    from texttune.api import load

    texts = ["the cat sat on the mat", "a library for parsing json", "hello"]
    expected = load(t5_dir).predict(texts, max_new_tokens=6)
    one = server.post("/v1/predict", json={"inputs": texts[0], "max_new_tokens": 6}).json()
    assert one["outputs"] == expected[:1] and one["task"] == "summarization"
    many = server.post("/v1/predict", json={"inputs": texts, "max_new_tokens": 6}).json()
    assert many["outputs"] == expected
    timing = many["timing"]
    assert timing["total_ms"] >= timing["inference_ms"] > 0 and timing["batch_sizes"] == [3, 3, 3]
    as_dict = server.post("/v1/predict", json={"inputs": {"text": texts[2]}, "max_new_tokens": 6}).json()
    assert as_dict["outputs"] == expected[2:]


def test_model_info_health_ready_and_openapi(server: TestClient) -> None:
    info = server.get("/v1/model").json()
    assert info["task"] == "summarization" and info["inputs"] == ["text"] and info["family"] == "seq2seq"
    assert info["options"] == list(GENERATION_OPTIONS) and info["architecture"] == "T5ForConditionalGeneration"
    assert info["generation_defaults"]["num_beams"] == 1 and info["limits"]["max_inputs_per_request"] == 4
    assert info["texttune_version"]
    assert server.get("/health").json() == {"status": "ok", "detail": None}
    assert server.get("/ready").status_code == 200
    schema = server.get("/openapi.json").json()
    request = schema["components"]["schemas"]["PredictRequest"]["properties"]
    assert request["max_new_tokens"]["anyOf"][0]["maximum"] == 16  # the server's real limit is published
    assert "/v1/predict" in schema["paths"] and "413" in schema["paths"]["/v1/predict"]["post"]["responses"]
    assert server.get("/docs").status_code == 200


def test_concurrent_callers_get_their_own_outputs(server: TestClient, t5_dir: Path) -> None:
    from texttune.api import load

    texts = [f"package {i} provides " + "tools " * (i % 7) + f"number {i}" for i in range(24)]
    expected = dict(zip(texts, load(t5_dir).predict(texts, max_new_tokens=5)))

    def call(text: str) -> tuple[str, Any]:
        response = server.post("/v1/predict", json={"inputs": text, "max_new_tokens": 5})
        return text, response.json()

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(call, texts))
    for text, body in results:
        assert body["outputs"] == [expected[text]], text
    assert max(max(body["timing"]["batch_sizes"]) for _, body in results) > 1  # they did share batches


def test_metrics_in_prometheus_format(server: TestClient) -> None:
    server.post("/v1/predict", json={"inputs": "count me", "max_new_tokens": 2})
    server.post("/v1/predict", content=b"{", headers={"content-type": "application/json"})
    text = server.get("/metrics").text
    assert 'texttune_requests_total{path="/v1/predict",status="200"}' in text
    assert 'texttune_requests_total{path="/v1/predict",status="400"}' in text
    for name in ("texttune_request_duration_seconds_bucket", "texttune_batch_size_bucket", "texttune_queue_depth",
                 "texttune_inputs_total", "texttune_model_ready 1.0"):
        assert name in text
    server.get("/no/such/path/" + "x" * 50)
    assert "/no/such/path" not in server.get("/metrics").text  # unknown paths share one label


def test_playground_is_served(server: TestClient) -> None:
    page = server.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"] and "/v1/predict" in page.text


# -- malformed bodies and limits ------------------------------------------------------------------
BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("invalid JSON", {"content": b'{"inputs": "x",'}, 400, "invalid_json", "not valid JSON"),
    ("not JSON at all", {"content": b"\xff\xfe garbage"}, 400, "invalid_json", "not valid JSON"),
    ("form content type", {"content": b"inputs=x", "headers": {"content-type": "application/x-www-form-urlencoded"}},
     415, "unsupported_media_type", "application/json"),
    ("JSON but not an object", {"json": ["x"]}, 422, "invalid_request", "body"),
    ("no inputs", {"json": {"max_new_tokens": 3}}, 422, "invalid_request", "inputs: is required"),
    ("empty list", {"json": {"inputs": []}}, 422, "invalid_request", "list of 1 to 4"),
    ("too many inputs", {"json": {"inputs": ["a"] * 5}}, 422, "invalid_request", "list of 1 to 4"),
    ("number as input", {"json": {"inputs": 3}}, 422, "invalid_request", "inputs: must be a text"),
    ("empty text", {"json": {"inputs": "   "}}, 422, "invalid_input", "non-empty text"),
    ("unknown field", {"json": {"inputs": "x", "max_tokens": 3}}, 422, "invalid_request", "max_tokens: an unknown or unsupported field"),
    ("string number", {"json": {"inputs": "x", "max_new_tokens": "3"}}, 422, "invalid_request", "max_new_tokens"),
    ("max_new_tokens over the limit", {"json": {"inputs": "x", "max_new_tokens": 17}}, 422, "invalid_request", "less than or equal to 16"),
    ("max_new_tokens zero", {"json": {"inputs": "x", "max_new_tokens": 0}}, 422, "invalid_request", "greater than or equal to 1"),
    ("beams over the limit", {"json": {"inputs": "x", "num_beams": 3}}, 422, "invalid_request", "num_beams"),
    ("top_p above 1", {"json": {"inputs": "x", "top_p": 1.5}}, 422, "invalid_request", "top_p"),
    ("negative temperature", {"json": {"inputs": "x", "temperature": -1}}, 422, "invalid_request", "temperature"),
    ("NaN temperature", {"content": b'{"inputs": "x", "temperature": NaN}'}, 422, "invalid_request", "temperature"),
    ("min above max", {"json": {"inputs": "x", "min_new_tokens": 9, "max_new_tokens": 3}}, 422, "invalid_input", "larger than"),
    ("option of another task", {"json": {"inputs": "x", "aggregation": "max"}}, 422, "invalid_input", "does not apply"),
    ("one input too long", {"json": {"inputs": ["ok", "y" * 201]}}, 413, "input_too_long", "input 1 has 201 characters"),
    ("body too large", {"json": {"inputs": "z" * 5000}}, 413, "body_too_large", "limit is 4000"),
]


@pytest.mark.parametrize(("case", "request_kwargs", "status", "code", "message"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_one_clear_error(server: TestClient, case: str, request_kwargs: dict[str, Any], status: int,
                                          code: str, message: str) -> None:
    kwargs = dict(request_kwargs)
    if "content" in kwargs:
        kwargs.setdefault("headers", {"content-type": "application/json"})
    assert message in _error(server.post("/v1/predict", **kwargs), status, code)


def test_a_chunked_body_without_length_is_cut_off_at_the_limit(server: TestClient) -> None:
    chunks = iter([b'{"inputs": "' + b"x" * 3000, b"y" * 3000 + b'"}'])  # no Content-Length: sent chunked
    response = server.post("/v1/predict", content=chunks, headers={"content-type": "application/json"})
    assert "more than 4000 bytes" in _error(response, 413, "body_too_large")


def test_unknown_route_and_method(server: TestClient) -> None:
    _error(server.get("/v2/predict"), 404, "not_found")
    _error(server.get("/v1/predict"), 405, "method_not_allowed")


# -- auth -------------------------------------------------------------------------------------------
def test_api_key_is_required_where_it_matters(keyed: TestClient) -> None:
    body = {"inputs": "x", "max_new_tokens": 2}
    assert "Bearer" in _error(keyed.post("/v1/predict", json=body), 401, "unauthorized")
    assert keyed.post("/v1/predict", json=body).headers["www-authenticate"] == "Bearer"
    _error(keyed.post("/v1/predict", json=body, headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    _error(keyed.post("/v1/predict", json=body, headers={"Authorization": f"Basic {KEY}"}), 401, "unauthorized")
    _error(keyed.get("/v1/model"), 401, "unauthorized")
    _error(keyed.get("/metrics"), 401, "unauthorized")
    assert keyed.post("/v1/predict", json=body, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert keyed.post("/v1/predict", json=body, headers={"X-API-Key": KEY}).status_code == 200
    assert keyed.get("/metrics", headers={"X-API-Key": KEY}).status_code == 200
    for open_path in ("/health", "/ready", "/", "/openapi.json"):  # probes and the page need no key
        assert keyed.get(open_path).status_code == 200, open_path
    assert "HTTPBearer" in json.dumps(keyed.get("/openapi.json").json()["components"]["securitySchemes"])


# -- queue, timeout, loading: a scripted model -------------------------------------------------------
class Scripted:
    """A predictor whose predict waits on ``gate`` (or sleeps ``delay``), echoing its inputs."""

    task = "summarization"
    options = GENERATION_OPTIONS

    def __init__(self, *, delay: float = 0.0, gate: threading.Event | None = None) -> None:
        self.delay, self.gate = delay, gate

    def info(self) -> dict[str, Any]:
        return {"task": self.task}

    def check_input(self, value: Any, index: int) -> Any:
        if not isinstance(value, str):
            raise DataError(f"input {index}: expected text")
        return value

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return options

    def predict(self, rows: list[Any], options: dict[str, Any]) -> list[Any]:
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.delay)
        return [row.upper() for row in rows]


def test_a_full_queue_answers_503_with_retry_after(ready_client: Callable[..., Any]) -> None:
    gate = threading.Event()
    config = serve_config({"max_batch_size": 1, "max_queue": 2, "max_inputs_per_request": 2, "max_wait_ms": 0})
    with ready_client(create_app(config=config, load=lambda: Scripted(gate=gate))) as client:
        with ThreadPoolExecutor(max_workers=4) as pool:
            busy = pool.submit(client.post, "/v1/predict", json={"inputs": "running"})
            time.sleep(0.3)  # "running" is inside the model, blocked on the gate
            queued = pool.submit(client.post, "/v1/predict", json={"inputs": ["q1", "q2"]})
            time.sleep(0.3)  # the queue now holds 2 of 2
            refused = client.post("/v1/predict", json={"inputs": "one too many"})
            assert "busy" in _error(refused, 503, "queue_full") and refused.headers["retry-after"] == "1"
            gate.set()
            assert busy.result().json()["outputs"] == ["RUNNING"]
            assert queued.result().json()["outputs"] == ["Q1", "Q2"]


def test_a_slow_request_gets_504_and_the_server_keeps_serving(ready_client: Callable[..., Any]) -> None:
    config = serve_config({"request_timeout": 0.3, "max_wait_ms": 0})
    with ready_client(create_app(config=config, load=lambda: Scripted(delay=0.6))) as client:
        assert "0.3 s" in _error(client.post("/v1/predict", json={"inputs": "slow"}), 504, "timeout")
        time.sleep(0.5)
        assert client.get("/health").status_code == 200


def test_not_ready_while_the_model_loads_then_ready() -> None:
    loaded = threading.Event()

    def slow_load() -> Scripted:
        loaded.wait(10)
        return Scripted()

    with TestClient(create_app(config=serve_config({}), load=slow_load)) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").json()["status"] == "loading" and client.get("/ready").status_code == 503
        response = client.post("/v1/predict", json={"inputs": "early"})
        assert "still loading" in _error(response, 503, "model_not_ready") and response.headers["retry-after"] == "5"
        loaded.set()
        deadline = time.monotonic() + 10
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert client.post("/v1/predict", json={"inputs": "late"}).json()["outputs"] == ["LATE"]


def test_a_model_that_fails_to_load_is_reported() -> None:
    failures: list[str] = []

    def broken() -> Scripted:
        raise DataError("weights are truncated")

    with TestClient(create_app(config=serve_config({}), load=broken, on_load_failure=failures.append)) as client:
        deadline = time.monotonic() + 10
        while not failures:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert client.get("/ready").json() == {"status": "failed", "detail": "weights are truncated"}
        assert "truncated" in _error(client.post("/v1/predict", json={"inputs": "x"}), 503, "model_not_ready")
    assert failures == ["weights are truncated"]
