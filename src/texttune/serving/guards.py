"""What stands between the network and the model: the body-size limit, the API key, error bodies.

Both guards answer before any JSON is parsed. The body limit buffers at most
``max_body_bytes + 1`` bytes (a declared Content-Length over the limit is refused
without reading anything), so a huge or endless body cannot exhaust memory.

A refused body is read to its end and discarded before the 413 goes out (a
lingering close, bounded by ``DRAIN_MAX_BYTES`` and ``DRAIN_MAX_S``): a server
that closes while the client is still sending makes the client's next write
fail, and ``requests`` or ``urllib`` then report "connection reset" or "broken
pipe" instead of the 413 JSON. Past either bound the 413 is sent at once.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: How much of a refused body is read and thrown away so the client can finish sending and read the 413
#: (nginx's lingering close); a longer body, or one still arriving after ``DRAIN_MAX_S``, is cut off.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_MAX_S = 10.0


#: OpenAI's error ``type`` for each status, so the ``openai`` package and the tools built on it read our errors as theirs.
ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error", 500: "server_error",
               503: "server_error", 504: "timeout_error"}


def error_body(status: int, code: str, message: str, *, param: str | None = None) -> dict[str, Any]:
    """The one error shape of the API: ``{"error": {"status", "code", "message", "type", "param"}}``.

    texttune's own fields (status, code, message) and OpenAI's (message, type, param, code) in one object:
    every route, the OpenAI-compatible ones included, answers errors the same way.
    """
    kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"status": status, "code": code, "message": message, "type": kind, "param": param}}


def error_response(status: int, code: str, message: str, *, headers: dict[str, str] | None = None,
                   param: str | None = None) -> JSONResponse:
    """An error answer in the shape of :func:`error_body`."""
    return JSONResponse(error_body(status, code, message, param=param), status_code=status, headers=headers)


async def _drain(receive: Receive, *, already: int = 0) -> None:
    """Read and discard the rest of a request body, within ``DRAIN_MAX_BYTES`` and ``DRAIN_MAX_S``."""
    deadline, size = time.monotonic() + DRAIN_MAX_S, already
    while size <= DRAIN_MAX_BYTES:
        try:
            message = await asyncio.wait_for(receive(), timeout=max(deadline - time.monotonic(), 0.0))
        except asyncio.TimeoutError:
            return
        if message["type"] != "http.request":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps(error_body(status, code, message)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def body_limit(app: ASGIApp, *, max_bytes: int) -> ASGIApp:
    """Refuse bodies over ``max_bytes`` with 413; otherwise hand the app the buffered body."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in {"GET", "HEAD", "OPTIONS"}:
            await app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_error(send, 400, "bad_content_length", "the Content-Length header is not a number")
                return
            if int(declared) > max_bytes:
                if int(declared) <= DRAIN_MAX_BYTES:
                    await _drain(receive)
                await _send_error(send, 413, "body_too_large", f"the body has {int(declared)} bytes; the limit is {max_bytes}")
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_bytes:
                if message.get("more_body", False):
                    await _drain(receive, already=size)
                await _send_error(send, 413, "body_too_large", f"the body has more than {max_bytes} bytes (the limit)")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return guarded


class ApiKey:
    """Checks ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` in constant time."""

    def __init__(self, key: str | None) -> None:
        self._key = key.encode() if key else None

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def allows(self, headers: Any) -> bool:
        """Whether either header carries the key: the schema offers the two schemes as alternatives."""
        if self._key is None:
            return True
        offered = [headers.get("x-api-key")]
        auth = headers.get("authorization")
        if auth is not None:
            scheme, _, token = auth.partition(" ")
            offered.append(token.strip() if scheme.lower() == "bearer" else None)
        matches = [hmac.compare_digest(value.encode("utf-8", "surrogateescape"), self._key)
                   for value in offered if value is not None]  # both compared: the time does not say which matched
        return any(matches)
