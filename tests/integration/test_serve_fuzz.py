"""Schemathesis fuzzes a live ``texttune serve`` from its own ``/openapi.json``.

Every operation gets schema-valid requests (positive mode) and requests that break
the schema (negative mode: wrong types, missing or extra fields, out-of-range
numbers, odd headers). Each response must: not be a 5xx other than the documented
503/504, use a status the schema documents for that route, and have a body,
content type and headers that match the schema. Requests the schema says are
invalid must be refused (4xx); schema-valid ones may still get 422 (an option that
does not apply to the task, ``min_new_tokens`` above ``max_new_tokens``: rules a
JSON schema cannot state), never another 4xx.

The server requires an API key: each case is sent with it, and Schemathesis's
``ignored_auth`` check sends it again without (and with a wrong key) expecting 401.
The server is a real subprocess on loopback (uvicorn, the body limit, the batcher),
with small limits so each generated request costs milliseconds. Examples per
operation are bounded (``EXAMPLES``), derandomized (the same cases every run) and
nothing is stored between runs. The statuses seen are printed (pytest -s) for the docs.
"""

from __future__ import annotations

import builtins
import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis (the test extra)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

#: Python 3.11+ raises groups of errors (BaseExceptionGroup); 3.10 has none, so Exception stands in for it.
_EXCEPTION_GROUP: type[BaseException] = getattr(builtins, "BaseExceptionGroup", Exception)

#: Examples per operation and generation mode: POST /v1/predict gets the most, it is where the input goes.
EXAMPLES = {"POST /v1/predict": 100}
KEY = "fuzz-key-0123"
DEFAULT_EXAMPLES = 25
LIMITS = ["--max-inputs-per-request", "4", "--max-input-chars", "300", "--max-body-bytes", "4096",
          "--max-new-tokens-limit", "8", "--max-beams-limit", "2", "--request-timeout", "30", "--max-wait-ms", "2"]
CONFIG = {
    "checks": {
        # 503 (model loading, queue full) and 504 (timeout) are the documented server-side answers.
        "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503", "504"]},
        # A schema-valid request may break a cross-field or per-task rule: 422, with the rule in the message; or a limit
        # the schema cannot state: 413, one input's fields together over --max-input-chars.
        "positive_data_acceptance": {"expected-statuses": ["2xx", "413", "422"]},
        # Requests the schema forbids are refused with a 4xx; 413 (body over the limit) is one of them.
        "negative_data_rejection": {"expected-statuses": ["400", "401", "403", "404", "405", "406", "409", "413", "415",
                                                          "422", "428", "429"]},
    },
    "generation": {"database": "none"},
    # The OpenAI-compatible routes answer such requests as OpenAI does: 400 (chat on an encoder-decoder, a rule of the
    # task), 404 for a model name the server does not serve (any string is schema-valid).
    "operations": [{"include-path-regex": "^/v1/(chat/)?completions$",
                    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "404", "413"]}}}],
}


