"""A training DataLoader that groups examples by length and resumes mid-epoch with the same order.

The order of epoch ``e`` is a pure function of ``(seed, e)``, not of how many
times the process was restarted. The loader counts the batches it has handed
out; Lightning stores that count in each checkpoint (through ``state_dict``) and
gives it back on ``--resume``, and the next epoch iterator skips those batches'
indices (indices only, no data is read), so a resumed run sees exactly the
batches an uninterrupted run would.

Length grouping ("sortish" sampling): a batch is padded to its longest example,
so a random batch of summaries spends much of its compute on padding. The epoch's
random permutation is cut into mega-batches of ``50 x batch_size`` examples, each
mega-batch is sorted by length and cut into batches, and the batches are shuffled
again. Every example is still seen once per epoch in a seeded random batch order;
only the company it keeps is chosen by length. The batch holding the longest
example goes first, so an out-of-memory shows at step 1, not hours in.

Several processes (DDP, FSDP, DeepSpeed): every process computes the same global
order (same seed), cut into global batches of ``batch_size x world_size``
examples, and process ``r`` takes the ``r``-th slice of each. One step of N
processes with per-device batch b therefore sees exactly the examples one process
with batch N x b sees; global batch per optimizer step = per-device batch x
devices x nodes x accumulation. A last global batch too small to give every
process at least one example is dropped, so all processes take the same number
of steps (a process with no batch would leave the others waiting in the
gradient all-reduce).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

MEGA_BATCHES = 50  # batches per sorted group: larger pads less, smaller keeps batches more random


class EpochShuffleSampler(Sampler[int]):
    """Seeded per-epoch order (length-grouped when lengths are given) with a resumable skip.

    ``batch_size`` is per process; with ``world_size`` > 1 the order is built for
    global batches and this process yields its slice of each.
    """

    def __init__(self, size: int, *, seed: int, batch_size: int = 1, lengths: Sequence[int] | None = None,
                 rank: int = 0, world_size: int = 1) -> None:
        if lengths is not None and len(lengths) != size:
            raise ValueError(f"{len(lengths)} lengths for {size} examples")
        self.size = size
        self.seed = seed
        self.batch_size = batch_size
        self.lengths = lengths
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.skip = 0  # global batches to skip at the start of the next iteration (resume)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch."""
        if epoch != self.epoch:
            self.skip = 0
        self.epoch = epoch

    def epoch_order(self) -> list[int]:
        """Every index once, in this epoch's global order."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        global_batch = self.batch_size * self.world_size
        if self.lengths is None or global_batch <= 1:
            return order
        return _group_by_length(order, self.lengths, global_batch, generator)

    def global_batches(self) -> list[list[int]]:
        """This epoch's global batches; the short last one only when every process gets an example of it."""
        order = self.epoch_order()
        step = self.batch_size * self.world_size
        batches = [order[start : start + step] for start in range(0, len(order), step)]
        if batches and len(batches[-1]) < self.world_size:
            batches.pop()
        return batches

    def __iter__(self) -> Iterator[int]:
        start, self.skip = self.skip, 0
        for batch in self.global_batches()[start:]:
            yield from _slice(batch, self.rank, self.world_size)

    def __len__(self) -> int:
        if self.world_size == 1:
            return self.size
        return sum(len(_slice(b, self.rank, self.world_size)) for b in self.global_batches())


def _slice(batch: list[int], rank: int, world_size: int) -> list[int]:
    """Process ``rank``'s share of a global batch: equal parts, a short batch split as evenly as it goes."""
    if world_size == 1:
        return batch
    size, extra = divmod(len(batch), world_size)
    start = rank * size + min(rank, extra)
    return batch[start : start + size + (rank < extra)]


def _group_by_length(order: list[int], lengths: Sequence[int], batch_size: int, generator: torch.Generator) -> list[int]:
    """Re-arrange a random order so consecutive ``batch_size`` indices have similar lengths."""
    mega = batch_size * MEGA_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        group = sorted(order[start : start + mega], key=lambda i: lengths[i], reverse=True)
        batches.extend(group[b : b + batch_size] for b in range(0, len(group), batch_size))
    # A short batch can only come last (the DataLoader cuts the flat order every batch_size).
    tail = [batches.pop()] if len(batches[-1]) < batch_size else []
    shuffled = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()] + tail
    longest = max(range(len(shuffled) - len(tail)), key=lambda b: lengths[shuffled[b][0]], default=None)
    if longest is not None:
        shuffled[0], shuffled[longest] = shuffled[longest], shuffled[0]
    return [i for batch in shuffled for i in batch]


def feature_lengths(features: Any) -> list[int]:
    """Tokens per training example: input tokens plus target tokens (when targets are sequences).

    Read from the Arrow columns without materialising the token lists in Python.
    """
    import pyarrow.compute as pc

    table = features.data if hasattr(features, "data") else None
    if table is None or "input_ids" not in features.column_names:
        return [len(f["input_ids"]) for f in features]
    lengths = pc.list_value_length(table.column("input_ids")).to_numpy(zero_copy_only=False)
    if "labels" in features.column_names and hasattr(features.features["labels"], "feature"):  # a sequence of labels
        lengths = lengths + pc.list_value_length(table.column("labels")).to_numpy(zero_copy_only=False)
    if getattr(features, "_indices", None) is not None:  # a select()ed view: map back to its rows
        lengths = lengths[features._indices.column(0).to_numpy()]
    return [int(n) for n in lengths]


def length_sorted(lengths: Sequence[int]) -> list[int]:
    """Indices from the longest example to the shortest (ties in index order): the evaluation order."""
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


class ResumableLoader(DataLoader):
    """DataLoader + the ``state_dict``/``load_state_dict`` pair Lightning looks for.

    The state counts global batches, so every process of a distributed run resumes
    at the same place from the one checkpoint rank 0 wrote.
    """

    def __init__(self, dataset: Any, *, batch_size: int, seed: int, collate_fn: Callable[[list[Any]], Any],
                 num_workers: int = 0, lengths: Sequence[int] | None = None, rank: int = 0, world_size: int = 1) -> None:
        self.order = EpochShuffleSampler(len(dataset), seed=seed, batch_size=batch_size, lengths=lengths,
                                         rank=rank, world_size=world_size)
        super().__init__(dataset, batch_size=batch_size, sampler=self.order, collate_fn=collate_fn, num_workers=num_workers)
        self.batches_done = 0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        self.batches_done = self.order.skip
        # Worker seeds come from this generator, not the global one: starting an epoch's iterator (again,
        # after a resume) must not shift the global random stream that dropout and sampling draw from.
        self.generator = torch.Generator().manual_seed(self.order.seed + self.order.epoch)
        for batch in super().__iter__():
            self.batches_done += 1
            yield batch

    def __len__(self) -> int:
        return super().__len__()

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.order.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.order.epoch = int(state["epoch"])
        self.batches_done = int(state["batches_done"])
        self.order.skip = self.batches_done
