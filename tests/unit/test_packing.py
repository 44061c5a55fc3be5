"""Packed rows (tasks/packing.py) train exactly as the padded batch: same loss, same gradients."""

from __future__ import annotations

import pytest
import torch

from texttune.tasks.causal_loss import target_only_loss
from texttune.tasks.packing import best_fit, fewest_slots, model_inputs, pack_batch


def test_best_fit_fills_rows_and_keeps_every_index() -> None:
    rows = best_fit([5, 3, 8, 2, 7, 1], capacity=10)
    assert sorted(i for row in rows for i in row) == list(range(6))
    assert all(sum([5, 3, 8, 2, 7, 1][i] for i in row) <= 10 for row in rows)
    assert len(rows) == 3  # 26 tokens need 3 rows of 10
    assert best_fit([12, 3], capacity=10) == [[0], [1]]  # too long: a row of its own


def _slots(lengths: list[int], rows: list[list[int]]) -> int:
    return len(rows) * max(sum(lengths[i] for i in row) for row in rows)


def test_rows_are_as_wide_as_computes_fewest_positions() -> None:
    # Filled to capacity 50: [30, 20] and [20], 2 x 50 positions. Width 30, one example a row: 3 x 30.
    assert _slots([30, 20, 20], best_fit([30, 20, 20], capacity=50)) == 100
    assert _slots([30, 20, 20], fewest_slots([30, 20, 20], capacity=50)) == 90
    assert fewest_slots([10, 10, 10, 2], capacity=32) == [[0, 1, 2, 3]]  # one full row
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):  # never more than the padded batch (B x longest), every index once
        lengths = torch.randint(1, 60, (int(torch.randint(1, 17, ())),), generator=generator).tolist()
        rows = fewest_slots(lengths, capacity=80)
        assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
        assert _slots(lengths, rows) <= len(lengths) * max(lengths)
        assert all(sum(lengths[i] for i in row) <= 80 for row in rows)
    # One example over capacity (a prompt template's tokens): the others still share rows as wide as it.
    assert fewest_slots([90, 40, 40, 30, 20], capacity=80) == [[0], [1, 2], [3, 4]]


def _padded_batch(lengths: list[int], *, prompt: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros((len(lengths), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(5, 700, (n,), generator=generator)
        mask[row, :n] = 1
        labels[row, prompt:n] = ids[row, prompt:n]  # loss on the answer only
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.mark.parametrize("kind", ["llama", "llama-chat"])
@pytest.mark.parametrize("path", ["target-only", "transformers"])
def test_packed_loss_and_gradients_equal_the_padded_batch(tiny_model_dir, kind: str, path: str) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(kind), attn_implementation="sdpa")
    padded = _padded_batch([24, 9, 17, 6, 30, 12])
    packed = pack_batch(padded, capacity=32, pad_token_id=0)
    assert packed["input_ids"].shape[0] < 6 and int(packed["examples"]) == 6 and int(packed["tokens"]) == 98
    assert int((packed["labels"] != -100).sum()) == int((padded["labels"] != -100).sum())

    def loss_and_grads(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        loss = target_only_loss(model, batch) if path == "target-only" else model(**model_inputs(batch)).loss
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    loss, grads = loss_and_grads(padded)
    packed_loss, packed_grads = loss_and_grads(packed)
    assert torch.allclose(loss, packed_loss, atol=1e-5), (loss.item(), packed_loss.item())
    assert len(grads) == len(packed_grads)
    worst = max((a - b).abs().max().item() for a, b in zip(grads, packed_grads))
    assert worst < 1e-5, worst


def test_attention_does_not_cross_examples(tiny_model_dir) -> None:
    """Changing one example changes nothing of its row-mate's hidden states (the test fails without the mask)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), attn_implementation="sdpa").eval()
    padded = _padded_batch([10, 8])
    packed = pack_batch(padded, capacity=32, pad_token_id=0)
    assert packed["input_ids"].shape == (1, 18)
    changed = dict(packed, input_ids=packed["input_ids"].clone())
    changed["input_ids"][0, :10] = torch.randint(5, 700, (10,), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a = model.base_model(**{k: packed[k] for k in ("input_ids", "position_ids")}, use_cache=False).last_hidden_state
        b = model.base_model(**{k: changed[k] for k in ("input_ids", "position_ids")}, use_cache=False).last_hidden_state
    assert not torch.allclose(a[0, :10], b[0, :10])
    assert torch.allclose(a[0, 10:], b[0, 10:], atol=1e-6)


class _Task:
    name = "chat"

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity

    def packing_capacity(self) -> int | None:
        return self.capacity


def test_the_default_follows_what_was_measured() -> None:
    from texttune.engine.packed import choose_packing
    from texttune.errors import ConfigError

    def choice(capacity: int | None = 64, **kwargs: object) -> tuple[bool, str]:
        picked = choose_packing(_Task(capacity), **{"requested": None, "attention": "sdpa", "grouped": True, **kwargs})
        return picked.enabled, picked.reason

    assert choice() == (False, "default with sdpa attention: packed rows were not faster than length-grouped batches "
                               "(docs/speed.md); --packing turns it on")
    assert choice(grouped=False)[0] is True and "--no-group-by-length" in choice(grouped=False)[1]
    assert choice(attention="flash_attention_2")[0] is True
    assert choice(requested=True) == (True, "--packing given")
    assert choice(requested=False, attention="flash_attention_2") == (False, "--no-packing given")
    assert choice(capacity=None) == (False, "chat on this backbone has nothing to pack")
    with pytest.raises(ConfigError, match="drop --no-packing"):
        choice(capacity=None, requested=False)
