"""Training batches from a ``--streaming`` source: read, tokenized and batched a block at a time.

The stream (``datasets.IterableDataset``) is shuffled with a seeded buffer
(``--shuffle-buffer``, reshuffled every epoch), read in blocks of
``BLOCK_BATCHES`` global batches' worth of rows, tokenized one global batch of
rows at a time with the task's own ``encode`` (so every task streams, including those whose
rows become several features, like QA windows or language-model chunks). A
block's features are grouped by length and cut into global batches exactly like
the map-style loader does (``engine/loader.py``); each process takes its slice.

Every process reads the same stream in the same order and tokenizes the whole
block, rather than a ``split_dataset_by_node`` share: a share's length depends
on how the files divide between the processes, and a process whose share ran out
first would leave the others waiting in the gradient all-reduce. Reading is
cheap next to a training step; equal step counts are not optional.

The stream never ends for Lightning: when the files are exhausted the next epoch
starts, and ``--max-steps`` stops training. The state saved in checkpoints is
(epoch, blocks done, batches done in the block): a resumed run skips the rows of
the finished blocks without tokenizing them, re-tokenizes the current block and
continues with exactly the batch an uninterrupted run would have taken next.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import torch

from texttune.engine.loader import _group_by_length, _slice
from texttune.errors import DataError

#: Global batches per tokenized block: enough to group by length, few enough to hold in memory.
BLOCK_BATCHES = 32
#: Batches Lightning fetches ahead from an iterable without a length (to know whether the next one is the last):
#: the checkpointed position leaves them out, or a resumed run would skip them.
PREFETCHED = 1


class StreamLoader:
    """An endless, resumable iterable of collated batches for ``trainer.fit``."""

    def __init__(self, rows: Any, *, encode: Callable[[Any], tuple[Any, dict[str, Any]]], collate: Callable[[list[Any]], Any],
                 batch_size: int, seed: int, buffer: int, group_by_length: bool = True, rank: int = 0, world_size: int = 1) -> None:
        self.rows = rows
        self.encode = encode
        self.collate = collate
        self.batch_size = batch_size
        self.seed = seed
        self.buffer = buffer
        self.group_by_length = group_by_length
        self.rank = rank
        self.world_size = world_size
        self.block_rows = batch_size * world_size * BLOCK_BATCHES
        self.epoch = 0
        self.blocks_done = 0
        self.batches_done = 0  # in the current block

    def _epoch_rows(self) -> Iterator[dict[str, Any]]:
        rows = self.rows.shuffle(seed=self.seed, buffer_size=self.buffer)
        if self.blocks_done:
            rows = rows.skip(self.blocks_done * self.block_rows)  # read, not tokenized
        rows.set_epoch(self.epoch)
        return iter(rows)

    def _read_block(self, rows: Iterator[dict[str, Any]]) -> Any:
        """The next block's features (None at the end of the stream).

        Rows are tokenized one global batch's worth at a time, so raw text never piles
        up: memory holds the shuffle buffer, one piece of rows and the block's token ids.
        """
        from datasets import Dataset, concatenate_datasets

        parts, read, piece = [], 0, self.batch_size * self.world_size
        while read < self.block_rows and (chunk := list(itertools.islice(rows, min(piece, self.block_rows - read)))):
            with _quiet_datasets():
                parts.append(self.encode(Dataset.from_list(chunk))[0])
            read += len(chunk)
        return concatenate_datasets(parts) if parts else None

    def _global_batches(self, features: Any) -> list[list[int]]:
        """The block's global batches (lists of feature indices), grouped by length when asked."""
        size = self.batch_size * self.world_size
        generator = torch.Generator().manual_seed(self.seed + 1_000_003 * self.epoch + self.blocks_done)
        order = torch.randperm(len(features), generator=generator).tolist()
        if self.group_by_length and size > 1 and len(order) > size:
            lengths = [len(ids) for ids in features["input_ids"]]
            order = _group_by_length(order, lengths, size, generator)
        batches = [order[start : start + size] for start in range(0, len(order), size)]
        if batches and len(batches[-1]) < self.world_size:  # too small to give every process an example
            batches.pop()
        return batches

    def _position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "blocks_done": self.blocks_done, "batches_done": self.batches_done}

    def __iter__(self) -> Iterator[Any]:
        self._handed_out = collections.deque([self._position()], maxlen=PREFETCHED + 1)
        while True:
            read_any = False
            rows = self._epoch_rows()
            while (features := self._read_block(rows)) is not None:
                read_any = True
                batches = self._global_batches(features)
                for batch in batches[self.batches_done :]:
                    self.batches_done += 1
                    self._handed_out.append(self._position())
                    yield self.collate([features[i] for i in _slice(batch, self.rank, self.world_size)])
                self.blocks_done += 1
                self.batches_done = 0
            if not read_any and self.blocks_done == 0:
                raise DataError("the training stream has no rows")
            self.epoch, self.blocks_done, self.batches_done = self.epoch + 1, 0, 0

    def state_dict(self) -> dict[str, int]:
        """Where the batches *trained on* end: Lightning has already fetched PREFETCHED more."""
        handed_out = getattr(self, "_handed_out", None)
        return dict(handed_out[0]) if handed_out else self._position()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch = int(state["epoch"])
        self.blocks_done = int(state["blocks_done"])
        self.batches_done = int(state["batches_done"])


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No "Map: 100%" progress bar for every block."""
    import datasets

    was = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was:
            datasets.enable_progress_bars()
