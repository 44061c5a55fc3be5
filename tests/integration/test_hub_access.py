"""Hub access goes through huggingface_hub: its offline switch, its endpoint, its proxies (issue 22).

Each case runs the CLI in a fresh process (huggingface_hub reads its environment at import)
with an empty cache and no network: an endpoint that refuses connections must give one line
within seconds, not 27 s of retries; a proxy given in HTTP_PROXY must be used (a fake proxy
answers for the hub, so the error says the hub has no such model instead of "unreachable").
"""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).parents[1] / "data"
REPO = "some-org/some-model"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: connections are refused


def _train(tmp_path: Path, **env: str) -> tuple[int, str, float]:
    base = {k: v for k, v in os.environ.items()
            if k not in {"HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "NO_PROXY", "no_proxy"}}
    full = {**base, "HF_HOME": str(tmp_path / "hf-home"), "TEXTTUNE_HOME": str(tmp_path / "tt-home"), **env}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "texttune.cli.main", "train", "summarization", "--backbone", REPO,
                           "--train-file", str(DATA / "summarization.jsonl"), "--output-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, env=full, timeout=120)
    return done.returncode, done.stderr.strip(), time.monotonic() - started


def test_offline_mode_is_one_line(tmp_path: Path) -> None:
    code, err, _ = _train(tmp_path, HF_HUB_OFFLINE="1")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "the model hub is off (offline mode: HF_HUB_OFFLINE is set)" in err and "offline alias" in err


def test_an_unreachable_endpoint_fails_at_once_in_one_line(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    code, err, seconds = _train(tmp_path, HF_ENDPOINT=endpoint)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"the model hub cannot be reached at {endpoint}" in err and "refused" in err.lower(), err
    assert seconds < 20, seconds  # huggingface_hub's own retries take ~27 s; one look-up takes milliseconds


class _FakeHub(http.server.BaseHTTPRequestHandler):
    """A proxy that answers every request itself, as the hub does for a repository it does not have."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).seen.append(self.path)  # a proxy receives the absolute URL
        body = b'{"error": "Repository not found"}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_proxy_in_the_environment_is_used(tmp_path: Path, proxy: str) -> None:
    _FakeHub.seen.clear()
    code, err, _ = _train(tmp_path, HF_ENDPOINT="http://hub.invalid", HTTP_PROXY=proxy, http_proxy=proxy)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"the model hub has no model {REPO!r}" in err, err  # reached (through the proxy), not "unreachable"
    assert any(seen.startswith(f"http://hub.invalid/api/models/{REPO}") for seen in _FakeHub.seen), _FakeHub.seen
