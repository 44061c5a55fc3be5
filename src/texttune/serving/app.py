"""The HTTP app: FastAPI routes over a :class:`~texttune.serving.predictor.Predictor` and a micro-batcher.

Why FastAPI + uvicorn and not LitServe: LitServe's batching runs the model in
worker processes fed through multiprocessing queues; we need per-request
option groups in a batch, a bounded queue that answers 503, per-request
timeouts that drop queued work, and one loaded model shared with the health
and metadata routes. That is ~150 lines of asyncio (``batcher.py``) on the
standard stack, and the OpenAPI schema comes from the same pydantic models.

No ``from __future__ import annotations`` here: FastAPI reads the route
signatures at runtime and the request model is built per server.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from texttune._version import __version__
from texttune.config import ServeConfig
from texttune.errors import TexttuneError
from texttune.serving.batcher import MicroBatcher, QueueFull, default_batch_size
from texttune.serving.guards import ApiKey, body_limit, error_response
from texttune.serving.metrics import ServerMetrics
from texttune.serving.openai import OPENAI_PATHS, add_openai_routes, counting
from texttune.serving.predictor import Predictor, input_size, unencodable
from texttune.serving.schema import ERROR_RESPONSES, Health, PredictResponse, Timing, request_model

log = logging.getLogger("texttune.serving")

PATHS = {"/", "/health", "/ready", "/metrics", "/v1/model", "/v1/predict", "/openapi.json", "/docs", *OPENAI_PATHS}


class ServerState:
    """The loaded model (or why not yet), the batcher and the metrics of one app."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.predictor: Predictor | None = None
        self.status = "loading"
        self.detail: str | None = None
        self.batcher: MicroBatcher | None = None
        self.complete: Callable[..., list[Any]] | None = None  # the OpenAI routes' model call (predictor.complete, counted)
        self.metrics = ServerMetrics(known_paths=PATHS)
        self.loaded = threading.Event()
        self.started = time.time()  # the models' "created" in /v1/models


def _load_in_background(state: ServerState, load: Callable[[], Predictor], loop: asyncio.AbstractEventLoop,
                        on_failure: Callable[[str], None] | None) -> None:
    """Load the model off the event loop so /health answers (and /ready says 503) meanwhile."""
    def work() -> None:
        try:
            predictor = load()
        except Exception as exc:  # noqa: BLE001 - reported, then the server stops
            state.status = "failed"
            state.detail = str(exc) if isinstance(exc, TexttuneError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, TexttuneError):
                log.exception("loading the model failed")
            if on_failure is not None:
                loop.call_soon_threadsafe(on_failure, state.detail)
            state.loaded.set()
            return
        loop.call_soon_threadsafe(_ready, state, predictor)

    threading.Thread(target=work, name="texttune-load", daemon=True).start()


def _ready(state: ServerState, predictor: Predictor) -> None:
    config = state.config
    device = (predictor.info().get("backend") or {}).get("device")  # where the model runs: sizes the default batch
    state.batcher = MicroBatcher(predictor.predict, max_batch_size=config.max_batch_size or default_batch_size(device),
                                 max_wait_ms=config.max_wait_ms, max_queue=config.max_queue,
                                 on_batch=state.metrics.observe_batch)
    state.batcher.start()
    state.complete = counting(lambda rows, options: predictor.complete(rows, options), state.metrics)  # looked up per call
    state.metrics.queue_depth.set_function(lambda: state.batcher.depth if state.batcher else 0)
    state.predictor, state.status = predictor, "ok"
    state.metrics.ready.set(1)
    state.loaded.set()
    log.info("model loaded: %s", predictor.task)


