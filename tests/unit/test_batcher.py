"""The micro-batcher: every caller gets its own outputs, batches respect size and options, limits hold."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

import pytest

from texttune.errors import DataError
from texttune.serving.batcher import MicroBatcher, QueueFull


class Recorder:
    """A predict function that echoes its rows with the options, and remembers every call."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None) -> None:
        self.calls: list[tuple[list[Any], dict[str, Any]]] = []
        self.delay, self.fail_on = delay, fail_on
        self.threads: set[str] = set()

    def __call__(self, rows: list[Any], options: dict[str, Any]) -> list[Any]:
        self.calls.append((list(rows), dict(options)))
        self.threads.add(threading.current_thread().name)
        if self.fail_on is not None and self.fail_on in rows:
            raise DataError(f"cannot use {self.fail_on!r}")
        time.sleep(self.delay)
        return [f"{row}#{options.get('n', 0)}" for row in rows]


async def _request(batcher: MicroBatcher, rows: list[str], options: dict[str, Any]) -> list[Any]:
    items = batcher.submit(rows, [len(r) for r in rows], options)
    return list(await asyncio.gather(*(i.future for i in items)))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_many_concurrent_callers_each_get_their_own_outputs_in_order() -> None:
    predict = Recorder(delay=0.001)

    async def main() -> list[tuple[list[str], dict[str, Any], list[Any]]]:
        batcher = MicroBatcher(predict, max_batch_size=8, max_wait_ms=2, max_queue=10_000)
        batcher.start()
        rng = random.Random(0)
        requests = []
        for r in range(300):
            rows = [f"r{r}-i{i}-" + "x" * rng.randint(0, 40) for i in range(rng.randint(1, 5))]
            requests.append((rows, {"n": rng.randint(0, 2)}))

        async def one(rows: list[str], options: dict[str, Any]) -> tuple[list[str], dict[str, Any], list[Any]]:
            await asyncio.sleep(rng.random() * 0.05)
            return rows, options, await _request(batcher, rows, options)

        results = await asyncio.gather(*(one(rows, opts) for rows, opts in requests))
        await batcher.stop()
        return results

    for rows, options, outputs in run(main()):
        assert outputs == [f"{row}#{options['n']}" for row in rows]
    sizes = [len(rows) for rows, _ in predict.calls]
    assert max(sizes) <= 8
    assert max(sizes) > 1, "concurrent requests should have shared batches"
    assert len(predict.threads) == 1 and predict.threads.pop().startswith("texttune-model")


def test_a_batch_never_mixes_options_and_is_sorted_by_length() -> None:
    predict = Recorder()

    async def main() -> None:
        batcher = MicroBatcher(predict, max_batch_size=16, max_wait_ms=50, max_queue=100)
        batcher.start()
        await asyncio.gather(
            _request(batcher, ["ccc", "a"], {"n": 1}),
            _request(batcher, ["bb"], {"n": 2}),
            _request(batcher, ["dddd", "ee"], {"n": 1}),
        )
        await batcher.stop()

    run(main())
    by_options = {opts["n"]: rows for rows, opts in predict.calls}
    assert by_options == {1: ["a", "ee", "ccc", "dddd"], 2: ["bb"]}


def test_batching_off_runs_one_input_per_call() -> None:
    predict = Recorder()

    async def main() -> None:
        batcher = MicroBatcher(predict, max_batch_size=1, max_wait_ms=10, max_queue=100)
        batcher.start()
        await asyncio.gather(*(_request(batcher, [f"x{i}"], {}) for i in range(10)))
        await batcher.stop()

    run(main())
    assert [len(rows) for rows, _ in predict.calls] == [1] * 10


def test_a_full_queue_refuses_the_whole_request() -> None:
    async def main() -> None:
        batcher = MicroBatcher(Recorder(), max_batch_size=4, max_wait_ms=10, max_queue=5)  # not started: nothing drains
        batcher.submit(["a", "b", "c"], [1, 1, 1], {})
        with pytest.raises(QueueFull, match="limit 5"):
            batcher.submit(["d", "e", "f"], [1, 1, 1], {})
        assert batcher.depth == 3  # nothing of the refused request was queued

    run(main())


def test_cancelled_items_never_reach_the_model() -> None:
    predict = Recorder(delay=0.2)

    async def main() -> None:
        batcher = MicroBatcher(predict, max_batch_size=1, max_wait_ms=0, max_queue=100)
        batcher.start()
        first = asyncio.ensure_future(_request(batcher, ["busy"], {}))
        await asyncio.sleep(0.05)  # "busy" is in the model now
        items = batcher.submit(["dropped"], [7], {})
        batcher.cancel(items)
        assert await first == ["busy#0"]
        await batcher.stop()

    run(main())
    assert [rows for rows, _ in predict.calls] == [["busy"]]


def test_a_bad_input_fails_alone_not_its_batch() -> None:
    predict = Recorder(fail_on="bad")

    async def main() -> tuple[Any, Any]:
        batcher = MicroBatcher(predict, max_batch_size=8, max_wait_ms=50, max_queue=100)
        batcher.start()
        good, bad = await asyncio.gather(_request(batcher, ["good"], {}), _request(batcher, ["bad"], {}),
                                         return_exceptions=True)
        await batcher.stop()
        return good, bad

    good, bad = run(main())
    assert good == ["good#0"]
    assert isinstance(bad, DataError) and "bad" in str(bad)


def test_an_input_that_breaks_the_model_fails_alone_not_its_batch() -> None:
    """Not a refusal but a crash (e.g. NaN probabilities): the culprit's caller gets the error, the others their outputs."""

    def predict(rows: list[Any], options: dict[str, Any]) -> list[Any]:
        if "poison" in rows:
            raise RuntimeError("probability tensor contains either inf, nan or element < 0")
        return [row.upper() for row in rows]

    async def main() -> list[Any]:
        batcher = MicroBatcher(predict, max_batch_size=8, max_wait_ms=50, max_queue=100)
        batcher.start()
        results = await asyncio.gather(_request(batcher, ["a"], {}), _request(batcher, ["poison"], {}),
                                       _request(batcher, ["b", "c"], {}), return_exceptions=True)
        await batcher.stop()
        return results

    first, poisoned, rest = run(main())
    assert first == ["A"] and rest == ["B", "C"]
    assert isinstance(poisoned, RuntimeError) and "nan" in str(poisoned)


def test_stop_finishes_queued_work_first() -> None:
    predict = Recorder(delay=0.05)

    async def main() -> list[Any]:
        batcher = MicroBatcher(predict, max_batch_size=2, max_wait_ms=0, max_queue=100)
        batcher.start()
        pending = [asyncio.ensure_future(_request(batcher, [f"q{i}"], {})) for i in range(6)]
        await asyncio.sleep(0)
        await batcher.stop()
        return [p.result() for p in pending]

    assert run(main()) == [[f"q{i}#0"] for i in range(6)]
