"""The Python API: a fine-tunable model for one task, whatever the backbone.

    >>> task = Summarization(backbone="smollm2-135m")
    >>> run = task.fit(train="train.jsonl", validation="val.jsonl", max_steps=60)
    >>> task.predict(["A long text ..."], num_beams=4)
    >>> task.save("my-summarizer"); again = load("my-summarizer")

Every option goes through the same typed config as the CLI (``texttune.config``),
so a value that the CLI would refuse is refused here with the same message.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, ClassVar

from texttune.config import RunConfig, build_config, check_limit, generation_from_mapping
from texttune.data import Table, from_lists, load_table, select_columns, take
from texttune.errors import ConfigError, DataError
from texttune.tasks import task_class

DataArg = str | Path | Table | dict[str, Sequence[Any]] | None


class TaskModel:
    """A task bound to a backbone: fit, evaluate, predict, save. Subclasses fix the task."""

    task_name: ClassVar[str]

    def __init__(self, *, backbone: str | None = None, options: dict[str, Any] | None = None) -> None:
        """``options``: any flat option (the CLI flag names with underscores), checked now, not at fit time."""
        cls = task_class(self.task_name)
        self._roles = tuple(r.role for r in cls().roles)
        self._options: dict[str, Any] = {k: v for k, v in (options or {}).items() if v is not None}
        if backbone is not None:
            self._options["backbone"] = backbone
        self.config: RunConfig = self._config({})
        self._task = cls(self.config.task_options)
        self._backbone: Any = None
        self.last_run: Any = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> TaskModel:
        """Build from a flat option mapping (what the CLI and ``--config`` files produce)."""
        obj = cls.__new__(cls)
        TaskModel.__init__(obj, options=options)
        return obj

    # -- configuration --------------------------------------------------------
    def _config(self, extra: dict[str, Any]) -> RunConfig:
        return build_config(self.task_name, {**self._options, **extra}, column_roles=self._roles)

    @property
    def backbone_name(self) -> str:
        return self.config.model.backbone or self._task.default_backbone

    def _load_backbone(self) -> Any:
        """Config and tokenizer; the weights follow once the task knows its head (see engine.finetune)."""
        if self._backbone is None:
            from texttune.backbones import load_backbone

            self._backbone = load_backbone(self.backbone_name, trust_remote_code=self.config.model.trust_remote_code)
            self._task.auto_class(self._backbone.family)  # refuse an unusable family before any data work
        return self._backbone

    # -- data -----------------------------------------------------------------
    def _raw_table(self, data: DataArg, *, split: str) -> Table:
        if data is None:
            raise DataError("no data given")
        if isinstance(data, Table):
            return data
        if isinstance(data, dict):
            return from_lists(data)
        return load_table(data, split=split)

    def _table(self, data: DataArg, *, split: str, columns: dict[str, str] | None, inputs_only: bool = False) -> Table:
        """Load ``data`` and map its columns. ``columns`` are the user's (strict); the
        columns the model was trained with are tried first, then the task's defaults."""
        saved = self.config.data.columns
        roles = [replace(r, defaults=(saved[r.role], *r.defaults)) if r.role in saved else r for r in self._task.roles]
        if inputs_only:
            targets = {r.role for r in roles if r.column_key not in self._task.input_keys}
            roles = [r for r in roles if r.role not in targets]
            columns = {k: v for k, v in (columns or {}).items() if k not in targets}
        return select_columns(self._raw_table(data, split=split), roles, columns or {})

    def input_roles(self) -> list[Any]:
        """The column roles predict needs (the task's inputs, not its targets)."""
        return [r for r in self._task.roles if r.column_key in self._task.input_keys]

    def input_table(self, data: DataArg, *, columns: dict[str, str]) -> Table:
        """Prediction inputs from a file or table, mapped to the task's input columns."""
        return self._table(data, split="test", columns=columns, inputs_only=True)

    def _pairs(self, inputs: Sequence[str] | None, targets: Sequence[str] | None) -> Table | None:
        if inputs is None and targets is None:
            return None
        if inputs is None or targets is None:
            raise DataError("pass both inputs= and targets= (or a data file)")
        keys = [r.role for r in self._task.roles]
        return from_lists({keys[0]: list(inputs), keys[1]: list(targets)})

    # -- the verbs ------------------------------------------------------------
    def fit(
        self,
        *,
        train: DataArg = None,
        validation: DataArg = None,
        inputs: Sequence[str] | None = None,
        targets: Sequence[str] | None = None,
        output_dir: str | Path | None = None,
        max_epochs: int | None = None,
        max_steps: int | None = None,
        batch_size: int | None = None,
        learning_rate: float | None = None,
        columns: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
    ) -> Any:
        """Fine-tune on ``train`` (a file, a dataset directory, a Table, or ``inputs=``/``targets=`` lists).

        ``options`` takes any other flat option (``warmup_ratio``, ``precision``...).
        Returns a :class:`texttune.engine.FitResult` with the run directory and metrics.
        """
        from texttune.engine import fit as run_fit
        from texttune.runs import RunDir

        named = {"max_epochs": max_epochs, "max_steps": max_steps, "batch_size": batch_size, "learning_rate": learning_rate}
        extra = {k: v for k, v in named.items() if v is not None} | (options or {})
        extra |= {f"{role}_column": col for role, col in (columns or {}).items()}
        if output_dir is None:
            output_dir = Path("texttune-runs") / f"{self.task_name}-{time.strftime('%Y%m%d-%H%M%S')}"
        extra["output_dir"] = str(output_dir)
        self.config = config = self._config(extra)
        raw = self._pairs(inputs, targets) or self._raw_table(train, split="train")
        train_table = select_columns(raw, self._task.roles, config.data.columns)
        val_table = None if validation is None else self._table(validation, split="validation", columns=config.data.columns)
        backbone = self._load_backbone()
        self.last_run = run_fit(task=self._task, backbone=backbone, config=config, train=train_table,
                                validation=val_table, run=RunDir(Path(config.train.output_dir or output_dir)))
        return self.last_run

    def _generation(self, overrides: dict[str, Any]) -> Any:
        base = {k: v for k, v in asdict(self.config.generation).items()}
        return generation_from_mapping(base | {k: v for k, v in overrides.items() if v is not None})

    def _ready(self) -> Any:
        """The backbone with its model loaded, for evaluate/predict/save without fit (zero-shot use)."""
        backbone = self._load_backbone()
        if backbone.model is None:
            self._task.bind(backbone, self.config)
            backbone.load_model(self._task.auto_class(backbone.family), model_kwargs=self._task.model_kwargs())
        return backbone

    def evaluate(self, data: DataArg, *, columns: dict[str, str] | None = None, max_samples: int | None = None,
                 predictions_file: str | Path | None = None, generation: dict[str, Any] | None = None) -> dict[str, float]:
        """Metrics of the current model on ``data``; optionally write per-row predictions as JSONL."""
        from texttune.runs.files import write_jsonl

        check_limit("max_samples", max_samples)
        backbone = self._ready()
        table = take(self._table(data, split="validation", columns=columns), max_samples)
        metrics, records = self._task.evaluate(backbone.model, table.rows, generation=self._generation(generation or {}))
        if predictions_file is not None:
            write_jsonl(predictions_file, records)
        return metrics

    def predict(
        self,
        inputs: Sequence[str] | Sequence[dict[str, Any]],
        *,
        max_new_tokens: int | None = None,
        min_new_tokens: int | None = None,
        num_beams: int | None = None,
        do_sample: bool | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        no_repeat_ngram_size: int | None = None,
        length_penalty: float | None = None,
        batch_size: int | None = None,
    ) -> list[Any]:
        """Predict for raw inputs (strings, or dicts keyed by column role); one output per input, in order."""
        gen = self._generation({
            "max_new_tokens": max_new_tokens, "min_new_tokens": min_new_tokens, "num_beams": num_beams,
            "do_sample": do_sample, "temperature": temperature, "top_k": top_k, "top_p": top_p,
            "no_repeat_ngram_size": no_repeat_ngram_size, "length_penalty": length_penalty,
            "generation_batch_size": batch_size,
        })
        rows = [self._input_row(x, i) for i, x in enumerate(inputs)]
        if not rows:
            return []
        outputs = self._task.predict(self._ready().model, rows, generation=gen)
        return [o["output"] if set(o) == {"output"} else o for o in outputs]

    def _input_row(self, value: Any, index: int) -> dict[str, Any]:
        keys = self._task.input_keys
        if isinstance(value, str):
            if len(keys) != 1:
                raise DataError(f"input {index}: task {self.task_name!r} needs a dict with {', '.join(keys)}")
            value = {keys[0]: value}
        if not isinstance(value, dict):
            raise DataError(f"input {index}: expected a string or a dict, got {type(value).__name__}")
        by_role = {r.role: r.column_key for r in self._task.roles}
        row = {by_role.get(k, k): v for k, v in value.items()}
        for key in keys:
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise DataError(f"input {index}: {key!r} must be non-empty text")
        return row

    def save(self, directory: str | Path) -> Path:
        """Save model, tokenizer and task metadata (loads with transformers and texttune.load)."""
        from texttune import __version__
        from texttune.runs import save_model_dir

        backbone = self._ready()
        self._task.finalize_model(backbone.model)
        metadata = {
            "task": self.task_name, "texttune_version": __version__, "backbone": backbone.name,
            "family": backbone.family, "auto_class": self._task.auto_class(backbone.family),
            "task_state": self._task.metadata(), "columns": self.config.data.columns,
        }
        return save_model_dir(directory, model=backbone.model, tokenizer=backbone.tokenizer, metadata=metadata)


