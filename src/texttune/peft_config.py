"""Options for parameter-efficient fine-tuning (LoRA) and activation memory.

A section of the flat option namespace (:mod:`texttune.config`): ``--peft lora``,
``lora_rank:`` in YAML, ``options={"peft": "lora"}`` in the API. It lives in its
own module because config.py is already long; config.py imports it (this module
imports nothing from texttune but the errors, so there is no import cycle).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from texttune.errors import ConfigError

#: Parameter-efficient methods ``--peft`` accepts.
PEFT_METHODS: tuple[str, ...] = ("lora",)


def _option(default: Any, help: str, *, choices: tuple[str, ...] | None = None) -> Any:  # noqa: A002
    """A dataclass field carrying its ``--help`` text and allowed values (as ``texttune.config.option``)."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class PeftOptions:
    """LoRA adapters instead of full fine-tuning, and gradient checkpointing."""

    peft: str | None = _option(None, "Parameter-efficient fine-tuning: 'lora' freezes the backbone and trains low-rank "
                                     "adapters (plus the task's new head); checkpoints then hold only the trained weights.",
                               choices=PEFT_METHODS)
    lora_rank: int = _option(8, "LoRA: rank r of the adapter matrices (more = more trainable parameters).")
    lora_alpha: int = _option(16, "LoRA: scaling numerator; the adapter's update is multiplied by alpha / rank.")
    lora_dropout: float = _option(0.05, "LoRA: dropout on the adapter's input during training.")
    lora_target_modules: str | None = _option(None, "LoRA: comma-separated names of the layers that get adapters (e.g. "
                                                    "q_proj,v_proj), or 'all-linear'. Default: the attention query and value "
                                                    "projections of the backbone's family.")
    lora_modules_to_save: str | None = _option(None, "LoRA: comma-separated layers trained in full and saved with the "
                                                     "adapters. Default: the task's new head (classifier, qa_outputs); "
                                                     "'' for none.")
    merge_adapters: bool = _option(True, "LoRA: save the model with the adapters merged into its weights (a plain model "
                                         "for any tool); --no-merge-adapters saves only the adapters plus a pointer to "
                                         "the backbone (small; texttune load and serve read both).")
    gradient_checkpointing: bool = _option(False, "Recompute activations in the backward pass instead of storing them: "
                                                  "less memory, about a third more compute per step. Works with and "
                                                  "without --peft.")


#: Option defaults, to tell which LoRA options the user set.
_LORA_DEFAULTS: dict[str, Any] = {"lora_rank": 8, "lora_alpha": 16, "lora_dropout": 0.05, "lora_target_modules": None,
                                  "lora_modules_to_save": None, "merge_adapters": True}


def split_names(value: str | None) -> list[str] | None:
    """'q_proj, v_proj' -> ['q_proj', 'v_proj']; None stays None (the default), '' is an empty list."""
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def validate_peft(options: PeftOptions) -> None:
    """Ranges, and LoRA options given without ``--peft lora`` (they would silently do nothing)."""
    if options.peft is None:
        given = [name for name, default in _LORA_DEFAULTS.items() if getattr(options, name) != default]
        if given:
            raise ConfigError(f"option {given[0]!r} applies to LoRA fine-tuning; add --peft lora (peft: lora) or drop it")
        return
    if options.lora_rank <= 0:
        raise ConfigError(f"option 'lora_rank' must be > 0, got {options.lora_rank!r}")
    if options.lora_alpha <= 0:
        raise ConfigError(f"option 'lora_alpha' must be > 0, got {options.lora_alpha!r}")
    if not 0 <= options.lora_dropout < 1:
        raise ConfigError(f"option 'lora_dropout' must be in [0, 1), got {options.lora_dropout!r}")
    targets = split_names(options.lora_target_modules)
    if targets is not None and not targets:
        raise ConfigError("option 'lora_target_modules' is empty; name at least one layer (e.g. q_proj,v_proj) or "
                          "leave it out for the family's default")