def _validation_message(exc: RequestValidationError, request: Request, config: ServeConfig) -> tuple[int, str, str]:
    """One readable message for pydantic's errors (status, code, message)."""
    errors = exc.errors()
    invalid_json = [e for e in errors if e.get("type") == "json_invalid"]
    if invalid_json:
        detail = invalid_json[0].get("ctx", {}).get("error", "")
        return 400, "invalid_json", f"the body is not valid JSON{': ' + str(detail) if detail else ''}"
    content_type = request.headers.get("content-type", "")
    if any(tuple(e.get("loc", ())) == ("body",) for e in errors) and content_type and "json" not in content_type.lower():
        return 415, "unsupported_media_type", f"the body must be JSON sent with 'Content-Type: application/json', not {content_type!r}"
    parts: dict[str, str] = {}
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        if loc[:1] == ["inputs"]:  # a union of shapes: say which shapes are allowed, once
            what = "is required" if e.get("type") == "missing" else "must be"
            parts["inputs"] = (f"inputs: {what} a text, an object of texts, or a list of 1 to "
                               f"{config.max_inputs_per_request} of those")
        else:
            where = ".".join(loc) or "body"
            message = ("an unknown or unsupported field (refused, not ignored)" if e.get("type") == "extra_forbidden"
                       else e.get("msg", "invalid"))
            parts.setdefault(where, f"{where}: {message}")
    return 422, "invalid_request", "; ".join(parts.values())


