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

from texttune.config import RunConfig, build_config, generation_from_mapping
from texttune.config_checks import check_limit
from texttune.data import Table, from_lists, load_table, select_columns, take
from texttune.errors import ConfigError, DataError
from texttune.tasks import task_class

DataArg = str | Path | Table | dict[str, Sequence[Any]] | None


def _run_stamp() -> str:
    """The default run directory's time stamp, the same in every process of a distributed run.

    Rank 0 chooses it; Lightning's launcher starts the other processes with rank 0's
    environment, so they read it back. (torchrun and SLURM start processes
    independently: give them --output-dir.)
    """
    import os

    from texttune.engine.distributed import launch_rank

    if launch_rank() == 0 or "TEXTTUNE_RUN_STAMP" not in os.environ:
        os.environ["TEXTTUNE_RUN_STAMP"] = time.strftime("%Y%m%d-%H%M%S")
    return os.environ["TEXTTUNE_RUN_STAMP"]


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

    def _checked(self, table: Table, *, training: bool) -> Table:
        """Run the task's optional ``check_table(table, training=...)`` on cells only it understands
        (``kind="any"`` columns, e.g. answer spans against their context) while rows still map to file lines."""
        check = getattr(self._task, "check_table", None)
        if check is not None:
            check(table, training=training)
        return table

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

        self._refuse_on_ctranslate2("trained")
        named = {"max_epochs": max_epochs, "max_steps": max_steps, "batch_size": batch_size, "learning_rate": learning_rate}
        extra = {k: v for k, v in named.items() if v is not None} | (options or {})
        extra |= {f"{role}_column": col for role, col in (columns or {}).items()}
        if output_dir is None:
            output_dir = Path("texttune-runs") / f"{self.task_name}-{_run_stamp()}"
        extra["output_dir"] = str(output_dir)
        self.config = config = self._config(extra)
        if config.data.streaming:  # read as training goes (docs/scaling.md, "Data larger than memory")
            from texttune.data.streaming import open_stream

            if not isinstance(train, (str, Path)) or validation is None:
                raise ConfigError("--streaming needs --train-file (JSONL/Parquet paths or glob patterns) and a --validation-file")
            train_table: Any = open_stream(str(train), roles=self._task.roles, overrides=config.data.columns)
        else:
            raw = self._pairs(inputs, targets) or self._raw_table(train, split="train")
            train_table = self._checked(select_columns(raw, self._task.roles, config.data.columns), training=True)
        val_table = None if validation is None else self._checked(
            self._table(validation, split="validation", columns=config.data.columns), training=False)
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
        if self.task_name == "causal-lm":  # perplexity needs the model's per-token losses
            self._refuse_on_ctranslate2("evaluated (causal-lm evaluate measures perplexity)")
        backbone = self._ready()
        table = self._checked(take(self._table(data, split="validation", columns=columns), max_samples), training=False)
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
        repetition_penalty: float | None = None,
        batch_size: int | None = None,
    ) -> list[Any]:
        """Predict for raw inputs (strings, or dicts keyed by column role); one output per input, in order."""
        gen = self._generation({
            "max_new_tokens": max_new_tokens, "min_new_tokens": min_new_tokens, "num_beams": num_beams,
            "do_sample": do_sample, "temperature": temperature, "top_k": top_k, "top_p": top_p,
            "no_repeat_ngram_size": no_repeat_ngram_size, "length_penalty": length_penalty,
            "repetition_penalty": repetition_penalty, "generation_batch_size": batch_size,
        })
        rows = [self._input_row(x, i) for i, x in enumerate(inputs)]
        if not rows:
            return []
        outputs = self._task.predict(self._ready().model, rows, generation=gen)
        return [o["output"] if set(o) == {"output"} else o for o in outputs]

    @property
    def task(self) -> Any:
        """The task object: its roles, predict options and learned state (labels, lengths)."""
        return self._task

    @property
    def backbone(self) -> Any:
        """The backbone with its model and tokenizer loaded."""
        return self._ready()

    @property
    def inference_backend(self) -> str:
        """Which engine generates: "transformers", or "ctranslate2" (see ``load(backend=...)``)."""
        from texttune.inference.loading import backend_name

        return backend_name(getattr(self._backbone, "model", None))

    def _refuse_on_ctranslate2(self, verb: str) -> None:
        from texttune.inference.loading import refuse_backend

        refuse_backend(getattr(self._backbone, "model", None), verb)

    def check_input(self, value: Any, index: int = 0) -> dict[str, Any]:
        """One predict input as the task's row; DataError (naming ``index``) when it cannot be used."""
        return self._input_row(value, index)

    def _input_row(self, value: Any, index: int) -> dict[str, Any]:
        keys = self._task.input_keys
        by_role = {r.role: r.column_key for r in self._task.roles}
        names = {key: role for role, key in by_role.items()}  # messages name what users type: the role
        if isinstance(value, str):
            if len(keys) != 1:
                raise DataError(f"input {index}: task {self.task_name!r} needs a dict with {', '.join(names.get(k, k) for k in keys)}")
            value = {keys[0]: value}
        if not isinstance(value, dict):
            raise DataError(f"input {index}: expected a string or a dict, got {type(value).__name__}")
        row = {by_role.get(k, k): v for k, v in value.items()}
        for key in keys:
            if not isinstance(row.get(key), str) or not row[key].strip():
                got = "" if key in row else f" (got keys {', '.join(map(repr, value))})"
                raise DataError(f"input {index}: {names.get(key, key)!r} must be non-empty text{got}")
        return row

    def save(self, directory: str | Path) -> Path:
        """Save model, tokenizer and task metadata (loads with transformers and texttune.load)."""
        from texttune import __version__
        from texttune.backbones.adapters import finish_training
        from texttune.runs import save_model_dir

        self._refuse_on_ctranslate2("saved (it is saved already; 'texttune export' writes CTranslate2 copies)")
        backbone = self._ready()
        # Adapters still separate (fit with merge_adapters=False) are saved as adapters again.
        peft = finish_training(backbone, options=self.config.peft) if backbone.peft is not None else None
        self._task.finalize_model(backbone.model)
        metadata = {
            "task": self.task_name, "texttune_version": __version__, "backbone": backbone.name,
            "family": backbone.family, "auto_class": self._task.auto_class(backbone.family),
            "task_state": self._task.metadata(), "columns": self.config.data.columns, **({"peft": peft} if peft else {}),
        }
        return save_model_dir(directory, model=backbone.model, tokenizer=backbone.tokenizer, metadata=metadata,
                              adapter=backbone.peft)


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


