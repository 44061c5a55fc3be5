"""Padding-free training batches for decoder-only backbones: several examples in one row.

A padded batch of prompt + answer examples (chat, text-to-text on SmolLM2) spends
compute on padding whenever lengths differ. Packing lays the same examples end to
end in rows of at most ``capacity`` tokens (best-fit decreasing, at the row width that
computes the fewest positions), so the batch's
examples, their order of arrival from the loader and the optimizer steps are exactly
those of the padded batch: exact resume and the step budget mean what they meant.

Attention stays inside each example the way transformers recognises packed rows:
``position_ids`` restart at 0 at every example and no 2-D ``attention_mask`` is
given. transformers then builds the block-diagonal causal mask for SDPA and eager
attention (``masking_utils.find_packed_sequence_indices``), and FlashAttention 2
uses its variable-length kernel from the same position ids. The label of each
example's first token is -100: in a packed row the previous token belongs to
another example, and the padded batch never scores a first token either. The
loss (mean cross-entropy over scored tokens) is then the padded batch's; a unit
test compares loss and gradients to 1e-5.
"""

from __future__ import annotations

from typing import Any

IGNORE = -100


def best_fit(lengths: list[int], *, capacity: int) -> list[list[int]]:
    """Indices of ``lengths`` grouped into rows of at most ``capacity`` tokens, longest first, each into the
    fullest row it fits (best-fit decreasing). A length over ``capacity`` gets a row of its own."""
    rows: list[list[int]] = []
    free: list[int] = []  # tokens left in each row
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        fits = [r for r in range(len(rows)) if free[r] >= lengths[index]]
        if fits:
            row = min(fits, key=lambda r: free[r])
            rows[row].append(index)
            free[row] -= lengths[index]
        else:
            rows.append([index])
            free.append(capacity - lengths[index])
    return rows


def fewest_slots(lengths: list[int], *, capacity: int) -> list[list[int]]:
    """The :func:`best_fit` grouping of ``lengths`` with the fewest computed positions (rows x widest row), over
    row widths from the longest example to ``capacity``. Filling rows to ``capacity`` alone can leave one full
    row beside half-empty ones; the padded batch itself (one example per row) is among the candidates, so a
    packed batch never computes more positions than the padded one. Rows are never narrower than the longest
    example, even where it exceeds ``capacity``."""
    longest, total = max(lengths), sum(lengths)
    limit = max(capacity, longest)  # an example longer than capacity (a prompt template's tokens) widens the rows
    widths = {min(max(longest, -(-total // rows)), limit) for rows in range(1, len(lengths) + 1)} | {limit}
    best: tuple[int, list[list[int]]] | None = None
    for width in sorted(widths):
        rows = best_fit(lengths, capacity=width)
        slots = len(rows) * max(sum(lengths[i] for i in row) for row in rows)
        if best is None or slots < best[0]:
            best = (slots, rows)
    assert best is not None  # widths is never empty
    return best[1]


def pack_batch(batch: dict[str, Any], *, capacity: int, pad_token_id: int) -> dict[str, Any]:
    """The padded causal-LM ``batch`` (input_ids, attention_mask, labels: (B, T), right-padded, labels aligned
    with inputs) as packed rows: input_ids, labels, position_ids (R, W) with R <= B and W <= max(T, capacity).

    Padding at the end of a row gets its own run of positions and label -100: it attends only to itself and
    is never scored. ``examples`` (an int) and ``tokens`` (a tensor, counted on the device) say how many examples
    and real tokens the batch holds (the rows no longer do); the loss functions read only the model inputs.
    """
    import torch

    mask = batch["attention_mask"]  # (B, T)
    lengths = mask.sum(dim=1).tolist()
    rows = fewest_slots(lengths, capacity=capacity)
    width = max(sum(lengths[i] for i in row) for row in rows)
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for i in sorted(row):  # the batch's own order inside a row
            n = lengths[i]
            ids[r, start:start + n] = batch["input_ids"][i, :n]
            labels[r, start:start + n] = batch["labels"][i, :n]
            labels[r, start] = IGNORE  # its previous token is another example's
            positions[r, start:start + n] = torch.arange(n)
            start += n
        positions[r, start:] = torch.arange(width - start)  # padding: a run of its own
    return {"input_ids": ids, "labels": labels, "position_ids": positions,
            "examples": len(lengths), "tokens": torch.tensor(sum(lengths))}


class PackedCollate:
    """``collate`` followed by :func:`pack_batch`: a DataLoader's collate function (picklable for workers)."""

    def __init__(self, collate: Any, *, capacity: int, pad_token_id: int) -> None:
        self.collate, self.capacity, self.pad_token_id = collate, capacity, pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        return pack_batch(self.collate(features), capacity=self.capacity, pad_token_id=self.pad_token_id)


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """What the model is called with: a packed batch without its counts and with the cache off (a cache would
    stop transformers from reading the packing from the position ids)."""
    if "position_ids" not in batch:
        return batch
    return {"input_ids": batch["input_ids"], "labels": batch["labels"], "position_ids": batch["position_ids"],
            "use_cache": False}


__all__ = ["PackedCollate", "best_fit", "fewest_slots", "model_inputs", "pack_batch"]