def create_app(*, config: ServeConfig, load: Callable[[], Predictor], api_key: str | None = None,
               on_load_failure: Callable[[str], None] | None = None) -> FastAPI:
    """The server's ASGI app. ``load`` builds the predictor (called once, on a background thread)."""
    state = ServerState(config)
    keys = ApiKey(api_key)
    PredictRequest = request_model(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        _load_in_background(state, load, asyncio.get_running_loop(), on_load_failure)
        yield
        if state.batcher is not None:  # uvicorn has let in-flight requests finish; drain what is left
            await state.batcher.stop()

    app = FastAPI(title="texttune", version=_version(), lifespan=lifespan,
                  description="Predictions from a model fine-tuned with texttune. Errors: {\"error\": {status, code, message}}.")
    app.state.texttune = state
    bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer KEY (when the server has --api-key-env)")
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: KEY (alternative to Bearer)")

    def authorized(request: Request, _b: HTTPAuthorizationCredentials | None = Depends(bearer),
                   _h: str | None = Depends(header)) -> None:
        if not keys.allows(request.headers):
            raise _Unauthorized()

    def open_access() -> None:
        """Without an API key nothing is checked, and the schema declares no security scheme (it would lie)."""

    guard = authorized if keys.enabled else open_access

    @app.exception_handler(_Unauthorized)
    async def unauthorized(request: Request, exc: _Unauthorized) -> JSONResponse:
        return error_response(401, "unauthorized", "missing or wrong API key (send 'Authorization: Bearer KEY' or 'X-API-Key: KEY')",
                              headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = _validation_message(exc, request, config)
        if request.url.path in OPENAI_PATHS and status == 422:  # OpenAI answers a bad field with 400 and its name
            return error_response(400, code, message, param=_first_field(exc))
        return error_response(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not decode the body at all (not UTF-8, nested too deeply)
            return error_response(400, "invalid_json", f"the body is not valid JSON ({exc.detail})")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        return error_response(500, "internal_error", "the server failed on this request; see its log")

    def not_ready() -> JSONResponse:
        message = "the model is still loading" if state.status == "loading" else f"the model failed to load: {state.detail}"
        return error_response(503, "model_not_ready", message, headers={"Retry-After": "5"})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def playground() -> HTMLResponse:
        page = resources.files("texttune.serving").joinpath("playground.html").read_text(encoding="utf-8")
        return HTMLResponse(page)

    @app.get("/health", response_model=Health, summary="Liveness: the process answers.")
    async def health() -> Health:
        return Health(status="ok")

    @app.get("/ready", response_model=Health, responses={503: {"model": Health}}, summary="Readiness: the model is loaded.")
    async def ready() -> Any:
        if state.status == "ok":
            return Health(status="ok")
        return JSONResponse(Health(status=state.status, detail=state.detail).model_dump(), status_code=503,
                            headers={"Retry-After": "5"})

    @app.get("/metrics", dependencies=[Depends(guard)], response_class=Response,
             responses={401: ERROR_RESPONSES[401]}, summary="Prometheus metrics (text format).")
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/model", dependencies=[Depends(guard)], responses={c: ERROR_RESPONSES[c] for c in (401, 503)},
             summary="The served model: task, backbone, inputs, options, labels, generation defaults.")
    async def model_info() -> Any:
        if state.predictor is None:
            return not_ready()
        return {**state.predictor.info(), "limits": _limits(config, state.batcher)}

    @app.post("/v1/predict", dependencies=[Depends(guard)], response_model=PredictResponse,
              responses={c: ERROR_RESPONSES[c] for c in (400, 401, 413, 415, 422, 503, 504)},
              summary="Predict for one input or a list; outputs come back in input order.")
    async def predict(body: PredictRequest) -> Any:  # type: ignore[valid-type]
        arrived = time.perf_counter()
        if state.predictor is None or state.batcher is None:
            return not_ready()
        return await _predict(state, body, arrived)

    add_openai_routes(app, state, guard, not_ready)

    # The last added is the outermost: metrics see every response, the 413s of the body limit included,
    # and an oversize body is refused before FastAPI parses any JSON.
    app.add_middleware(body_limit, max_bytes=config.max_body_bytes)
    app.add_middleware(state.metrics.middleware)
    return app


class _Unauthorized(Exception):
    pass


def _first_field(exc: RequestValidationError) -> str | None:
    """The request field the first validation error is about (``messages.0.role``), OpenAI's ``param``."""
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        if loc:
            return ".".join(loc)
    return None


def _limits(config: ServeConfig, batcher: MicroBatcher | None) -> dict[str, Any]:
    """The server's limits as ``GET /v1/model`` reports them; ``max_batch_size`` as in force (its default depends on the device)."""
    names = ("max_batch_size", "max_wait_ms", "max_queue", "request_timeout", "max_body_bytes", "max_input_chars",
             "max_inputs_per_request", "max_new_tokens_limit", "max_beams_limit")
    limits = {n: getattr(config, n) for n in names}
    if batcher is not None:
        limits["max_batch_size"] = batcher.max_batch_size
    return limits


def _version() -> str:
    return __version__


async def _predict(state: ServerState, body: Any, arrived: float) -> Any:
    config, predictor, batcher = state.config, state.predictor, state.batcher
    assert predictor is not None and batcher is not None  # checked by the route
    inputs = body.inputs if isinstance(body.inputs, list) else [body.inputs]
    sizes = [input_size(x) for x in inputs]
    for index, size in enumerate(sizes):
        if size > config.max_input_chars:
            return error_response(413, "input_too_long", f"input {index} has {size} characters; the limit is {config.max_input_chars}")
    for index, value in enumerate(inputs):
        if (problem := unencodable(value)) is not None:
            return error_response(422, "invalid_input", f"input {index}: {problem}")
    options = body.model_dump(exclude={"inputs"}, exclude_none=True)
    try:
        options = predictor.check_options(options)
        for index, value in enumerate(inputs):
            predictor.check_input(value, index)
    except TexttuneError as exc:
        return error_response(422, "invalid_input", str(exc))
    try:
        items = batcher.submit(inputs, sizes, options)
    except QueueFull as exc:
        return error_response(503, "queue_full", f"the server is busy: {exc}; retry shortly", headers={"Retry-After": "1"})
    remaining = config.request_timeout - (time.perf_counter() - arrived)
    try:
        outputs = await asyncio.wait_for(asyncio.gather(*(i.future for i in items)), timeout=max(remaining, 0.001))
    except asyncio.TimeoutError:
        batcher.cancel(items)
        return error_response(504, "timeout", f"the request took longer than {config.request_timeout:g} s")
    except TexttuneError as exc:
        return error_response(422, "invalid_input", str(exc))
    done = time.perf_counter()
    timing = Timing(
        total_ms=round((done - arrived) * 1000, 2),
        queue_ms=round(max((i.started or done) - i.arrived for i in items) * 1000, 2),
        inference_ms=round(max((i.finished or done) - (i.started or done) for i in items) * 1000, 2),
        batch_sizes=[i.batch_size for i in items],
    )
    return PredictResponse(task=predictor.task, outputs=list(outputs), timing=timing)