class MaskedLM(TaskModel):
    """Adapt an encoder to a domain's text by masked language modelling (perplexity). Column: text.

    ``predict`` takes texts with the tokenizer's mask token (``[MASK]`` for BERT/MiniLM)
    and returns ``{"candidates": [{"token_str", "score", "sequence", ...}, ...]}``.
    """

    task_name = "masked-lm"

    def __init__(self, *, backbone: str | None = None, mlm_probability: float = 0.15, whole_word_masking: bool = False,
                 max_length: int | None = None, options: dict[str, Any] | None = None) -> None:
        super().__init__(backbone=backbone, options={
            "mlm_probability": mlm_probability, "whole_word_masking": whole_word_masking, "max_length": max_length, **(options or {})})


class CausalLM(TaskModel):
    """Fine-tune a decoder on plain text, or train a small one from scratch (perplexity). Column: text.

    ``from_scratch="tiny"`` or ``"small"`` trains a byte-level BPE tokenizer
    (``vocab_size``) on the training text and a new Llama instead of fine-tuning a
    backbone. ``predict`` continues prompts.
    """

    task_name = "causal-lm"

    def __init__(self, *, backbone: str | None = None, from_scratch: str | None = None, vocab_size: int = 8000,
                 max_length: int | None = None, options: dict[str, Any] | None = None) -> None:
        super().__init__(backbone=backbone, options={
            "from_scratch": from_scratch, "vocab_size": vocab_size, "max_length": max_length, **(options or {})})

    def _load_backbone(self) -> Any:
        size = self.config.task_options.from_scratch
        if size is not None and self._backbone is None:  # weights and tokenizer come from the training data
            from texttune.tasks.causal_lm import scratch_backbone

            self._backbone = scratch_backbone(size, backbone_option=self.config.model.backbone)
        return super()._load_backbone()


