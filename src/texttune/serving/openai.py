"""The OpenAI-compatible routes: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``.

The client people already have is the ``openai`` package and what is built on it. These routes
sit beside ``/v1/predict`` under the same API key, body limit, queue and metrics, and go through
the same micro-batcher: an OpenAI request's inputs queue as items whose model call is
:meth:`Predictor.complete`, so concurrent requests with the same options (and adapter) share a
batch and each still gets its own tokens. With ``stream: true`` the answer is server-sent events:
one ``chat.completion.chunk`` (or ``text_completion``) per group of new tokens, as the model thread
hands them over, then ``data: [DONE]``. A client that disconnects ends its row at the next token.

Errors have OpenAI's shape (``{"error": {"message", "type", "param", "code"}}``, with texttune's
``status`` beside them: ``guards.error_body``); invalid requests are 400s, as OpenAI's are.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import Request

from texttune.errors import TexttuneError
from texttune.inference.streaming import Finished, RowSink
from texttune.serving.batcher import QueueFull
from texttune.serving.guards import error_body, error_response
from texttune.serving.openai_schema import ChatCompletionRequest, CompletionRequest, _Sampling
from texttune.serving.predictor import StreamRow, input_size, unencodable

#: The routes of this module (validation errors on them are 400s with ``param``, as OpenAI answers).
OPENAI_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/models")


def add_openai_routes(app: FastAPI, state: Any, guard: Callable[..., None], not_ready: Callable[[], JSONResponse]) -> None:
    """Add the routes to ``app``; ``state`` is the app's ServerState, ``guard`` its API-key dependency."""
    errors = {c: {"description": d} for c, d in {400: "Invalid request (OpenAI's error shape)", 401: "Missing or wrong API "
              "key", 404: "Unknown model", 503: "Queue full or model not loaded", 504: "Timed out"}.items()}

    def refusal(model: str) -> JSONResponse | None:
        """503 while the model loads, 404 for a name not served; None when the request may go on."""
        if state.predictor is None or state.batcher is None:
            return not_ready()
        return _check_model(state, model)

    @app.get("/v1/models", dependencies=[Depends(guard)], responses={c: errors[c] for c in (401, 503)},
             summary="OpenAI: the served model and its adapters.")
    async def models() -> Any:
        if state.predictor is None:
            return not_ready()
        created = int(state.started)
        return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "texttune"}
                                           for name in state.predictor.models()]}

    @app.post("/v1/chat/completions", dependencies=[Depends(guard)], responses=errors,
              summary="OpenAI: the next assistant message of a conversation (decoder-only models).")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        arrived = time.perf_counter()
        if (refused := refusal(body.model)) is not None:
            return refused
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages]
        try:
            value = state.predictor.chat_input(messages)
        except TexttuneError as exc:
            return error_response(400, "invalid_request", str(exc), param="messages")
        return await _complete(state, request, body, [value], chat=True, arrived=arrived)

    @app.post("/v1/completions", dependencies=[Depends(guard)], responses=errors,
              summary="OpenAI: complete each prompt (the prompt is the task's input; every generating task).")
    async def completions(body: CompletionRequest, request: Request) -> Any:
        arrived = time.perf_counter()
        if (refused := refusal(body.model)) is not None:
            return refused
        prompts = body.prompts()
        if not prompts or len(prompts) > state.config.max_inputs_per_request:
            return error_response(400, "invalid_request", f"prompt: send 1 to {state.config.max_inputs_per_request} "
                                  "prompts", param="prompt")
        if state.predictor.task == "chat":
            return error_response(400, "invalid_request", "a chat model takes conversations: use /v1/chat/completions",
                                  param="prompt")
        return await _complete(state, request, body, list(prompts), chat=False, arrived=arrived)


def counting(complete: Callable[[list[Any], dict[str, Any]], list[Any]], metrics: Any) -> Callable[..., list[Any]]:
    """``Predictor.complete`` that also counts generated tokens and finish reasons (on the model thread: the
    counts of a row whose caller left are still seen)."""
    def run(rows: list[Any], options: dict[str, Any]) -> list[Any]:
        results = complete(rows, options)
        for result in results:
            if isinstance(result, Finished):
                metrics.generated_tokens.inc(result.completion_tokens)
                metrics.finished.labels(result.finish_reason).inc()
        return results

    return run


def _check_model(state: Any, name: str) -> JSONResponse | None:
    names = state.predictor.models()
    if name in names:
        return None
    return error_response(404, "model_not_found", f"model {name!r} is not served here; choose one of: {', '.join(names)} "
                          "(GET /v1/models)", param="model")


def _options(state: Any, body: _Sampling) -> dict[str, Any]:
    """The request's options for the batcher (hashable values); TexttuneError names a bad one."""
    generation = body.generation()
    limit = state.config.max_new_tokens_limit
    if generation.get("max_new_tokens", 0) > limit:
        raise _BadRequest(f"max_tokens {generation['max_new_tokens']} is over this server's limit of {limit}", "max_tokens")
    try:
        generation = state.predictor.check_options(generation)
    except TexttuneError as exc:
        raise _BadRequest(str(exc), None) from None
    return {**generation, "model": body.model, "stop": body.stops(), "seed": body.seed}


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.param = param