@pytest.fixture(scope="module")
def live_url(t5_summarizer: Path) -> Iterator[str]:
    """``texttune serve`` on a free loopback port, once its model is loaded."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TEXTTUNE_FUZZ_KEY": KEY}
    process = subprocess.Popen(
        [sys.executable, "-m", "texttune.cli.main", "serve", str(t5_summarizer), "--port", "0", "--threads", "1",
         "--api-key-env", "TEXTTUNE_FUZZ_KEY", *LIMITS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert " on http://" in line, f"the server did not start: {line!r}"
        url = line.split(" on ", 1)[1].split()[0]
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/ready").status_code != 200:
            assert time.monotonic() < deadline, "the model did not load in 60 s"
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        unhandled = [line for line in err.splitlines() if "unhandled error" in line or "Traceback" in line]
        assert not unhandled, err  # the server logs every 500 it answers: there must be none


def test_fuzz_every_operation_from_the_openapi_schema(live_url: str) -> None:
    from schemathesis.config import SchemathesisConfig

    schema = schemathesis.openapi.from_url(f"{live_url}/openapi.json", config=SchemathesisConfig.from_dict(CONFIG))
    seen: dict[str, collections.Counter[int]] = {}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            statuses = seen.setdefault(f"{operation.label} {mode.value}", collections.Counter())
            _fuzz(operation, mode, statuses, failures)
    print("\nstatuses seen per operation and mode:")
    for label, counter in seen.items():
        print(f"  {label}: {dict(sorted(counter.items()))}")
    assert not failures, "\n\n".join(failures[:5])
    assert seen["POST /v1/predict positive"][200] > 0  # schema-valid inputs reached the model and came back
    assert not any(status >= 500 for counter in seen.values() for status in counter)


def _fuzz(operation: Any, mode: Any, statuses: collections.Counter[int], failures: list[str]) -> None:
    """Run one operation's cases in one generation mode; record statuses and the first failure."""
    examples = EXAMPLES.get(operation.label, DEFAULT_EXAMPLES)

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"})
        statuses[response.status_code] += 1

    try:
        run()
    except Unsatisfiable:  # negative mode on a route with no parameters and no body: nothing can be made invalid
        assert mode == GenerationMode.NEGATIVE and not operation.body and not operation.query, operation.label
    except (Exception, _EXCEPTION_GROUP) as exc:  # noqa: BLE001 - collected: every operation is fuzzed, then reported
        failures.append(f"{operation.label} ({mode.value}): {exc}")


def test_without_an_api_key_the_schema_declares_no_security() -> None:
    """A schema that demands auth the server does not check would mislead clients (Schemathesis's ignored_auth)."""
    from texttune.config import serve_config
    from texttune.serving import create_app

    def no_model() -> Any:
        raise AssertionError("the schema needs no model")

    open_schema = create_app(config=serve_config({}), load=no_model).openapi()
    keyed_schema = create_app(config=serve_config({}), load=no_model, api_key=KEY).openapi()
    assert "securitySchemes" not in open_schema.get("components", {})
    assert not any("security" in op for path in open_schema["paths"].values() for op in path.values())
    assert set(keyed_schema["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
    assert all("security" in keyed_schema["paths"][p]["get" if p != "/v1/predict" else "post"]
               for p in ("/metrics", "/v1/model", "/v1/predict"))


#: Requests that made the server answer 500 before (found by fuzzing the options and inputs by hand, beyond
#: what Schemathesis generates: its strings are valid Unicode and its floats rarely that small).
CRASHERS = [
    ("summarization", '{"inputs": "abc \\ud800 def"}', 422, "unpaired UTF-16 surrogate"),
    ("summarization", '{"inputs": ["fine", {"text": "x \\udfff"}]}', 422, "input 1: the text holds an unpaired"),
    ("summarization", '{"inputs": "hi", "do_sample": true, "temperature": 1e-300}', 422, "temperature"),
    ("summarization", '{"inputs": "hi", "do_sample": true, "repetition_penalty": 1e-300}', 422, "repetition_penalty"),
    ("masked-lm", '{"inputs": "the [MASK] tool", "top_k": 1000}', 200, "candidates"),
]


@pytest.mark.parametrize(("task", "body", "status", "needle"), CRASHERS)
def test_inputs_that_crashed_the_server_get_a_clear_answer(task: str, body: str, status: int, needle: str,
                                                           t5_summarizer: Path, tiny_model_dir: Any,
                                                           tmp_path_factory: pytest.TempPathFactory,
                                                           ready_client: Any) -> None:
    from texttune.api import MaskedLM, load
    from texttune.config import serve_config
    from texttune.serving import ModelPredictor, create_app

    model_dir = t5_summarizer
    if task == "masked-lm":
        model_dir = tmp_path_factory.getbasetemp() / "fuzz-masked-lm"
        if not model_dir.exists():
            MaskedLM(backbone=str(tiny_model_dir("bert"))).save(model_dir)
    with ready_client(create_app(config=serve_config({}), load=lambda: ModelPredictor(model_dir, load=load))) as client:
        response = client.post("/v1/predict", content=body.encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert needle in response.text