class TokenClassification(TaskModel):
    """One tag per word: NER, POS tagging, chunking (seqeval F1, majority-tag baseline). Columns: tokens, tags.

    ``label_list``: labels in id order (a list or "O,B-PER,I-PER"); default: inferred from
    the training data. ``predict`` takes raw text (a string, or ``{"text": ...}``) and
    returns ``{"entities": [{"entity_group", "score", "word", "start", "end"}, ...]}``
    (character offsets, grouped by ``aggregation``), or a list of words (or
    ``{"tokens": [...]}``) and returns ``{"tags": [...]}``, one tag per word.
    """

    task_name = "token-classification"

    def __init__(self, *, backbone: str | None = None, label_list: str | Sequence[str] | None = None,
                 label_all_tokens: bool = False, aggregation: str = "simple", options: dict[str, Any] | None = None) -> None:
        if label_list is not None and not isinstance(label_list, str):
            label_list = ",".join(map(str, label_list))
        super().__init__(backbone=backbone, options={
            "label_list": label_list, "label_all_tokens": label_all_tokens, "aggregation": aggregation, **(options or {})})

    def _input_row(self, value: Any, index: int) -> dict[str, Any]:
        """``{"tokens": text or words}`` from a string (raw text), a list of words, or a dict with text or tokens."""
        if isinstance(value, dict):
            tokens = value.get("tokens") if value.get("tokens") is not None else value.get("text")
        elif isinstance(value, (str, list, tuple)):
            tokens = value
        else:
            raise DataError(f"input {index}: expected raw text, a list of words or a dict, got {type(value).__name__}")
        words = isinstance(tokens, (list, tuple)) and len(tokens) > 0 and all(isinstance(w, str) for w in tokens)
        if not words and not (isinstance(tokens, str) and tokens.strip()):
            got = "nothing (one input file holds either texts or word lists, not both)" if tokens is None else repr(str(tokens)[:60])
            raise DataError(f"input {index}: needs raw text (a non-empty string, key 'text') or a non-empty list of words "
                            f"(key 'tokens'), got {got}")
        return {"tokens": list(tokens) if words else tokens}

    def predict(self, inputs: Sequence[Any], *, aggregation: str | None = None, **kwargs: Any) -> list[Any]:
        """As :meth:`TaskModel.predict`; ``aggregation`` overrides the trained strategy for this call."""
        if aggregation is None:
            return super().predict(inputs, **kwargs)
        from texttune.config import TaskOptions, coerce

        field = TaskOptions.__dataclass_fields__["aggregation"]
        chosen = coerce("aggregation", aggregation, str, field.metadata["choices"])
        previous, self._task.aggregation = self._task.aggregation, chosen
        try:
            return super().predict(inputs, **kwargs)
        finally:
            self._task.aggregation = previous


API_CLASSES: dict[str, type[TaskModel]] = {"summarization": Summarization, "translation": Translation, "text2text": Text2Text,
                                         "question-answering": QuestionAnswering, "masked-lm": MaskedLM, "causal-lm": CausalLM,
                                         "token-classification": TokenClassification}


def load(directory: str | Path, *, backend: str | None = None, compute_type: str | None = None,
         threads: int | None = None) -> TaskModel:
    """Load a model saved by texttune (a run directory, its ``model/`` directory, or a ``texttune export``).

    ``backend="ctranslate2"`` generates with CTranslate2 instead of transformers (2-2.5x the
    examples/s for SmolLM2 at int8 on 2 CPU cores, docs/inference.md): the model is converted
    once, cached under ``$TEXTTUNE_HOME/ctranslate2``, at ``compute_type`` (default int8 on CPU,
    float16 on GPU). An export always runs on CTranslate2. ``threads``: CTranslate2 workers
    (one thread each), or torch's process-wide threads for transformers. Only generation
    tasks run on CTranslate2; others get a clear error.
    """
    from texttune.inference.loading import saved_backbone
    from texttune.inference.options import inference_config
    from texttune.runs import find_model_dir, read_metadata

    inference = inference_config(backend=backend, compute_type=compute_type, threads=threads)
    model_dir = find_model_dir(directory)
    meta = read_metadata(model_dir)
    cls = API_CLASSES.get(meta["task"])
    if cls is None:
        raise ConfigError(f"{model_dir}: task {meta['task']!r} is not known to this texttune version")
    obj = cls.__new__(cls)
    state = meta.get("task_state", {})
    TaskModel.__init__(obj, backbone=str(model_dir))  # task options come back through restore() below
    obj.config = replace(obj.config, data=replace(obj.config.data, columns=dict(meta.get("columns") or {})))
    obj._backbone = saved_backbone(model_dir, meta, inference)
    obj._task.restore(state, tokenizer=obj._backbone.tokenizer, model=obj._backbone.model)
    return obj
