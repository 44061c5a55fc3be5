"""The Task protocol: everything texttune needs to know about a task, declared by the task's module.

A task turns rows into tensors, computes a loss from a model and a batch, and
turns model outputs back into predictions and metrics. It owns no training loop,
no optimizer and no files: the engine (``texttune.engine``) trains, the run
directory (``texttune.runs``) stores. Its class attributes are the data the rest of
texttune reads: its options (CLI flags, YAML keys, API keywords), column roles,
heads (trained in full under LoRA), whether it generates, its per-request options
(predict and serve) and its metrics. A new task is one module that implements
this protocol and one line in ``texttune.tasks.registry.TASKS`` (docs/adding-a-task.md).

Optional hooks, looked up with ``getattr``: ``check_table(table, *, training)``
checks cells only the task understands while rows still map to file lines;
``check_data(rows) -> dict`` gives the data checks (``texttune inspect``, data_report.json) the findings
only the task understands, each ``{"count": n, "rows": [row indices], ...}`` (tasks/data_checks.py);
``choose_backbone(given)`` picks the backbone from ``--backbone`` (default: the
given one, else ``default_backbone``); ``parse_input(value, index)`` turns one raw
predict input into the task's row (default: :func:`text_input_row`); ``train_defaults``
(a ClassVar dict) gives the task's own defaults for shared options, e.g. its learning rate,
measured for it (a user's value always wins; ``--help`` shows them), and ``lora_train_defaults``
those that replace them under ``--peft lora``; ``audits_loss_mask`` (a ClassVar
bool): one training row is a prompt and its answer, so the recipe audits which label tokens carry loss before
step 1 (tasks/loss_mask.py); ``score_records(records) -> dict``: the metrics of evaluate's records (scores a
distributed evaluation's gathered records, and every bootstrap resample: docs/evaluation.md); ``row_statistics(records)
-> {metric: Additive}``: per-row statistics of the metrics that are sums over rows (means of per-row scores, BLEU,
perplexity), so the bootstrap resamples them instead of rescoring (metrics/bootstrap.py); ``evaluates_whole`` (a
ClassVar bool): a distributed evaluation must not shard the rows (chunks of concatenated text); ``prompts(model,
rows, *, generation) -> Prompts`` (generating tasks): the rows as token ids in the task's prompt layout with the
generation options resolved, what predict, evaluate and the server's streaming routes generate from
(inference/generation.py); ``chat_input(messages) -> input``: an OpenAI chat request's turns as the task's predict
input, or ConfigError saying why this model cannot chat (serving/openai.py); ``pipeline_tag``: the Hugging Face
pipeline and hub tag ("summarization", "fill-mask"...) the model card declares (runs/model_card.py);
``packing_capacity() -> int | None`` (decoder-only tasks whose batches are padded next-token rows): the tokens one
packed training row holds, None when this binding cannot pack (``--packing``, tasks/packing.py).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from texttune.backbones import Backbone
from texttune.config import GenerationConfig, RunConfig
from texttune.data import ColumnRole
from texttune.errors import DataError


class Task(Protocol):
    """What a task provides. Instances hold only task state (options, learned label lists, lengths)."""

    name: ClassVar[str]
    api_name: ClassVar[str]  # the public Python class, e.g. "Summarization" (texttune.api generates it)
    description: ClassVar[str]
    options: ClassVar[type]  # the task's own options dataclass: constructor argument, CLI/YAML/API options
    generates: ClassVar[bool]  # takes the generation options; CTranslate2 can run it
    heads: ClassVar[tuple[str, ...]]  # module names of a head the task adds (trained in full under LoRA)
    roles: ClassVar[tuple[ColumnRole, ...]]
    input_keys: ClassVar[tuple[str, ...]]  # column keys that predict needs (the rest are targets)
    main_metric: ClassVar[str]  # picks the best checkpoint unless --checkpoint-metric says otherwise
    metric_names: ClassVar[tuple[str, ...]]  # what evaluate reports (flat names)
    default_backbone: ClassVar[str]  # an offline alias, so a fresh machine can run it
    # Per-request options predict and serve accept: GenerationConfig fields, or fields of ``options``
    # (passed to :meth:`predict` as keyword arguments).
    request_options: ClassVar[tuple[str, ...]]

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

    def baselines(self, rows: Any) -> dict[str, tuple[dict[str, float], list[dict[str, Any]]]]:
        """Model-free baselines (lead-k, copy-source...) scored like the model: {name: (metrics, one record per row)},
        the records as :meth:`evaluate`'s (``score_records`` scores them), so the paired test can compare them."""
        ...

    def predict(self, model: Any, inputs: list[dict[str, Any]], *, generation: GenerationConfig,
                **options: Any) -> list[dict[str, Any]]:
        """Outputs for raw inputs (dicts keyed by role), in input order; ``options``: its own request options."""
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


def text_input_row(task: Any, value: Any, index: int) -> dict[str, Any]:
    """One predict input as ``task``'s row: a string for a one-input task, else a dict keyed by role or column key.

    Raises DataError naming ``index`` and what the task needs when the input cannot be used.
    """
    keys = task.input_keys
    by_role = {r.role: r.column_key for r in task.roles}
    names = {key: role for role, key in by_role.items()}  # messages name what users type: the role
    if isinstance(value, str):
        if len(keys) != 1:
            raise DataError(f"input {index}: task {task.name!r} needs a dict with {', '.join(names.get(k, k) for k in keys)}")
        value = {keys[0]: value}
    if not isinstance(value, dict):
        raise DataError(f"input {index}: expected a string or a dict, got {type(value).__name__}")
    row = {by_role.get(k, k): v for k, v in value.items()}
    for key in keys:
        if not isinstance(row.get(key), str) or not row[key].strip():
            got = "" if key in row else f" (got keys {', '.join(map(repr, value))})"
            raise DataError(f"input {index}: {names.get(key, key)!r} must be non-empty text{got}")
    return row


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
