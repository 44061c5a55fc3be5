"""Which attention implementation a model runs with: FlashAttention 2, PyTorch's SDPA, or eager.

One pure rule (:func:`choose_attention`), from the model class, the device type and
the precision, so that training (the engine) and inference can make the same choice;
the caller passes the name to ``from_pretrained(attn_implementation=...)`` and records
what the loaded model reports (``model.config._attn_implementation``).

- ``flash_attention_2`` when the ``flash_attn`` package is installed, the model runs on
  CUDA with half-precision activations (``bf16-mixed`` or ``16-mixed``: FlashAttention
  computes in fp16/bf16 only) and the class supports it (``_supports_flash_attn``, or
  ``_supports_flash_attn_2`` on classes written for older transformers). It needs no
  attention matrix in memory, so long sequences cost less memory and time.
- ``sdpa`` otherwise, when the class supports it: ``torch.nn.functional.scaled_dot_product_attention``,
  fused kernels on CPU and GPU and transformers' own default.
- ``eager`` (the model's own matmul and softmax) where the class supports neither.

A class transformers' tables do not know (custom code) gets no request: transformers
then picks itself (SDPA when it can, else eager).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

FLASH = "flash_attention_2"
SDPA = "sdpa"
EAGER = "eager"

#: Lightning precisions whose activations are fp16 or bf16 (what FlashAttention computes in).
HALF_PRECISIONS = frozenset({"bf16-mixed", "16-mixed", "bf16-true", "16-true", "bf16", "16"})


@dataclass(frozen=True)
class AttentionChoice:
    """The implementation to request (None: leave it to transformers) and why, in words for the run's records."""

    implementation: str | None
    reason: str

    def model_kwargs(self) -> dict[str, Any]:
        """What ``from_pretrained`` gets: ``attn_implementation`` when there is a choice to pass."""
        return {"attn_implementation": self.implementation} if self.implementation else {}


def flash_attention_installed() -> bool:
    """Whether the ``flash_attn`` package can be imported (found, not imported: importing it initialises CUDA)."""
    return importlib.util.find_spec("flash_attn") is not None


def supports_flash(model_class: Any) -> bool:
    """Whether transformers can run this class with FlashAttention (current and older flag names)."""
    return bool(getattr(model_class, "_supports_flash_attn", False) or getattr(model_class, "_supports_flash_attn_2", False))


def choose_attention(model_class: Any, *, device_type: str, precision: str,
                     flash_installed: bool | None = None) -> AttentionChoice:
    """The attention implementation for ``model_class`` run on ``device_type`` ("cuda", "cpu", "mps") at ``precision``.

    ``model_class``: the transformers class (or an instance) that will be loaded, None when unknown.
    ``flash_installed``: whether ``flash_attn`` is installed; None looks it up.
    """
    if model_class is None:
        return AttentionChoice(None, "model class not in transformers' tables: transformers' own default")
    name = model_class.__name__ if isinstance(model_class, type) else type(model_class).__name__
    if not supports_flash(model_class):
        why_not = f"{name} does not support FlashAttention"
    elif device_type != "cuda":
        why_not = f"FlashAttention runs on CUDA only (the model runs on {device_type})"
    elif precision not in HALF_PRECISIONS:
        why_not = f"FlashAttention needs half-precision activations, precision {precision} keeps float32 (use bf16-mixed)"
    elif not (flash_attention_installed() if flash_installed is None else flash_installed):
        why_not = "the flash_attn package is not installed (pip install flash-attn)"
    else:
        return AttentionChoice(FLASH, f"{name} supports FlashAttention 2, flash_attn is installed, CUDA at {precision}")
    if getattr(model_class, "_supports_sdpa", False):
        return AttentionChoice(SDPA, f"{why_not}; PyTorch's scaled_dot_product_attention")
    return AttentionChoice(EAGER, f"{why_not}; {name} does not support scaled_dot_product_attention either")


def model_class_for(auto_class: str, config: Any) -> Any:
    """The class ``transformers.<auto_class>.from_pretrained`` builds for ``config``; None when its tables lack it."""
    import transformers

    mapping = getattr(getattr(transformers, auto_class, None), "_model_mapping", None)
    if mapping is None:
        return None
    try:
        return mapping[type(config)]
    except (KeyError, ValueError):  # custom code (auto_map), or a config type this auto class has no head for
        return None


def actual_attention(model: Any) -> str | None:
    """The implementation a loaded model runs with (what transformers settled on), None when it does not say."""
    value = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return value if isinstance(value, str) or value is None else str(value)
