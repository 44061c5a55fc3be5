"""Saving a trained task: the one way ``model/`` is written, after training and by ``TaskModel.save``.

LoRA adapters are merged first (unless ``--no-merge-adapters``), the task adjusts the model's
own config (generation defaults), ``texttune.json`` is built (``runs.model_dir.model_metadata``)
and the directory is written atomically, with adapter files instead of full weights when the
adapters stay separate.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from texttune.backbones.adapters import finish_training, save_adapters
from texttune.peft_config import PeftOptions
from texttune.runs.model_dir import model_metadata, save_model_dir


def save_trained(task: Any, backbone: Any, directory: str | Path, *, columns: dict[str, str], peft: PeftOptions,
                 trained_steps: int | None = None) -> Path:
    """Write ``backbone``'s model, tokenizer and ``task``'s metadata to ``directory``; returns it."""
    adapters = finish_training(backbone, options=peft)  # merges the adapters unless --no-merge-adapters
    task.finalize_model(backbone.model)
    metadata = model_metadata(task=task, backbone=backbone, columns=columns, peft=adapters, trained_steps=trained_steps)
    weights = partial(save_adapters, wrapped=backbone.peft, model=backbone.model) if backbone.peft is not None else None
    return save_model_dir(directory, model=backbone.model, tokenizer=backbone.tokenizer, metadata=metadata,
                          save_weights=weights)
