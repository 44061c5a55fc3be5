"""Prometheus metrics of one server, in its own registry (no global state, one per app)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from texttune.serving.batcher import BatchStats

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    """Requests by path and status, latency, batch sizes and durations, queue depth, model state."""

    def __init__(self, *, known_paths: set[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.known_paths = known_paths  # anything else is counted as "other": fuzzers cannot blow up label sets
        r = self.registry
        self.requests = Counter("texttune_requests", "HTTP requests by path and status code.", ["path", "status"], registry=r)
        self.latency = Histogram("texttune_request_duration_seconds", "HTTP request latency.", ["path"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("texttune_batch_size", "Inputs per model call.", buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("texttune_batch_duration_seconds", "Duration of one model call.",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.inputs = Counter("texttune_inputs", "Inputs predicted.", registry=r)
        self.generated_tokens = Counter("texttune_generated_tokens", "Tokens generated for the OpenAI-compatible routes.",
                                        registry=r)
        self.finished = Counter("texttune_completions", "Completions of the OpenAI-compatible routes by finish reason "
                                "(cancelled: the caller left mid-generation).", ["reason"], registry=r)
        self.queue_depth = Gauge("texttune_queue_depth", "Inputs waiting for the model.", registry=r)
        self.in_flight = Gauge("texttune_requests_in_flight", "HTTP requests being handled.", registry=r)
        self.ready = Gauge("texttune_model_ready", "1 once the model is loaded.", registry=r)

    def observe_batch(self, stats: BatchStats) -> None:
        self.batch_size.observe(stats.size)
        self.batch_seconds.observe(stats.seconds)
        self.inputs.inc(stats.size)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """ASGI middleware counting every response, including those other middleware send (413, 401)."""

        async def wrapped(scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            path = scope.get("path", "")
            label = path if path in self.known_paths else "other"
            status = {"code": 500}
            started = perf_counter()

            async def send_and_record(message: Any) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            self.in_flight.inc()
            try:
                await app(scope, receive, send_and_record)
            finally:
                self.in_flight.dec()
                self.requests.labels(path=label, status=str(status["code"])).inc()
                self.latency.labels(path=label).observe(perf_counter() - started)

        return wrapped
