"""One candidate batch size, tried: a real training step at that size, its time and peak memory.

The building block of the ``--batch-size auto`` search (``engine/batch_size.py``).
:func:`try_batch` runs one training step on ``size`` copies of an example
(collate, to device, ``loss(model, batch)``, ``backward()``, a throwaway AdamW step
with lr=0 so the optimizer state must fit too) and releases everything it
allocated. Out-of-memory errors are caught (``torch.OutOfMemoryError``, allocator
errors saying so) and reported as a trial that did not fit; any other error is
raised. :func:`untouched` restores what a trial may change (RNG states, modes,
gradients).

The :class:`Memory` counters measure each trial: on the CPU the peak resident
memory (``VmHWM``, reset before each trial) against ``MemAvailable``, on CUDA
torch's peak allocated bytes against free device memory; elsewhere nothing.
"""

from __future__ import annotations

import gc
import logging
import random
import re
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from texttune.engine.optimizer import adamw

log = logging.getLogger("texttune")

# cuBLAS reports a failed workspace allocation as CUBLAS_STATUS_ALLOC_FAILED, not as torch's OutOfMemoryError.
_OOM_MESSAGES = ("out of memory", "can't allocate memory", "defaultcpuallocator", "cublas_status_alloc_failed")
_STATUS = "/proc/self/status"

Loss = Callable[[torch.nn.Module, dict], torch.Tensor]
Collate = Callable[[list[dict]], dict]


@dataclass(frozen=True)
class Trial:
    """One tried batch size."""

    batch_size: int
    fits: bool
    seconds: float  # wall time of collate + transfer + forward + backward + optimizer step
    peak_bytes: int | None  # CUDA: torch.cuda.max_memory_allocated; CPU: peak RSS growth over the search start
    error: str | None  # short reason when it did not fit


def _is_oom(exc: BaseException) -> bool:
    said_so = isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MESSAGES)
    return isinstance(exc, torch.OutOfMemoryError) or said_so


def _short(exc: BaseException) -> str:
    first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    return first if len(first) <= 160 else first[:157] + "..."


