"""What texttune adds to Lightning's strategies when several processes train one model.

Lightning launches the processes (``--devices``, ``--num-nodes``, torchrun, SLURM),
wraps the model (DDP, FSDP, DeepSpeed) and averages gradients. Three things it
cannot know about are here:

* **Who writes the run directory.** Every process runs the same recipe; only
  global rank 0 writes files. The others read what rank 0 wrote (the tokenized
  features, the batch-size choice) and wait for it when they started first
  (torchrun and SLURM start all processes at once; Lightning's own launcher
  starts the others only when rank 0 reaches ``trainer.fit``).
* **Evaluation by generation.** The validation rows are cut into one contiguous
  shard per process, all shards padded to the same length with a repeated row
  (its output is discarded) so every process makes the same number of
  ``generate`` calls; the per-row records are gathered in rank order, the padding
  dropped, and the metrics computed once, on rank 0, from all rows, then
  broadcast, so the monitored value is identical on every process. Under
  sharded strategies (FSDP, DeepSpeed ZeRO-3) a forward pass is a collective:
  ``generate`` runs with ``synced_gpus=True`` so a process that finished its
  sequences keeps stepping until all have, and none waits forever.
* **Validation loss** is summed and counted on each process over disjoint rows
  (:class:`ShardSampler`, no padded duplicates under DDP) and reduced exactly.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Sampler

from texttune.errors import ConfigError, TexttuneError

log = logging.getLogger("texttune")

#: Strategies that shard parameters: a forward pass needs every process.
SHARDED_STRATEGIES = ("fsdp", "deepspeed_stage_3")

#: How long a process other than rank 0 waits for a file rank 0 writes (tokenizing a large corpus takes a while).
WAIT_SECONDS = float(os.environ.get("TEXTTUNE_RANK_WAIT_S", 6 * 3600))


def is_sharded(strategy: str) -> bool:
    """Whether ``--strategy`` shards parameters (generation must then run in lockstep)."""
    return strategy.startswith(SHARDED_STRATEGIES)


def lightning_strategy(name: str, blocks: TransformerBlocks | None = None) -> Any:
    """What ``Trainer(strategy=...)`` gets: the name, or for FSDP a strategy that wraps each transformer block.

    Without a wrap policy FSDP makes the whole model one unit, gathered in full for
    every forward pass; wrapping the blocks transformers lists in
    ``_no_split_modules`` gathers one block at a time (``blocks``, filled in once the
    model is loaded). ``use_orig_params`` lets frozen and trainable parameters (LoRA)
    share a unit.
    """
    if name.startswith(("fsdp", "deepspeed")):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--strategy {name} needs CUDA GPUs (Lightning runs FSDP and DeepSpeed on GPUs only); "
                              "on CPUs use --strategy ddp")
    if not name.startswith("fsdp") or blocks is None:
        return name
    from lightning.pytorch.strategies import FSDPStrategy

    return FSDPStrategy(auto_wrap_policy=blocks, cpu_offload=name == "fsdp_cpu_offload", use_orig_params=True)


class TransformerBlocks:
    """FSDP's auto-wrap policy: wrap each transformer block of the model (the classes of its ``_no_split_modules``).

    The trainer, and so the strategy, exists before the model is loaded (the training
    device decides the attention implementation the model is loaded with), so the
    recipe names the model afterwards (:meth:`use`); FSDP consults the policy only
    when ``trainer.fit`` wraps the model. A callable with torch's
    ``(module, recurse, nonwrapped_numel)`` protocol, like ``transformer_auto_wrap_policy``;
    with no blocks found the model stays one unit (as with no policy).
    """

    def __init__(self) -> None:
        self.classes: tuple[type, ...] = ()

    def use(self, model: Any) -> None:
        """Wrap the blocks of ``model``: its submodules whose class transformers lists in ``_no_split_modules``."""
        names = set(getattr(model, "_no_split_modules", None) or ())
        self.classes = tuple({type(m) for m in model.modules() if type(m).__name__ in names})

    def __call__(self, module: Any, recurse: bool, nonwrapped_numel: int) -> bool:
        return True if recurse else isinstance(module, self.classes)  # look inside everything; wrap the blocks


def launch_rank() -> int:
    """This process's global rank as the launcher set it, before any process group exists.

    The environment variables Lightning's cluster environments read: torchrun and
    Kubeflow set ``RANK``; SLURM ``SLURM_PROCID`` (when Lightning recognises the job
    as a SLURM job); Lightning's own launcher ``NODE_RANK`` and ``LOCAL_RANK``. Rank 0
    is the process where all of them are 0 (or unset).
    """
    from lightning.fabric.plugins.environments import SLURMEnvironment

    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if SLURMEnvironment.detect():
        return int(os.environ.get("SLURM_PROCID", 0))
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", 0)))
    local = int(os.environ.get("LOCAL_RANK", 0))
    return local if node == 0 else node * 1_000_000 + local  # any node but the first: never rank 0


def wait_for_file(path: Path, *, what: str, timeout: float = WAIT_SECONDS) -> None:
    """Block until rank 0 has written ``path``; a clear error when it never comes."""
    started = time.monotonic()
    while not path.exists():
        if time.monotonic() - started > timeout:
            raise TexttuneError(f"waited {timeout:.0f} s for rank 0 to write {what} ({path}); the run directory must be "
                                "on a file system every node shares, and rank 0 must not have failed (see its log)")
        time.sleep(0.5)


def world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, or (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_indices(n: int, *, rank: int, world_size: int) -> tuple[list[int], int]:
    """This rank's contiguous block of ``range(n)``, padded to ``ceil(n / world_size)`` with repeats.

    Returns (indices, how many of them are real). Concatenating every rank's real
    indices in rank order gives ``range(n)`` back.
    """
    size = -(-n // world_size)
    start = min(rank * size, n)
    real = list(range(start, min(start + size, n)))
    filler = real[-1] if real else 0
    return real + [filler] * (size - len(real)), len(real)


@contextlib.contextmanager
def synced_generation(model: Any, enabled: bool) -> Iterator[None]:
    """``model.generate`` with ``synced_gpus=True`` for the duration (sharded strategies only)."""
    if not enabled or not hasattr(model, "generate"):
        yield
        return
    model.generate = functools.partial(type(model).generate, model, synced_gpus=True)
    try:
        yield
    finally:
        del model.generate  # the class's method again


def evaluate_everywhere(task: Any, model: Any, rows: Any, *, generation: Any,
                        sharded: bool) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """``task.evaluate`` on ``rows`` split across the processes; the same (metrics, records) on every rank.

    Tasks whose records carry their own references (``score_records``) are
    sharded; others, and those that say ``evaluates_whole`` (perplexity over chunks of
    concatenated text), are evaluated whole by every process, and rank 0's metrics are broadcast.
    """
    import torch.distributed as dist

    rank, world_size = world()
    if world_size == 1:
        return task.evaluate(model, rows, generation=generation)
    score = None if getattr(task, "evaluates_whole", False) else getattr(task, "score_records", None)
    with synced_generation(model, sharded):
        if score is None:
            metrics, records = task.evaluate(model, rows, generation=generation)
            return _broadcast(metrics), records
        indices, real = shard_indices(len(rows), rank=rank, world_size=world_size)
        _, shard_records = task.evaluate(model, rows.select(indices), generation=generation)
    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, shard_records[:real])
    records = [record for part in gathered for record in part]  # rank order = row order
    if "id" not in rows.column_names and records and "id" in records[0]:  # row numbers, counted per shard
        records = [{**record, "id": i} for i, record in enumerate(records)]
    if len(records) != len(rows):
        raise TexttuneError(f"distributed evaluation gathered {len(records)} records for {len(rows)} rows")
    metrics = score(records) if rank == 0 else None
    return _broadcast(metrics), records


def unshard(trainer: Any, *, rebuild: Callable[[], Any]) -> Any:
    """After training with parameters sharded over several processes: the full weights, unwrapped, on rank 0.

    The model rank 0 holds after FSDP / ZeRO-3 training is a shard: a forward pass on
    rank 0 alone (the final evaluation) would wait forever for the others. Every
    process takes part in gathering the full state dict (Lightning's
    ``lightning_module_state_dict``, a collective); rank 0 loads it into a freshly
    built, unwrapped module (``rebuild()``) and returns it; the others return None.
    Not exercised by this repository's tests: Lightning runs these strategies on
    CUDA GPUs only.
    """
    state = trainer.strategy.lightning_module_state_dict()
    if not trainer.is_global_zero:
        return None
    module = rebuild()
    module.load_state_dict(state)
    return module


def _broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class ShardSampler(Sampler[int]):
    """Validation rows ``rank, rank + world_size, ...``: disjoint, in order, no padded duplicates.

    ``pad`` (sharded strategies) repeats the last row so every process runs the
    same number of forward passes; the repeat's loss is weighted 0 by the module
    only when it fills a batch on its own, so at most one row per process counts twice.
    """

    def __init__(self, size: int, *, rank: int, world_size: int, pad: bool = False, order: Sequence[int] | None = None) -> None:
        # ``order``: the rows in the order to visit them (e.g. by length); each process takes every world_size-th.
        self.indices = list(order if order is not None else range(size))[rank::world_size]
        if pad:
            longest = -(-size // world_size)
            self.indices += [self.indices[-1] if self.indices else 0] * (longest - len(self.indices))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
