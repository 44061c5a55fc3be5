"""A training DataLoader that resumes mid-epoch with the same data order.

The shuffled order of epoch ``e`` is ``randperm(n, seed + e)``: a pure function of
the seed and the epoch, not of how many times the process was restarted. The
loader counts the batches it has handed out; Lightning stores that count in each
checkpoint (through ``state_dict``) and gives it back on ``--resume``, and the
next epoch iterator skips those batches' indices (indices only, no data is read),
so a resumed run sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


class EpochShuffleSampler(Sampler[int]):
    """Seeded per-epoch permutation with an optional number of leading indices to skip."""

    def __init__(self, size: int, *, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0
        self.skip = 0  # indices to skip at the start of the next iteration (resume)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch."""
        if epoch != self.epoch:
            self.skip = 0
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        start, self.skip = self.skip, 0
        return iter(order[start:])

    def __len__(self) -> int:
        return self.size


class ResumableLoader(DataLoader):
    """DataLoader + the ``state_dict``/``load_state_dict`` pair Lightning looks for."""

    def __init__(self, dataset: Any, *, batch_size: int, seed: int, collate_fn: Callable[[list[Any]], Any], num_workers: int = 0) -> None:
        self.order = EpochShuffleSampler(len(dataset), seed=seed)
        super().__init__(dataset, batch_size=batch_size, sampler=self.order, collate_fn=collate_fn, num_workers=num_workers)
        self.batches_done = 0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        self.batches_done = self.order.skip // self.batch_size if self.order.skip else 0
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
        self.order.skip = self.batches_done * int(self.batch_size or 1)
