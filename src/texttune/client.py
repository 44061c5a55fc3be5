"""A small client for ``texttune serve`` (standard library only: usable without torch).

    >>> client = texttune.Client("http://127.0.0.1:8000", api_key=os.environ.get("TEXTTUNE_KEY"))
    >>> client.wait_until_ready()
    >>> client.predict("A long text ...", max_new_tokens=48)
    'A summary.'
    >>> client.predict(["text one", "text two"])
    ['summary one', 'summary two']

Server errors raise :class:`ServerError` with the HTTP status, the error code
and the server's message (and ``retry_after`` seconds for 503).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from texttune.errors import TexttuneError


class ServerError(TexttuneError):
    """The server refused or failed a request."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


class Client:
    """Talks to one texttune server. Thread-safe: each call opens its own connection."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def predict(
        self,
        inputs: Any,
        *,
        max_new_tokens: int | None = None,
        min_new_tokens: int | None = None,
        num_beams: int | None = None,
        do_sample: bool | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        no_repeat_ngram_size: int | None = None,
        length_penalty: float | None = None,
        repetition_penalty: float | None = None,
        aggregation: str | None = None,
    ) -> Any:
        """Outputs for ``inputs``: one output for one input (a text or a dict), a list for a list."""
        options = {
            "max_new_tokens": max_new_tokens, "min_new_tokens": min_new_tokens, "num_beams": num_beams,
            "do_sample": do_sample, "temperature": temperature, "top_k": top_k, "top_p": top_p,
            "no_repeat_ngram_size": no_repeat_ngram_size, "length_penalty": length_penalty,
            "repetition_penalty": repetition_penalty, "aggregation": aggregation,
        }
        body = {"inputs": inputs, **{k: v for k, v in options.items() if v is not None}}
        outputs = self.request("POST", "/v1/predict", body)["outputs"]
        return outputs if isinstance(inputs, list) else outputs[0]

    def model_info(self) -> dict[str, Any]:
        """Task, backbone, inputs, options, labels and generation defaults of the served model."""
        return self.request("GET", "/v1/model")

    def ready(self) -> bool:
        """Whether the model is loaded (False while loading or when the server is unreachable)."""
        try:
            return self.request("GET", "/ready").get("status") == "ok"
        except (ServerError, OSError):
            return False

    def wait_until_ready(self, *, timeout: float = 120.0, interval: float = 0.2) -> None:
        """Block until the model is loaded; TexttuneError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise TexttuneError(f"{self.url}: not ready after {timeout:g} s")
            time.sleep(interval)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON request; the decoded JSON answer, or ServerError."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:  # noqa: S310 - the user's own URL
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise _server_error(exc) from None


def _server_error(exc: urllib.error.HTTPError) -> ServerError:
    raw = exc.read().decode("utf-8", "replace")
    try:
        error = json.loads(raw)["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", raw[:200] or str(exc.reason)
    retry = exc.headers.get("Retry-After") if exc.headers else None
    return ServerError(exc.code, code, message, retry_after=float(retry) if retry and retry.isdigit() else None)
