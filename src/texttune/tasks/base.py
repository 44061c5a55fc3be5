"""The Task protocol: everything the one engine needs to know about a task.

A task turns rows into tensors, computes a loss from a model and a batch, and
turns model outputs back into predictions and metrics. It owns no training loop,
no optimizer and no files: the engine (``texttune.engine``) trains, the run
directory (``texttune.runs``) stores. A new task is one small module that
implements this protocol and one line in ``texttune.tasks.registry.TASKS``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from texttune.backbones import Backbone
from texttune.config import GenerationConfig, RunConfig
from texttune.data import ColumnRole


class Task(Protocol):
    """What a task provides. Instances hold only task state (options, learned label lists, lengths)."""

    name: ClassVar[str]
    description: ClassVar[str]
    roles: ClassVar[tuple[ColumnRole, ...]]
    input_keys: ClassVar[tuple[str, ...]]  # column keys that predict needs (the rest are targets)
    main_metric: ClassVar[str]  # picks the best checkpoint unless --checkpoint-metric says otherwise
    metric_names: ClassVar[tuple[str, ...]]  # what evaluate reports (flat names)
    higher_is_better: ClassVar[bool]
    default_backbone: ClassVar[str]  # an offline alias, so a fresh machine can run it
    predict_options: ClassVar[tuple[str, ...]]  # per-request options predict and serve accept (GenerationConfig names or task's own)

    def auto_class(self, family: str) -> str:
        """The transformers Auto class for a backbone family, or raise BackboneError."""
        ...

    def bind(self, backbone: Backbone, config: RunConfig) -> None:
        """Attach tokenizer-dependent state (prompt format, lengths); the model may not be loaded yet."""
        ...

    def learn(self, train_rows: Any) -> dict[str, Any]:
        """Learn from training rows what prediction needs later (e.g. max_new_tokens); return stats."""
        ...

    def model_kwargs(self) -> dict[str, Any]:
        """Extra ``from_pretrained`` arguments for the task's head (e.g. num_labels), after learn()."""
        ...

    def encode(self, rows: Any) -> tuple[Any, dict[str, Any]]:
        """Tokenize rows for training/validation loss: (features dataset, statistics)."""
        ...

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Pad a list of features into a batch of tensors."""
        ...

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        """Scalar training loss for one batch."""
        ...

    def evaluate(self, model: Any, rows: Any, *, generation: GenerationConfig) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Metrics on rows and one prediction record per row."""
        ...

    def baselines(self, rows: Any) -> dict[str, dict[str, float]]:
        """Model-free baselines (lead-k, copy-source...) scored like the model."""
        ...

    def predict(self, model: Any, inputs: list[dict[str, Any]], *, generation: GenerationConfig) -> list[dict[str, Any]]:
        """Outputs for raw inputs (dicts keyed by role), in input order."""
        ...

    def finalize_model(self, model: Any) -> None:
        """Adjust the model's own config before it is saved (e.g. generation defaults)."""
        ...

    def metadata(self) -> dict[str, Any]:
        """Everything needed to rebuild this task for a saved model (written to texttune.json)."""
        ...

    def restore(self, metadata: dict[str, Any], *, tokenizer: Any = None, model: Any = None) -> None:
        """Inverse of :meth:`metadata`; with tokenizer and model, ready to predict."""
        ...


def pad_batch(features: list[dict[str, Any]], *, pad_token_id: int, label_pad: int = -100) -> dict[str, Any]:
    """Right-pad ``input_ids`` (and ``labels`` when present) to the longest in the batch.

    Dynamic padding: batches are only as wide as their longest example, which is
    most of the win over padding everything to ``max_length``.
    """
    import torch

    width = max(len(f["input_ids"]) for f in features)
    n = len(features)
    ids = torch.full((n, width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for row, f in enumerate(features):
        ids[row, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
        mask[row, : len(f["input_ids"])] = 1
    batch = {"input_ids": ids, "attention_mask": mask}  # (B, T)
    if "labels" in features[0]:
        label_width = max(len(f["labels"]) for f in features)
        labels = torch.full((n, label_width), label_pad, dtype=torch.long)
        for row, f in enumerate(features):
            labels[row, : len(f["labels"])] = torch.tensor(f["labels"])
        batch["labels"] = labels  # (B, T_target)
    return batch