def try_batch(model: torch.nn.Module, loss: Loss, example: dict, collate: Collate, device: torch.device,
              size: int, memory: Memory) -> Trial:
    """One training step at ``size``; everything it allocated is released before returning."""
    memory.before_trial()
    began = time.perf_counter()
    error: str | None = None
    batch = value = optimizer = None  # all released below, whatever happens
    try:
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v
                 for k, v in collate([dict(example) for _ in range(size)]).items()}
        value = loss(model, batch)
        value.backward()
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:  # lr=0 keeps the weights only while every update is finite (0 * inf = nan)
            if p.grad is not None:
                torch.nan_to_num_(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
        optimizer = adamw(params, lr=0.0, weight_decay=0.0)  # AdamW as a full-precision run steps it (engine/optimizer.py)
        optimizer.step()
        memory.synchronize()
    except Exception as exc:  # noqa: BLE001 - only out-of-memory is swallowed
        if not _is_oom(exc):
            raise
        error = _short(exc)  # no reference to the exception is kept: its traceback holds the tensors
    seconds = time.perf_counter() - began
    peak = memory.peak_bytes()
    del batch, value, optimizer
    model.zero_grad(set_to_none=True)
    memory.release()
    growth = memory.growth(peak)
    if error is None:
        log.info("batch %d: fits (%.2f s%s)", size, seconds, f", +{human(growth)}" if growth is not None else "")
    else:
        log.info("batch %d: out of memory (%s)", size, error)
    return Trial(batch_size=size, fits=error is None, seconds=round(seconds, 4), peak_bytes=peak, error=error)


@contextmanager
def untouched(model: torch.nn.Module, device: torch.device) -> Iterator[None]:
    """Restore RNG states, each submodule's mode and cleared gradients, whatever happens inside."""
    modes = [(m, m.training) for m in model.modules()]
    cpu_rng, py_rng = torch.get_rng_state(), random.getstate()
    cuda_rng = torch.cuda.get_rng_state_all() if device.type == "cuda" or torch.cuda.is_initialized() else None
    numpy = sys.modules.get("numpy")
    np_rng = numpy.random.get_state() if numpy is not None else None
    try:
        yield
    finally:
        model.zero_grad(set_to_none=True)
        for module, training in modes:
            module.training = training
        torch.set_rng_state(cpu_rng)
        random.setstate(py_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        if numpy is not None:
            numpy.random.set_state(np_rng)


def human(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if abs(n) >= 2**30 else f"{n / 2**20:.0f} MiB"


class Memory:
    """A device's memory counters; this base knows none (e.g. mps), so only caught errors stop there.

    ``before_trial`` resets the peak; ``peak_bytes`` is what ``Trial.peak_bytes``
    records; ``growth(peak)`` is that peak as bytes over the search start;
    ``room()`` is (bytes held now over the start, bytes still available) or None.
    """

    def before_trial(self) -> None:
        pass

    def peak_bytes(self) -> int | None:
        return None

    def growth(self, peak: int | None) -> int | None:
        return None

    def room(self) -> tuple[int, int] | None:
        return None

    def synchronize(self) -> None:  # wait for queued device work, so times and peaks are complete
        pass

    def release(self) -> None:
        gc.collect()


def _kb_field(path: str, field: str) -> int | None:
    """A ``kB`` field of a /proc file (VmHWM, VmRSS, MemAvailable) in bytes; None off Linux."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def mem_available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where there is none, e.g. macOS)."""
    return _kb_field("/proc/meminfo", "MemAvailable")


def peak_rss_bytes() -> int:
    """This process's peak resident memory in bytes: VmHWM (Linux; reset by :func:`reset_peak_rss`), else
    ``getrusage``'s ru_maxrss (the lifetime peak)."""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return _kb_field(_STATUS, "VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class _CpuMemory(Memory):
    """Peak RSS growth per trial, against MemAvailable.

    The high-water mark is /proc/self/status VmHWM because it can be reset before
    each trial (``reset_peak_rss``). ``resource.getrusage().ru_maxrss`` cannot be
    reset: an earlier, higher peak (e.g. loading the model) would hide the first
    trials' growth. It is only the fallback off Linux, where there is no budget.
    """

    def __init__(self) -> None:
        self.start = _kb_field(_STATUS, "VmRSS") or peak_rss_bytes()

    def before_trial(self) -> None:
        reset_peak_rss()

    def peak_bytes(self) -> int | None:
        return max(0, peak_rss_bytes() - self.start)

    def growth(self, peak: int | None) -> int | None:
        return peak

    def room(self) -> tuple[int, int] | None:
        available, rss = mem_available_bytes(), _kb_field(_STATUS, "VmRSS")
        return None if available is None or rss is None else (max(0, rss - self.start), available)


class _CudaMemory(Memory):
    """Peak allocated bytes per trial (torch's counters) against free device memory."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        torch.cuda.synchronize(device)
        self.start = torch.cuda.memory_allocated(device)

    def before_trial(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)

    def peak_bytes(self) -> int | None:
        return int(torch.cuda.max_memory_allocated(self.device))

    def growth(self, peak: int | None) -> int | None:
        return None if peak is None else max(0, peak - self.start)

    def room(self) -> tuple[int, int] | None:
        free, _total = torch.cuda.mem_get_info(self.device)
        allocated = torch.cuda.memory_allocated(self.device)
        cached = torch.cuda.memory_reserved(self.device) - allocated  # reusable without asking the driver
        return max(0, allocated - self.start), free + cached

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)

    def release(self) -> None:
        gc.collect()
        torch.cuda.empty_cache()


def memory_for(device: torch.device) -> Memory:
    if device.type == "cuda":
        return _CudaMemory(device)
    return _CpuMemory() if device.type == "cpu" else Memory()
