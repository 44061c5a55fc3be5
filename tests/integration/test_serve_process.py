"""``texttune serve`` as a real process: the Python client, graceful SIGTERM, startup errors.

Each server runs on a free loopback port (``--port 0``); the port is read from
the line the command prints when it starts listening.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from texttune.client import Client, ServerError

KEY_VAR = "TEXTTUNE_TEST_KEY"


@pytest.fixture(scope="module")
def t5_dir(t5_summarizer: Path) -> Path:
    return t5_summarizer


class Server:
    """A ``texttune serve`` subprocess; ``url`` once it listens."""

    def __init__(self, model_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "texttune.cli.main", "serve", str(model_dir), "--port", "0", "--threads", "1", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
        line = self.process.stdout.readline() if self.process.stdout else ""
        if "http://" not in line:
            self.process.kill()
            raise AssertionError(f"server did not start: {line!r} {self.process.stderr.read() if self.process.stderr else ''}")
        self.url = line.split(" on ", 1)[1].split(" ", 1)[0]
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return self.process.returncode, err


@pytest.fixture
def start() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def factory(model_dir: Path, *args: str, env: dict[str, str] | None = None) -> Server:
        servers.append(Server(model_dir, *args, env=env))
        return servers[-1]

    yield factory
    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def test_client_against_a_live_server(start: Callable[..., Server], t5_dir: Path) -> None:
    from texttune.api import load

    server = start(t5_dir, "--api-key-env", KEY_VAR, env={KEY_VAR: "k-123"})
    client = Client(server.url, api_key="k-123")
    client.wait_until_ready(timeout=60)
    texts = ["a tool to convert images", "documentation for the library"]
    expected = load(t5_dir).predict(texts, max_new_tokens=4)
    assert client.predict(texts, max_new_tokens=4) == expected
    assert client.predict(texts[0], max_new_tokens=4) == expected[0]
    assert client.model_info()["task"] == "summarization"
    with pytest.raises(ServerError) as refused:
        client.predict("x", max_new_tokens=100_000)
    assert refused.value.status == 422 and "max_new_tokens" in refused.value.message
    with pytest.raises(ServerError) as anonymous:
        Client(server.url).predict("x")
    assert anonymous.value.status == 401 and anonymous.value.code == "unauthorized"
    code, err = server.stop()
    assert code == 0 and "Traceback" not in err


def test_sigterm_lets_the_request_in_flight_finish(start: Callable[..., Server], t5_dir: Path) -> None:
    server = start(t5_dir, "--max-batch-size", "1")
    client = Client(server.url)
    client.wait_until_ready(timeout=60)
    results: dict[str, Any] = {}
    # Enough work that SIGTERM arrives while it runs: 8 inputs, one at a time, up to 200 tokens each.
    work = [f"a long description of package {i} " * 8 for i in range(8)]

    def slow_request() -> None:
        started = time.perf_counter()
        try:
            results["outputs"] = client.predict(work, max_new_tokens=200, num_beams=4)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion below
            results["error"] = exc
        results["seconds"] = time.perf_counter() - started

    caller = threading.Thread(target=slow_request)
    caller.start()
    time.sleep(0.5)
    sent_at = time.perf_counter()
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(OSError):  # no new connections once shutting down
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    caller.join(120)
    code, err = server.stop()
    assert "error" not in results, results.get("error")
    assert len(results["outputs"]) == len(work) and all(isinstance(o, str) for o in results["outputs"])
    assert time.perf_counter() - sent_at > 0.3, "the request should have outlived the signal"
    assert code == 0, err
    assert "Traceback" not in err


def test_weights_that_fail_to_load_stop_the_server_with_a_clear_error(start: Callable[..., Server], t5_dir: Path,
                                                                       tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(t5_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    server = start(broken)
    code, err = _wait_exit(server)  # it stops by itself
    assert code == 2, err
    assert "texttune: error:" in err and "failed to load" in err and "Traceback" not in err


def _wait_exit(server: Server) -> tuple[int, str]:
    try:
        _, err = server.process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        server.process.kill()
        raise
    return server.process.returncode, err


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--api-key-env", "TEXTTUNE_UNSET_VAR"], {}, "TEXTTUNE_UNSET_VAR: that environment variable is not set or empty"),
    (["--max-batch-size", "0"], {}, "option 'max_batch_size' must be > 0"),
    (["--max-queue", "8", "--max-inputs-per-request", "16"], {}, "max_queue (8) is smaller than max_inputs_per_request"),
    (["--host", "no.such.host.invalid"], {}, "cannot listen on 'no.such.host.invalid'"),
], ids=["empty key variable", "zero batch", "queue below request size", "bad host"])
def test_startup_errors_are_one_line(cli: Callable[..., tuple[int, str, str]], t5_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                     args: list[str], env: dict[str, str], message: str) -> None:
    monkeypatch.delenv("TEXTTUNE_UNSET_VAR", raising=False)
    code, out, err = cli("serve", t5_dir, *args)
    assert code == 2 and message in err and "Traceback" not in err and err.count("\n") == 1, err


def test_a_busy_port_and_a_directory_without_a_model(cli: Callable[..., tuple[int, str, str]], t5_dir: Path,
                                                     tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, _, err = cli("serve", t5_dir, "--port", port)
        assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err
    code, _, err = cli("serve", tmp_path)
    assert code == 2 and "not a texttune model directory" in err


def test_serving_never_imports_the_training_engine(t5_dir: Path) -> None:
    probe = ("import sys; from texttune.api import load; from texttune.serving import ModelPredictor; "
             "p = ModelPredictor(sys.argv[1], load=load); "
             "p.predict(['hello'], {'max_new_tokens': 2}); "
             "print(sorted(m for m in sys.modules if m.startswith(('texttune.engine', 'lightning'))))")
    out = subprocess.run([sys.executable, "-c", probe, str(t5_dir)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _post_urllib(url: str, body: bytes | Iterator[bytes], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # type: ignore[arg-type]
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_an_oversize_body_gets_the_413_json_not_a_connection_reset(start: Callable[..., Server], t5_dir: Path) -> None:
    """A 10 MB body over --max-body-bytes: requests and urllib, with a length and chunked, all read the 413 JSON.

    The server answers, then keeps reading and discarding the rest of the body (a lingering close):
    closing while the client still sends resets the connection before the client reads the answer.
    """
    import requests

    server = start(t5_dir, "--max-body-bytes", "4000")
    Client(server.url).wait_until_ready(timeout=60)
    url = f"{server.url}/v1/predict"
    big = b'{"inputs": "' + b"x" * 10_000_000 + b'"}'
    headers = {"content-type": "application/json"}

    def chunked() -> Iterator[bytes]:  # no Content-Length: sent with Transfer-Encoding: chunked
        for start_at in range(0, len(big), 65536):
            yield big[start_at:start_at + 65536]

    answers = [(r.status_code, r.json()) for r in (requests.post(url, data=big, headers=headers, timeout=60),
                                                   requests.post(url, data=chunked(), headers=headers, timeout=60))]
    answers += [_post_urllib(url, big, headers),
                _post_urllib(url, chunked(), {**headers, "transfer-encoding": "chunked"})]
    for status, body in answers:
        assert status == 413 and body["error"]["code"] == "body_too_large", (status, body)
    assert Client(server.url).predict("still serving", max_new_tokens=2)  # the server is unharmed
    code, err = server.stop()
    assert code == 0 and "Traceback" not in err