async def _complete(state: Any, request: Request, body: _Sampling, values: list[Any], *, chat: bool,
                    arrived: float) -> Any:
    """Check the inputs, queue them, and answer whole or as a stream."""
    config, predictor, batcher = state.config, state.predictor, state.batcher
    param = "messages" if chat else "prompt"
    sizes = [input_size(value) for value in values]
    for index, (value, size) in enumerate(zip(values, sizes)):
        if size > config.max_input_chars:
            return error_response(413, "input_too_long", f"{param} {index} has {size} characters; the limit "
                                  f"is {config.max_input_chars}", param=param)
        if (problem := unencodable(value)) is not None:
            return error_response(400, "invalid_request", problem, param=param)
        try:
            predictor.check_input(value, index)
        except TexttuneError as exc:
            return error_response(400, "invalid_request", str(exc), param=param)
    try:
        options = _options(state, body)
    except _BadRequest as exc:
        return error_response(400, "invalid_request", str(exc), param=exc.param)
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    gone = threading.Event()
    rows = [StreamRow(input=value, sink=RowSink(emit=_emitter(loop, pieces, i) if body.stream else None,
                                                 cancelled=gone.is_set))
            for i, value in enumerate(values)]
    try:
        items = batcher.submit(rows, sizes, options, run=state.complete,
                               alone=body.seed is not None)
    except QueueFull as exc:
        return error_response(503, "queue_full", f"the server is busy: {exc}; retry shortly", headers={"Retry-After": "1"})
    reply = _Reply(chat=chat, model=body.model)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(_events(reply, items, pieces, gone, batcher, include_usage=include_usage),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    remaining = config.request_timeout - (time.perf_counter() - arrived)
    try:
        results = await asyncio.wait_for(asyncio.gather(*(i.future for i in items)), timeout=max(remaining, 0.001))
    except asyncio.TimeoutError:
        gone.set()
        batcher.cancel(items)
        return error_response(504, "timeout", f"the request took longer than {config.request_timeout:g} s")
    except TexttuneError as exc:
        return error_response(400, "invalid_request", str(exc))
    return reply.whole(results)


def _emitter(loop: asyncio.AbstractEventLoop, pieces: asyncio.Queue[tuple[int, str]], index: int) -> Callable[[str], None]:
    """A sink for the model thread: each piece goes to the request's queue on the event loop."""
    return lambda text: loop.call_soon_threadsafe(pieces.put_nowait, (index, text))


async def _events(reply: _Reply, items: list[Any], pieces: asyncio.Queue[tuple[int, str]], gone: threading.Event,
                  batcher: Any, *, include_usage: bool) -> AsyncIterator[str]:
    """The server-sent events of one streamed request; a client gone (this generator cancelled) ends its rows."""
    done = asyncio.gather(*(i.future for i in items), return_exceptions=True)
    getter: asyncio.Future[tuple[int, str]] | None = None
    try:
        if reply.chat:
            yield reply.event(0, {"role": "assistant", "content": ""}, None)
        while True:  # the pieces are queued before the rows' results are set, so none is left behind
            if not pieces.empty():
                yield reply.piece(*pieces.get_nowait())
                continue
            if done.done():
                break
            getter = asyncio.ensure_future(pieces.get())
            await asyncio.wait({getter, done}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield reply.piece(*getter.result())
            else:
                getter.cancel()
        results = done.result()
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            message = str(failed) if isinstance(failed, TexttuneError) else "generation failed; see the server's log"
            yield f"data: {json.dumps(error_body(500, 'generation_failed', message))}\n\n"
            return
        for index, result in enumerate(results):
            yield reply.event(index, {} if reply.chat else "", result.finish_reason)
        if include_usage:
            yield reply.usage_event(results)
        yield "data: [DONE]\n\n"
    finally:
        if getter is not None and not getter.done():
            getter.cancel()
        if not done.done():  # the client left (or the server stops): its rows end at their next token
            gone.set()
            batcher.cancel(items)
            done.cancel()


class _Reply:
    """OpenAI's response objects for one request: whole, or as stream chunks sharing one id."""

    def __init__(self, *, chat: bool, model: str) -> None:
        self.chat, self.model = chat, model
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())
        self.object = "chat.completion" if chat else "text_completion"

    def whole(self, results: list[Finished]) -> dict[str, Any]:
        choices = [
            {"index": i, "message": {"role": "assistant", "content": r.text}, "finish_reason": r.finish_reason,
             "logprobs": None} if self.chat else
            {"index": i, "text": r.text, "finish_reason": r.finish_reason, "logprobs": None}
            for i, r in enumerate(results)
        ]
        return {"id": self.id, "object": self.object, "created": self.created, "model": self.model, "choices": choices,
                "usage": usage(results)}

    def piece(self, index: int, text: str) -> str:
        return self.event(index, {"content": text} if self.chat else text, None)

    def event(self, index: int, delta: Any, finish_reason: str | None) -> str:
        choice = ({"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None} if self.chat else
                  {"index": index, "text": delta, "finish_reason": finish_reason, "logprobs": None})
        chunk = {"id": self.id, "object": f"{self.object}.chunk" if self.chat else self.object, "created": self.created,
                 "model": self.model, "choices": [choice]}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    def usage_event(self, results: list[Finished]) -> str:
        chunk = {"id": self.id, "object": f"{self.object}.chunk" if self.chat else self.object, "created": self.created,
                 "model": self.model, "choices": [], "usage": usage(results)}
        return f"data: {json.dumps(chunk)}\n\n"


def usage(results: list[Finished]) -> dict[str, int]:
    """OpenAI's token counts: the prompts as the model saw them (prompt layout included), the tokens generated."""
    prompt = sum(r.prompt_tokens for r in results)
    completion = sum(r.completion_tokens for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
