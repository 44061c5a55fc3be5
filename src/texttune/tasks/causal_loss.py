"""Target-only language-model loss for decoder-only backbones.

With loss on the target only, most positions of a (prompt + target) sequence have
label -100, yet a plain ``model(**batch)`` still projects every position onto the
whole vocabulary: for SmolLM2 (49,152 tokens) that head is ~20% of a training
step's FLOPs on Debian summaries. Here the backbone runs once, and the head runs
only on the positions whose next token is scored. The loss is the same mean
cross-entropy as transformers' own (a unit test compares them).
"""

from __future__ import annotations

from typing import Any

# Families whose logits are exactly lm_head(last_hidden_state): no soft-capping or
# scaling after the head (Gemma 2/3 cap logits, Cohere scales them), so skipping
# positions changes nothing but the cost.
PLAIN_HEAD_TYPES = {"llama", "mistral", "qwen2", "qwen3", "gpt2", "gpt_neox", "phi3", "olmo", "olmo2", "smollm3"}


def supports_target_only(model: Any) -> bool:
    return getattr(model.config, "model_type", None) in PLAIN_HEAD_TYPES and model.get_output_embeddings() is not None


def target_only_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Mean next-token cross-entropy over positions with a label, computing logits only there."""
    import torch.nn.functional as F

    labels = batch["labels"]  # (B, T), -100 over prompt and padding
    # A packed batch (tasks/packing.py) has position_ids and no attention mask; the cache stays off so that
    # transformers reads the packing from the position ids.
    hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"),
                              position_ids=batch.get("position_ids"), use_cache=False).last_hidden_state  # (B, T, H)
    targets = labels[:, 1:]  # token t+1 is predicted from position t
    keep = targets != -100  # (B, T-1)
    picked = hidden[:, :-1][keep]  # (N, H): only the scored positions
    logits = model.get_output_embeddings()(picked).float()  # (N, V)
    return F.cross_entropy(logits, targets[keep])