class Summarization(TaskModel):
    """Summarize long texts (ROUGE, lead-k baseline). Columns: text, summary."""

    task_name = "summarization"

    def __init__(self, *, backbone: str | None = None, prefix: str | None = None, options: dict[str, Any] | None = None) -> None:
        super().__init__(backbone=backbone, options={"prefix": prefix, **(options or {})})


class Translation(TaskModel):
    """Translate between languages (sacreBLEU, chrF, copy-source baseline). Columns: source, target."""

    task_name = "translation"

    def __init__(self, *, backbone: str | None = None, source_lang: str = "en", target_lang: str = "fr",
                 prefix: str | None = None, options: dict[str, Any] | None = None) -> None:
        super().__init__(backbone=backbone, options={"prefix": prefix, "source_lang": source_lang, "target_lang": target_lang, **(options or {})})


class Text2Text(TaskModel):
    """Any text-to-text task, e.g. question generation. Columns: input, target."""

    task_name = "text2text"

    def __init__(self, *, backbone: str | None = None, prefix: str | None = None, options: dict[str, Any] | None = None) -> None:
        super().__init__(backbone=backbone, options={"prefix": prefix, **(options or {})})


class QuestionAnswering(TaskModel):
    """Extractive question answering, SQuAD style (exact match, F1). Columns: question, context, answers, id.

    ``predict`` takes ``{"question": ..., "context": ...}`` dicts and returns
    ``{"answer", "score", "start", "end"}`` (character offsets into the context).
    """

    task_name = "question-answering"

    def __init__(self, *, backbone: str | None = None, max_length: int = 384, stride: int = 128, max_answer_length: int = 30,
                 n_best: int = 20, version_2: bool = False, null_threshold: float = 0.0, options: dict[str, Any] | None = None) -> None:
        super().__init__(backbone=backbone, options={
            "max_length": max_length, "stride": stride, "max_answer_length": max_answer_length, "n_best": n_best,
            "version_2": version_2, "null_threshold": null_threshold, **(options or {})})


API_CLASSES: dict[str, type[TaskModel]] = {"summarization": Summarization, "translation": Translation, "text2text": Text2Text,
                                         "question-answering": QuestionAnswering}


def load(directory: str | Path) -> TaskModel:
    """Load a model saved by texttune (a run directory or its ``model/`` directory)."""
    from texttune.backbones import load_backbone
    from texttune.runs import find_model_dir, read_metadata

    model_dir = find_model_dir(directory)
    meta = read_metadata(model_dir)
    cls = API_CLASSES.get(meta["task"])
    if cls is None:
        raise ConfigError(f"{model_dir}: task {meta['task']!r} is not known to this texttune version")
    obj = cls.__new__(cls)
    state = meta.get("task_state", {})
    TaskModel.__init__(obj, backbone=str(model_dir))  # task options come back through restore() below
    obj.config = replace(obj.config, data=replace(obj.config.data, columns=dict(meta.get("columns") or {})))
    obj._backbone = load_backbone(str(model_dir), auto_class=meta["auto_class"])
    obj._task.restore(state, tokenizer=obj._backbone.tokenizer, model=obj._backbone.model)
    return obj
