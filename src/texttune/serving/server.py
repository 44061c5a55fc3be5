"""Run the app under uvicorn: bind first, load the model in the background, stop gracefully.

The socket is bound before anything else so a busy port fails in milliseconds
with a clear message, and port 0 prints the port it got. SIGTERM and Ctrl-C
are uvicorn's: it stops accepting connections, lets in-flight requests finish
(up to the request timeout), then the app drains its queue and exits 0.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from texttune.config import ServeConfig
from texttune.errors import BackboneError, ConfigError
from texttune.inference.options import inference_config, inference_options
from texttune.inference.saved_model import check_backend
from texttune.runs import find_model_dir, read_metadata
from texttune.serving.app import create_app
from texttune.serving.predictor import ModelPredictor

log = logging.getLogger("texttune.serving")

#: Seconds an idle keep-alive connection stays open. Longer than clients' own idle expiry (httpx 5 s,
#: aiohttp 15 s, load balancers often 60 s): when the server closes first, a request the client sends on
#: that connection at the same instant fails with a reset (the soak test saw 4 in 5,000 at uvicorn's 5 s).
KEEP_ALIVE_S = 75


def api_key_from_env(config: ServeConfig) -> str | None:
    """The API key named by ``--api-key-env``; an unset or empty variable is an error, not "no auth"."""
    if config.api_key_env is None:
        return None
    key = os.environ.get(config.api_key_env, "")
    if not key.strip():
        raise ConfigError(f"--api-key-env {config.api_key_env}: that environment variable is not set or empty")
    return key.strip()


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv4 or IPv6)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _graceful_server(config: object) -> object:
    """A uvicorn Server whose SIGTERM/Ctrl-C stop is a normal exit (status 0).

    uvicorn re-raises the caught signal after its graceful shutdown so the process
    dies "by signal" (status -15); we have drained every request by then, so we
    report success instead. Ctrl-C still ends with status 0, not a traceback.
    """
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            super().handle_exit(sig, frame)  # type: ignore[arg-type]
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()

    return Server(config)  # type: ignore[arg-type]


def parse_adapters(specs: list[str]) -> dict[str, Path]:
    """``--adapter NAME=RUN_DIR`` values as {name: directory}; ConfigError for a value without both parts."""
    adapters: dict[str, Path] = {}
    for spec in specs:
        name, _, directory = spec.partition("=")
        if not name.strip() or not directory.strip():
            raise ConfigError(f"--adapter {spec!r}: expected NAME=RUN_DIR (e.g. --adapter legal=runs/legal-lora)")
        if name.strip() in adapters:
            raise ConfigError(f"--adapter {spec!r}: the name {name.strip()!r} is given twice")
        adapters[name.strip()] = Path(directory.strip())
    return adapters


def serve(model_dir: str | Path, *, config: ServeConfig, load_model: Callable[..., Any], announce: TextIO = sys.stdout,
          adapters: list[str] | None = None) -> int:
    """Serve the model saved in ``model_dir`` (a run or model directory) until SIGTERM/Ctrl-C. Returns 0.

    ``load_model``: how a saved model is loaded (:func:`texttune.api.load`, passed in by the CLI).
    ``adapters``: ``NAME=RUN_DIR`` values: LoRA adapters saved apart, served over the model by name
    (backbones/adapter_set.py); each directory is checked before the port is bound.

    Raises a TexttuneError before listening when the directory is not a model, the
    port is taken or the API key variable is empty, and after listening when the
    weights fail to load (the server then stops by itself).
    """
    # Before torch loads OpenMP: its threads sleep when idle instead of spinning. On a CPU shared with other work the
    # spinning made requests 5-10x slower (docs/serve-load.md); a value of your own wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import uvicorn

    found = find_model_dir(model_dir)
    metadata = read_metadata(found)  # a broken texttune.json fails here, before any socket
    task = metadata["task"]
    inference = inference_config(**inference_options(config))
    check_backend(found, metadata, inference)  # a device this machine lacks fails here, before the port is bound
    adapter_dirs = {name: find_model_dir(d) for name, d in parse_adapters(adapters or []).items()}
    for directory in adapter_dirs.values():
        read_metadata(directory)  # a missing or broken adapter directory fails before the port is bound
    api_key = api_key_from_env(config)
    if config.threads is not None:
        import torch

        torch.set_num_threads(config.threads)
    sock = bind(config.host, config.port)
    if not _is_loopback(config.host) and api_key is None:
        log.warning("listening on %s without an API key: anyone who can reach this port can use the model", config.host)
    failure: list[str] = []
    server: Any = None

    def stop_on_failure(detail: str) -> None:
        failure.append(detail)
        if server is not None:
            server.should_exit = True

    def load() -> ModelPredictor:
        return ModelPredictor(found, load=load_model, adapters=adapter_dirs or None, **inference_options(inference))

    app = create_app(config=config, load=load, api_key=api_key, on_load_failure=stop_on_failure)
    server = _graceful_server(uvicorn.Config(
        app, log_config=None, access_log=config.access_log, server_header=False, lifespan="on",
        timeout_graceful_shutdown=int(config.request_timeout) + 5, timeout_keep_alive=KEEP_ALIVE_S,
    ))
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"texttune: serving {task} model {found} on http://{shown}:{port} "
          f"(playground /, API docs /docs, metrics /metrics); Ctrl-C or SIGTERM stops it", file=announce, flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if failure:
        raise BackboneError(f"{found}: the model failed to load: {failure[0]}")
    log.info("stopped: every request was answered")
    return 0
