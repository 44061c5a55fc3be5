"""``--packing``: whether a run trains on packed rows (tasks/packing.py), and the loader's collate that packs.

Packing changes where examples sit, not what is trained: the same examples in the same
batches and steps, the same loss. So it is a pure speed choice, made per run:

- a task packs only if it can (``packing_capacity()``: chat, causal-lm, the text-to-text
  tasks on a decoder-only backbone); ``--packing`` or ``--no-packing`` elsewhere is refused;
- unset, it is on only where it was measured faster: see :data:`FASTER_WITH`, and batches that are not
  length-grouped.

The choice and its reason go into environment.json (``runtime.packing``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from texttune.errors import ConfigError
from texttune.tasks.packing import PackedCollate

#: Attention implementations with which packing is the default. FlashAttention 2 runs packed rows with its
#: variable-length kernel and no mask at all (not measured here: no GPU). SDPA and eager need a block-diagonal
#: mask; on CPU (benchmarks/packing_speed.py, SmolLM2-135M, docs/speed.md) packed rows were 0.94-1.00x
#: texttune's length-grouped batches, whose padding is 1-2%, and 1.05x (chat) and 1.32x (Debian summaries)
#: batches in random order (17-37% padding): so with SDPA or eager packing is the default only under
#: ``--no-group-by-length``.
FASTER_WITH = ("flash_attention_2",)


@dataclass(frozen=True)
class PackingChoice:
    enabled: bool
    reason: str
    capacity: int | None  # tokens a packed row holds

    def record(self) -> dict[str, Any]:
        return asdict(self)


def choose_packing(task: Any, *, requested: bool | None, attention: str | None, grouped: bool) -> PackingChoice:
    """Pack or not, and why. ``task`` is bound (the capacity depends on the backbone); ``attention`` is the
    implementation the model trains with; ``grouped``: --group-by-length."""
    capacity = task.packing_capacity() if hasattr(task, "packing_capacity") else None
    if capacity is None:
        if requested is not None:
            # Which tasks pack is each task's to say (packing_capacity()), so the message names no list.
            raise ConfigError(f"option 'packing' does not apply to {task.name} on this backbone: packing lays "
                              "decoder-only next-token examples end to end, and this task's batches are not those; "
                              f"drop --{'' if requested else 'no-'}packing")
        return PackingChoice(False, f"{task.name} on this backbone has nothing to pack", None)
    if requested is not None:
        return PackingChoice(requested, f"--{'' if requested else 'no-'}packing given", capacity)
    if attention in FASTER_WITH:
        return PackingChoice(True, f"default with {attention}: variable-length attention, no padding", capacity)
    if not grouped:
        return PackingChoice(True, f"default with {attention} attention and --no-group-by-length: packed rows were "
                                   "faster than padded batches in random order (docs/speed.md)", capacity)
    return PackingChoice(False, f"default with {attention} attention: packed rows were not faster than "
                                "length-grouped batches (docs/speed.md); --packing turns it on", capacity)


def train_collate(task: Any, choice: PackingChoice, *, tokenizer: Any) -> Any:
    """The training loader's collate function: the task's, packed when ``choice`` says so."""
    if not choice.enabled or choice.capacity is None:
        return task.collate
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return PackedCollate(task.collate, capacity=choice.capacity, pad_token_id=pad or 0)


__all__ = ["FASTER_WITH", "PackingChoice", "choose_packing", "train_collate"]
