"""``--batch-size auto``: the largest power-of-two batch whose training step fits in memory.

The search doubles the batch (start, 2*start, ...) up to a limit; each size runs
one real training step on the run's LONGEST example repeated (collate, to device,
``loss(model, batch)``, ``backward()``, a throwaway AdamW step with lr=0 so the
optimizer state must fit too). The answer is the last size that fit: no later
batch of the run can be wider than what was measured.

Out-of-memory errors are caught (``torch.OutOfMemoryError``, allocator errors
saying so). On the CPU the OS kills the process instead, so the search keeps a
budget: it measures each trial's peak resident memory, extrapolates the next
doubling's need linearly from the last two trials and stops before one that would
need more than ``memory_fraction`` of what is still available. On CUDA the same
budget (``torch.cuda.mem_get_info``) guards in addition to the catch.

Why not Lightning's ``Tuner.scale_batch_size``: it trains real steps on random
dataloader batches, so its answer was never tried on the longest sequences and a
later batch of long examples can still run out of memory; it also changes the
weights and needs a datamodule/``batch_size`` attribute protocol that our
resumable loader (``engine/loader.py``) does not have.

The model is left as found: weights bit-identical, gradients ``None``, each
submodule's train/eval mode and the torch/CUDA/Python/NumPy RNG states restored
(dropout or a masking collator must not shift the run's random stream). Give a
``loss`` that runs as training does (``torch.autocast`` for mixed precision).
"""

from __future__ import annotations

import gc
import logging
import random
import re
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from texttune.errors import ConfigError

log = logging.getLogger("texttune")

_OOM_MESSAGES = ("out of memory", "can't allocate memory", "defaultcpuallocator")
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


