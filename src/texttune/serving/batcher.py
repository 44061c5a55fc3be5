"""Dynamic micro-batching: concurrent requests share model calls.

Each input of each request becomes one :class:`Item` in a bounded queue. One
asyncio task forms batches: it takes the oldest item, then every queued item
with the *same options* and the same model call (a batch runs with one set of
generation options: ``/v1/predict``'s call or the streaming call of the
OpenAI-compatible routes, per adapter), and
waits at most ``max_wait_ms`` from the oldest item's arrival for more to join,
up to ``max_batch_size``. The batch runs on a single model thread, so the event
loop keeps accepting requests, answering health checks and timing out callers
while the model works. Items are sorted by length inside a batch (generation
pads to the longest input, so similar lengths waste less compute) and each
result goes back to its own future, so a caller always gets its own outputs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from texttune.errors import TexttuneError

log = logging.getLogger("texttune.serving")

#: (rows, options) -> outputs, one per row in order; runs on the model thread.
PredictFn = Callable[[list[Any], dict[str, Any]], list[Any]]

#: Most inputs per model call when ``--max-batch-size`` is not given, by device type. On a CPU the
#: cores are busy from about 16 inputs on (a CTranslate2 batch of 32 was no faster than 16,
#: docs/inference.md) and a larger batch only makes the first caller wait for the last. A GPU's
#: decoding step is bound by reading the weights, so up to a few dozen inputs cost about the same
#: time as one: larger batches raise throughput almost for free. 64 is what one request may hold
#: (``--max-inputs-per-request``), and small enough that the padded activations of 64 long inputs
#: stay far below a GPU's memory for the models texttune fine-tunes. MPS keeps the CPU's number (its
#: memory is the CPU's, and nothing was measured there). An explicit value always wins. The GPU
#: number is reasoned, not measured: no GPU was available when it was chosen.
DEFAULT_BATCH_SIZE = {"cpu": 16, "cuda": 64}


def default_batch_size(device: str | None) -> int:
    """The batch size for a model on ``device`` (``"cuda:1"``, ``"cpu"``...; None: the CPU's)."""
    kind = (device or "cpu").split(":", 1)[0]
    return DEFAULT_BATCH_SIZE.get(kind, DEFAULT_BATCH_SIZE["cpu"])


class QueueFull(Exception):
    """The queue cannot take a request's inputs now (the server answers 503)."""


@dataclass(eq=False)
class Item:
    """One input waiting for the model, and where its output goes."""

    row: Any
    size: int  # characters, for sorting by length
    key: tuple[Any, ...]  # the model call and the options, hashable: only equal keys share a batch
    options: dict[str, Any]
    future: asyncio.Future[Any]
    run: PredictFn | None = None  # the model call (None: the batcher's own)
    arrived: float = field(default_factory=time.perf_counter)
    started: float | None = None
    finished: float | None = None
    batch_size: int = 0


@dataclass
class BatchStats:
    """What the batcher reports to the metrics after each batch."""

    size: int
    seconds: float


class MicroBatcher:
    """Queue inputs, run them in batches on one model thread, resolve each input's future."""

    def __init__(self, predict: PredictFn, *, max_batch_size: int, max_wait_ms: float, max_queue: int,
                 on_batch: Callable[[BatchStats], None] | None = None) -> None:
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._pending: deque[Item] = deque()
        self._arrival = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="texttune-model")
        self._task: asyncio.Task[None] | None = None
        self.running = 0  # inputs inside the model right now

    @property
    def depth(self) -> int:
        """Inputs waiting (not yet in the model)."""
        return len(self._pending)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="texttune-batcher")

    async def stop(self) -> None:
        """Finish what is queued and running, then stop (graceful shutdown)."""
        while self._pending or self.running:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    def submit(self, rows: list[Any], sizes: list[int], options: dict[str, Any], *, run: PredictFn | None = None,
               alone: bool = False) -> list[Item]:
        """Queue all inputs of one request, or none of them (QueueFull).

        ``options`` must be hashable values. ``run``: the model call for these inputs (default: the batcher's).
        ``alone``: the request shares its batch with no other request (a seeded sample is then the same
        whatever else is queued).
        """
        if len(self._pending) + len(rows) > self.max_queue:
            raise QueueFull(f"the queue holds {len(self._pending)} inputs (limit {self.max_queue})")
        loop = asyncio.get_running_loop()
        key = (id(run) if run is not None else 0, tuple(sorted(options.items())), object() if alone else None)
        items = [Item(row=r, size=s, key=key, options=options, future=loop.create_future(), run=run)
                 for r, s in zip(rows, sizes)]
        self._pending.extend(items)
        self._arrival.set()
        return items

    def cancel(self, items: list[Item]) -> None:
        """Drop a timed-out request's inputs that have not reached the model yet."""
        dropped = set(map(id, items))
        self._pending = deque(i for i in self._pending if id(i) not in dropped)
        for item in items:
            if not item.future.done():
                item.future.cancel()

    def _take(self, key: tuple[Any, ...], batch: list[Item]) -> None:
        """Move queued items with options ``key`` into ``batch`` (oldest first), up to the size limit."""
        keep: deque[Item] = deque()
        while self._pending:
            item = self._pending.popleft()
            if item.key == key and len(batch) < self.max_batch_size:
                batch.append(item)
            else:
                keep.append(item)
        self._pending = keep

    async def _next_batch(self) -> list[Item]:
        while not self._pending:
            self._arrival.clear()
            await self._arrival.wait()
        first = self._pending.popleft()
        batch = [first]
        deadline = first.arrived + self.max_wait
        while True:
            self._take(first.key, batch)
            remaining = deadline - time.perf_counter()
            if len(batch) >= self.max_batch_size or remaining <= 0:
                return batch
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), timeout=remaining)
            except asyncio.TimeoutError:
                pass

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            batch = [i for i in batch if not i.future.done()]  # timed out while queued
            if not batch:
                continue
            batch.sort(key=lambda i: i.size)
            self.running = len(batch)
            started = time.perf_counter()
            for item in batch:
                item.started, item.batch_size = started, len(batch)
            try:
                outcomes = await loop.run_in_executor(self._executor, self._run, batch)
            finally:
                self.running = 0
            finished = time.perf_counter()
            if self._on_batch is not None:
                self._on_batch(BatchStats(size=len(batch), seconds=finished - started))
            for item, outcome in zip(batch, outcomes):
                item.finished = finished
                if item.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    item.future.set_exception(outcome)
                else:
                    item.future.set_result(outcome)

    def _run(self, batch: list[Item]) -> list[Any]:
        """Model thread: one call for the batch. When it fails, the inputs run one by one so only
        the input at fault fails (a TexttuneError: 422; anything else: 500, its traceback logged),
        and other callers who shared the batch still get their outputs."""
        rows, options = [i.row for i in batch], batch[0].options
        try:
            outputs = (batch[0].run or self._predict)(rows, options)
        except TexttuneError as exc:
            if len(batch) == 1:
                return [exc]
            return [self._run([item])[0] for item in batch]
        except Exception as exc:  # a bug, a broken model or an input that breaks it
            if len(batch) == 1:
                log.exception("prediction failed for one input")
                return [exc]
            log.warning("prediction failed for a batch of %d (%s: %s); running its inputs one by one",
                        len(batch), type(exc).__name__, exc)
            return [self._run([item])[0] for item in batch]
        if len(outputs) != len(rows):
            error = RuntimeError(f"the model returned {len(outputs)} outputs for {len(rows)} inputs")
            return [error] * len(batch)
        return list(outputs)
