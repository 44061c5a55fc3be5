"""The target-only loss must equal transformers' own causal-LM loss, gradients included."""

from __future__ import annotations

import pytest
import torch

from texttune.tasks.causal_loss import supports_target_only, target_only_loss


@pytest.mark.parametrize("kind", ["llama", "llama-chat"])
def test_target_only_loss_matches_full_loss(tiny_model_dir, kind: str) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(kind))
    assert supports_target_only(model)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 700, (3, 24), generator=generator)  # (B, T)
    mask = torch.ones_like(ids)
    mask[1, 18:] = 0  # a right-padded row
    labels = ids.clone()
    labels[:, :10] = -100  # prompt
    labels[0, :15] = -100  # a longer prompt in one row
    labels[1, 18:] = -100  # padding
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}

    full = model(**batch).loss
    full.backward()
    full_grad = model.get_output_embeddings().weight.grad.clone()
    model.zero_grad()
    fast = target_only_loss(model, batch)
    fast.backward()
    fast_grad = model.get_output_embeddings().weight.grad

    assert torch.allclose(full, fast, atol=1e-5), (full.item(), fast.item())
    assert torch.allclose(full_grad, fast_grad, atol=1e-6)


def test_unknown_families_keep_the_plain_loss(tiny_model_dir) -> None:
    from transformers import AutoModelForSeq2SeqLM

    assert not supports_target_only(AutoModelForSeq2SeqLM.from_pretrained(tiny_model_dir("t5")))