@dataclass(frozen=True)
class BatchSizeSearch:
    """The outcome: the chosen size, every trial and why the search stopped."""

    chosen: int
    trials: tuple[Trial, ...]
    stopped_because: str
    longest_tokens: int  # tokens (input, plus a separate target) of the example the trials ran on

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for the run directory)."""
        return {"chosen": self.chosen, "stopped_because": self.stopped_because,
                "longest_tokens": self.longest_tokens, "trials": [asdict(t) for t in self.trials]}


def split_batch(found: int, *, effective: int | None, accumulate: int) -> tuple[int, int]:
    """(per-step batch, accumulation).

    With ``effective``: the largest batch <= ``found`` that divides ``effective``, and
    accumulation = effective // batch, so the optimizer sees exactly the effective
    batch the user asked for. Without it: (found, accumulate).
    """
    if found < 1:
        raise ValueError(f"found batch size must be >= 1, got {found}")
    if effective is None:
        return found, accumulate
    if effective < 1:
        raise ConfigError(f"effective_batch_size must be a positive integer, got {effective}")
    batch = next(b for b in range(min(found, effective), 0, -1) if effective % b == 0)
    return batch, effective // batch


def find_batch_size(*, model: torch.nn.Module, loss: Loss, features: Sequence[dict], collate: Collate,
                    device: torch.device, limit: int, start: int = 1, memory_fraction: float = 0.8,
                    limit_reason: str = "") -> BatchSizeSearch:
    """Try start, 2*start, 4*start, ... <= ``limit`` at the longest example; return the largest that fit.

    ``limit_reason`` only words the stop message ("reached the limit 256 (training rows)").
    Raises :class:`ConfigError` when even ``start`` does not fit.
    """
    if not 1 <= start <= limit:
        raise ValueError(f"need 1 <= start <= limit, got start={start}, limit={limit}")
    if not 0.0 < memory_fraction <= 1.0:
        raise ValueError(f"memory_fraction must be in (0, 1], got {memory_fraction}")
    device = torch.device(device)
    example, tokens = longest_example(features)
    memory = _memory_for(device)
    trials: list[Trial] = []
    chosen, size = 0, start
    with _untouched(model, device):
        model.train()  # dropout on, as in training
        while True:
            if size > limit:
                reason = f"reached the limit {limit}" + (f" ({limit_reason})" if limit_reason else "")
                break
            reason = _over_budget(memory, trials, size, memory_fraction)
            if reason:
                log.info("batch %d: not tried, %s", size, reason)
                break
            trials.append(_trial(model, loss, example, collate, device, size, memory))
            if not trials[-1].fits:
                reason = f"out of memory at {size}" + (f" (largest that fit: {chosen})" if chosen else "")
                break
            chosen, size = size, size * 2
    if not chosen:
        raise ConfigError(
            f"--batch-size auto: even a batch of {start} at the longest training example ({tokens} tokens) does not "
            f"fit in memory on {device} ({trials[-1].error}); lower max_source_length (or the task's max length "
            "options) or use a smaller backbone")
    log.info("batch size auto: %d (%s; longest example %d tokens)", chosen, reason, tokens)
    return BatchSizeSearch(chosen=chosen, trials=tuple(trials), stopped_because=reason, longest_tokens=tokens)



def _lengths(features: Sequence[dict]) -> tuple[list[int], list[int] | None]:
    """Tokens of ``input_ids`` per row, and of ``labels`` when a sequence (a Dataset: via Arrow, lengths only)."""
    if hasattr(features, "with_format") and hasattr(features, "column_names"):
        import pyarrow as pa
        import pyarrow.compute as pc

        columns = ["input_ids"]
        if "labels" in features.column_names:
            kind = features.data.schema.field("labels").type
            if pa.types.is_list(kind) or pa.types.is_large_list(kind):  # not a class id per row
                columns.append("labels")
        found: dict[str, list[int]] = {c: [] for c in columns}
        for table in features.select_columns(columns).with_format("arrow").iter(batch_size=10_000):
            for column in columns:
                found[column] += pc.list_value_length(table[column]).to_pylist()
        return found["input_ids"], found.get("labels")
    inputs = [len(f["input_ids"]) for f in features]
    sequences = all(isinstance(f.get("labels"), (list, tuple, torch.Tensor)) for f in features)
    return inputs, [len(f["labels"]) for f in features] if sequences else None


def longest_example(features: Sequence[dict]) -> tuple[dict, int]:
    """The worst-case example for memory, and its token count.

    With ``labels`` a separate target (seq2seq: some row's labels differ in length
    from its input), a padded batch can reach the longest input AND the longest
    target even when those are different rows: the example is the longest-input
    row with the longest target's labels (count: input + target). Otherwise
    (labels aligned with the input, a class id, or absent): the longest-input row.
    """
    if len(features) == 0:
        raise ValueError("no training features to size a batch with")
    inputs, labels = _lengths(features)
    widest = max(range(len(inputs)), key=inputs.__getitem__)
    example = dict(features[widest])
    if labels is None or all(a == b for a, b in zip(inputs, labels)):
        return example, inputs[widest]
    tallest = max(range(len(labels)), key=labels.__getitem__)
    example["labels"] = list(features[tallest]["labels"])
    return example, inputs[widest] + labels[tallest]



def _is_oom(exc: BaseException) -> bool:
    said_so = isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MESSAGES)
    return isinstance(exc, torch.OutOfMemoryError) or said_so


def _short(exc: BaseException) -> str:
    first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    return first if len(first) <= 160 else first[:157] + "..."


def _trial(model: torch.nn.Module, loss: Loss, example: dict, collate: Collate, device: torch.device,
           size: int, memory: _Memory) -> Trial:
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
        optimizer = torch.optim.AdamW(params, lr=0.0, weight_decay=0.0)
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
        log.info("batch %d: fits (%.2f s%s)", size, seconds, f", +{_human(growth)}" if growth is not None else "")
    else:
        log.info("batch %d: out of memory (%s)", size, error)
    return Trial(batch_size=size, fits=error is None, seconds=round(seconds, 4), peak_bytes=peak, error=error)


@contextmanager
def _untouched(model: torch.nn.Module, device: torch.device) -> Iterator[None]:
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



def _human(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if abs(n) >= 2**30 else f"{n / 2**20:.0f} MiB"


def _over_budget(memory: _Memory, trials: list[Trial], size: int, fraction: float) -> str:
    """Why ``size`` must not be tried (empty when it may).

    The need is linear in the batch size, extrapolated from the last two trials
    (fixed: gradients, optimizer state, one-time allocations; per row: activations).
    After one trial the split is unknown: what it freed again is scaled with the
    batch (an upper bound), what it kept (e.g. loaded kernels) is not.
    """
    fitted = [(t.batch_size, memory.growth(t.peak_bytes)) for t in trials if t.fits]
    room = memory.room() if fitted and fitted[-1][1] is not None else None
    if room is None:
        return ""
    held, available = room
    budget = held + int(fraction * available)
    b2, g2 = fitted[-1]
    assert g2 is not None
    g1 = fitted[-2][1] if len(fitted) >= 2 else None
    if g1 is not None:
        need = g2 + max(0.0, (g2 - g1) / (b2 - fitted[-2][0])) * (size - b2)
    else:
        need = held + max(0, g2 - held) * size / b2
    if need <= budget:
        return ""
    return f"memory budget: {size} would need ~{_human(int(need))} of {_human(budget)} available"


class _Memory:
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


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class _CpuMemory(_Memory):
    """Peak RSS growth per trial, against MemAvailable.

    The high-water mark is /proc/self/status VmHWM because it can be reset before
    each trial (``_reset_peak_rss``). ``resource.getrusage().ru_maxrss`` cannot be
    reset: an earlier, higher peak (e.g. loading the model) would hide the first
    trials' growth. It is only the fallback off Linux, where there is no budget.
    """

    def __init__(self) -> None:
        self.start = _kb_field(_STATUS, "VmRSS") or self._hwm()

    @staticmethod
    def _hwm() -> int:
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        return _kb_field(_STATUS, "VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale

    def before_trial(self) -> None:
        _reset_peak_rss()

    def peak_bytes(self) -> int | None:
        return max(0, self._hwm() - self.start)

    def growth(self, peak: int | None) -> int | None:
        return peak

    def room(self) -> tuple[int, int] | None:
        available, rss = mem_available_bytes(), _kb_field(_STATUS, "VmRSS")
        return None if available is None or rss is None else (max(0, rss - self.start), available)


class _CudaMemory(_Memory):
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


def _memory_for(device: torch.device) -> _Memory:
    if device.type == "cuda":
        return _CudaMemory(device)
    return _CpuMemory() if device.type == "cpu" else _Memory()
