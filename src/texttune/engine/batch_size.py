"""``--batch-size auto``: the largest power-of-two batch whose training step fits in memory, applied to the run.

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

:func:`resolve_batch_size` is the recipe's step: it runs the search on the device
training will use (rank 0 of a distributed run; the others read its choice), moving
the model there once and leaving it there, turns the answer into the run's
batch size and gradient accumulation, and writes ``batch_size.json`` so the choice
is visible later and a resumed run keeps it. One trial (a training step at one size,
its memory counters) is ``engine/batch_probe.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from texttune.config import RunConfig
from texttune.engine.batch_probe import Collate, Loss, Memory, Trial, human, memory_for, try_batch, untouched
from texttune.engine.distributed import wait_for_file
from texttune.engine.placement import move_model
from texttune.errors import ConfigError
from texttune.files import read_json, write_json
from texttune.runs import RunDir

log = logging.getLogger("texttune")

#: The search never goes above this many examples per step (and never above the training rows).
AUTO_BATCH_CAP = 1024


def resolve_batch_size(config: RunConfig, *, task: Any, model: Any, features: Any, run: RunDir, resuming: bool,
                       device: torch.device, loss: Loss | None = None, primary: bool = True) -> RunConfig:
    """The config with a concrete batch size (and accumulation) when it asked for ``auto``.

    Rank 0 (``primary``) searches on ``device``, the device training runs on: the model is moved
    there and stays (training, and the baselines before it, use it there; no round trip).
    ``loss`` (default ``task.loss``) should run as a training step does (the precision's autocast).
    The other processes wait for rank 0's choice and read it.
    """
    t = config.train
    if t.batch_size != "auto":
        return config
    if not primary:
        wait_for_file(run.batch_search, what="the --batch-size auto choice")
        resuming = True  # take the recorded choice
    if resuming and run.batch_search.exists():  # a resumed run must keep its batch size: the data order depends on it
        chosen = read_json(run.batch_search)
        log.info("batch size %d x %d accumulation, as chosen when this run started", chosen["batch_size"], chosen["accumulate"])
        return replace(config, train=replace(t, batch_size=chosen["batch_size"], accumulate_grad_batches=chosen["accumulate"]))
    move_model(model, device, purpose="the --batch-size auto search")
    search = find_batch_size(model=model, loss=loss or task.loss, features=features, collate=task.collate, device=device,
                             limit=min(len(features), AUTO_BATCH_CAP),
                             limit_reason="training rows" if len(features) <= AUTO_BATCH_CAP else "texttune's cap")
    batch, accumulate = split_batch(search.chosen, effective=t.effective_batch_size, accumulate=t.accumulate_grad_batches)
    write_json(run.batch_search, {**search.to_json(), "batch_size": batch, "accumulate": accumulate,
                                  "effective_batch_size": batch * accumulate, "device": str(device)})
    log.info("batch size auto: %d fits (%s); training with %d x %d accumulation = %d per optimizer step",
             search.chosen, search.stopped_because, batch, accumulate, batch * accumulate)
    return replace(config, train=replace(t, batch_size=batch, accumulate_grad_batches=accumulate))


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
    memory = memory_for(device)
    trials: list[Trial] = []
    chosen, size = 0, start
    with untouched(model, device):
        model.train()  # dropout on, as in training
        while True:
            if size > limit:
                reason = f"reached the limit {limit}" + (f" ({limit_reason})" if limit_reason else "")
                break
            reason = _over_budget(memory, trials, size, memory_fraction)
            if reason:
                log.info("batch %d: not tried, %s", size, reason)
                break
            trials.append(try_batch(model, loss, example, collate, device, size, memory))
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


def _over_budget(memory: Memory, trials: list[Trial], size: int, fraction: float) -> str:
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
    return f"memory budget: {size} would need ~{human(int(need))} of {human(budget)} available"
