"""The Python API: a fine-tunable model for one task, whatever the backbone.

    >>> task = Summarization(backbone="smollm2-135m")
    >>> run = task.fit(train="train.jsonl", validation="val.jsonl", max_steps=60)
    >>> task.predict(["A long text ..."], num_beams=4)
    >>> task.save("my-summarizer"); again = load("my-summarizer")

There is one class, :class:`TaskModel`. The public names (``Summarization``,
``Translation``, ...) are generated from the task registry (each task's
``api_name``): a task added to the registry has its class here without an edit.
Every option goes through the same typed config as the CLI, so a value the CLI
would refuse is refused here with the same message, and so is an option of
another task.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from texttune.backbones import load_backbone
from texttune.backbones.adapter_set import attach_adapters
from texttune.config import RunConfig, generation_from_mapping
from texttune.config_checks import check_limit
from texttune.config_resume import resumed_options
from texttune.config_yaml import read_yaml
from texttune.data import Table, select_columns, take
from texttune.data.fingerprint import rows_hash
from texttune.data.streaming import open_stream
from texttune.errors import ConfigError
from texttune.files import write_jsonl
from texttune.inference.backends import backend_name, refuse_backend
from texttune.inference.exports import export as export
from texttune.inference.options import inference_config
from texttune.inference.saved_model import check_backend, saved_backbone
from texttune.metrics.bootstrap import DEFAULT_RESAMPLES
from texttune.runs import RunDir, find_model_dir, model_name, publish, read_metadata
from texttune.runs.model_card import write_model_card
from texttune.runs.publish import Upload
from texttune.tasks import TASKS, task_class, uncertainty
from texttune.tasks.base import text_input_row
from texttune.tasks.data_checks import check_tables, settings_of
from texttune.tasks.registry import own_option_names, run_config, split_request_options
from texttune.tasks.saving import save_trained
from texttune.tasks.tables import DataArg, checked, input_roles, pairs_table, raw_table, task_table

log = logging.getLogger("texttune")


def _run_stamp() -> str:
    """The default run directory's time stamp, the same in every process of a distributed run.

    Rank 0 chooses it; Lightning's launcher starts the other processes with rank 0's
    environment, so they read it back. (torchrun and SLURM start processes
    independently: give them --output-dir.)
    """
    from texttune.engine.distributed import launch_rank  # that module imports torch

    if launch_rank() == 0 or "TEXTTUNE_RUN_STAMP" not in os.environ:
        os.environ["TEXTTUNE_RUN_STAMP"] = time.strftime("%Y%m%d-%H%M%S")
    return os.environ["TEXTTUNE_RUN_STAMP"]


@dataclass(frozen=True)
class Evaluation:
    """What :meth:`TaskModel.evaluation` measured: the metrics, their 95% intervals ({} without the bootstrap), how many
    rows and their content hash (the ``sha256`` a run records in metrics.json ``evaluation_data``)."""

    metrics: dict[str, float]
    intervals: dict[str, dict[str, float]]
    rows: int
    sha256: str
    resamples: int
    seed: int


class TaskModel:
    """A task bound to a backbone: fit, evaluate, predict, save.

    ``task_options`` are the task's own options (``prefix=``, ``label_list=``, ...: see
    ``texttune train TASK --help``); ``options`` takes any flat option. Both are checked
    now, not at fit time; an option of another task is refused naming it.
    """

    task_name: ClassVar[str]  # set by each public class (api_class)

    def __init__(self, *, backbone: str | None = None, options: dict[str, Any] | None = None, **task_options: Any) -> None:
        given = {**task_options, **(options or {})}
        # A list for a comma-separated option (label_list=["O", "B-PER"]) is joined.
        self._options: dict[str, Any] = {k: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v
                                         for k, v in given.items() if v is not None}
        if backbone is not None:
            self._options["backbone"] = backbone
        self.config: RunConfig = run_config(self.task_name, self._options)
        self._task = task_class(self.task_name)(self.config.task_options)
        self._backbone: Any = None
        self._adapters: Any = None  # an AdapterSet when loaded with adapters (load(adapters=...))
        self.last_run: Any = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> TaskModel:
        """Build from a flat option mapping (what the CLI and ``--config`` files produce)."""
        return cls(options=options)

    @property
    def backbone_name(self) -> str:
        choose = getattr(self._task, "choose_backbone", None)  # e.g. causal-lm's --from-scratch SIZE
        given = self.config.model.backbone
        return choose(given) if choose is not None else (given or self._task.default_backbone)

    def _load_backbone(self) -> Any:
        """Config and tokenizer; the weights follow once the task knows its head (see engine.finetune)."""
        if self._backbone is None:
            self._backbone = load_backbone(self.backbone_name, trust_remote_code=self.config.model.trust_remote_code,
                                           vocab_size=self.config.model.vocab_size)
            self._task.auto_class(self._backbone.family)  # refuse an unusable family before any data work
        return self._backbone

    def _table(self, data: DataArg, *, split: str, columns: dict[str, str] | None, inputs_only: bool = False) -> Table:
        return task_table(self._task, data, split=split, columns=columns, saved=self.config.data.columns, inputs_only=inputs_only)

    def input_roles(self) -> list[Any]:
        """The column roles predict needs (the task's inputs, not its targets)."""
        return input_roles(self._task)

    def input_table(self, data: DataArg, *, columns: dict[str, str]) -> Table:
        """Prediction inputs from a file or table, mapped to the task's input columns."""
        return self._table(data, split="test", columns=columns, inputs_only=True)

    # -- the verbs ------------------------------------------------------------
    def fit(self, *, train: DataArg = None, validation: DataArg = None, inputs: Sequence[str] | None = None,
            targets: Sequence[str] | None = None, output_dir: str | Path | None = None, max_epochs: int | None = None,
            max_steps: int | None = None, batch_size: int | str | None = None, learning_rate: float | str | None = None,
            columns: dict[str, str] | None = None, options: dict[str, Any] | None = None) -> Any:
        """Fine-tune on ``train`` (a file, a dataset directory, a Table, or ``inputs=``/``targets=`` lists).

        ``batch_size`` and ``learning_rate`` also take ``"auto"`` (docs/runs.md, docs/recipes.md).
        ``options`` takes any other flat option (``warmup_ratio``, ``precision``...).
        Returns a :class:`texttune.engine.FitResult` with the run directory and metrics.
        """
        from texttune.engine import fit as run_fit  # here: a server loads models through this module, never the engine

        refuse_backend(getattr(self._backbone, "model", None), "trained")
        named = {"max_epochs": max_epochs, "max_steps": max_steps, "batch_size": batch_size, "learning_rate": learning_rate}
        extra = {k: v for k, v in named.items() if v is not None} | (options or {})
        extra |= {f"{role}_column": col for role, col in (columns or {}).items()}
        # A path is recorded in config.yaml, so the run says what it trained on (and --resume finds it again).
        extra |= {f"{k}_file": str(v) for k, v in (("train", train), ("validation", validation))
                  if isinstance(v, (str, Path)) and f"{k}_file" not in extra}
        extra["output_dir"] = str(output_dir or Path("texttune-runs") / f"{self.task_name}-{_run_stamp()}")
        config = self._configure({**self._options, **extra})
        train = train if train is not None else config.data.train_file
        validation = validation if validation is not None else config.data.validation_file
        if train is None and inputs is None:
            raise ConfigError("no training data: pass --train-file (or train_file in --config)")
        if config.data.streaming:  # read as training goes (docs/scaling.md, "Data larger than memory")

            if not isinstance(train, (str, Path)) or validation is None:
                raise ConfigError("--streaming needs --train-file (JSONL/Parquet paths or glob patterns) and a --validation-file")
            train_table: Any = open_stream(str(train), roles=self._task.roles, overrides=config.data.columns)
        else:
            raw = pairs_table(self._task, inputs, targets) or raw_table(train, split="train")
            train_table = checked(self._task, select_columns(raw, self._task.roles, config.data.columns), training=True)
        val_table = None if validation is None else checked(
            self._task, self._table(validation, split="validation", columns=config.data.columns), training=False)
        test_table = self._test_table(config, validation)
        backbone = self._load_backbone()
        self.last_run = run_fit(task=self._task, backbone=backbone, config=config, train=train_table,
                                validation=val_table, run=RunDir(Path(config.train.output_dir)), test=test_table)
        return self.last_run

    def _test_table(self, config: RunConfig, validation: DataArg) -> Table | None:
        """The ``--test-file`` rows (checked like validation rows), or None; the validation data itself is refused:
        a test split scored on the rows that picked the checkpoint would not be a test."""
        test = config.data.test_file
        if test is None:
            return None
        if isinstance(validation, (str, Path)) and Path(test).resolve() == Path(validation).resolve():
            raise ConfigError(f"--test-file {test} is the --validation-file: the validation rows pick the best "
                              "checkpoint, so a test split must be other rows")
        return checked(self._task, self._table(test, split="test", columns=config.data.columns), training=False)

    def _configure(self, options: dict[str, Any]) -> RunConfig:
        """``self.config`` for a run; with ``resume``, the run's own config.yaml is the base (config_resume)."""
        saved = RunDir(Path(options["output_dir"])).config
        if options.get("resume") and saved.is_file():
            options, changes = resumed_options(task=self.task_name, given=options, saved=read_yaml(saved), source=saved,
                                               build=lambda o: run_config(self.task_name, o))
            for key, (old, new) in changes.items():
                log.info("resuming with %s=%r (the run had %r); config.yaml records the new value", key, new, old)
        before, self.config = self.config.task_options, run_config(self.task_name, options)
        if self.config.task_options != before:  # e.g. the resumed run's lengths or labels
            self._task = task_class(self.task_name)(self.config.task_options)
        return self.config

    def _generation(self, overrides: dict[str, Any]) -> Any:
        base = asdict(self.config.generation)
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
        return self.evaluation(data, columns=columns, max_samples=max_samples, predictions_file=predictions_file,
                               generation=generation, bootstrap=0).metrics

    def evaluation(self, data: DataArg, *, columns: dict[str, str] | None = None, max_samples: int | None = None,
                   predictions_file: str | Path | None = None, generation: dict[str, Any] | None = None,
                   bootstrap: int = DEFAULT_RESAMPLES, seed: int = 42) -> Evaluation:
        """:meth:`evaluate` with each metric's 95% bootstrap interval (``bootstrap`` resamples of the rows, seeded by
        ``seed``; 0: none) and the rows' count and content hash (docs/evaluation.md)."""
        check_limit("max_samples", max_samples)
        if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
            raise ConfigError(f"bootstrap must be a whole number of resamples, 0 (off) or more; got {bootstrap!r}")
        backbone = self._ready()
        table = checked(self._task, take(self._table(data, split="validation", columns=columns), max_samples), training=False)
        metrics, records = self._task.evaluate(backbone.model, table.rows, generation=self._generation(generation or {}))
        if predictions_file is not None:
            write_jsonl(predictions_file, records)
        found = uncertainty.task_intervals(self._task, records, resamples=bootstrap, seed=seed)
        return Evaluation(metrics=metrics, intervals=found, rows=len(table.rows), sha256=rows_hash(table.rows),
                          resamples=bootstrap if found else 0, seed=seed)

    def check_request_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Per-request options checked for this task (types, bounds, min <= max); None values dropped."""
        generation, own = split_request_options(self._task, options)
        self._generation(generation)  # contradictions across options (min_new_tokens > max_new_tokens...)
        return {**generation, **own}

    def predict(self, inputs: Sequence[Any], *, batch_size: int | None = None, **options: Any) -> list[Any]:
        """Predict for raw inputs (strings, or dicts keyed by column role); one output per input, in order.

        ``options``: the task's per-request options (``task.request_options``: generation options
        such as ``max_new_tokens`` and ``num_beams`` for generation tasks, ``aggregation`` for token
        classification, ``top_k`` for masked LM); any other is refused.
        """
        generation, own = split_request_options(self._task, options)
        gen = self._generation({**generation, "generation_batch_size": batch_size})
        rows = [self.check_input(x, i) for i, x in enumerate(inputs)]
        if not rows:
            return []
        outputs = self._task.predict(self._ready().model, rows, generation=gen, **own)
        return [o["output"] if set(o) == {"output"} else o for o in outputs]

    @property
    def served_names(self) -> list[str]:
        """The models a server offers from this one: its own name, then its adapters' (see ``load(adapters=...)``)."""
        return list(self._adapters.names) if self._adapters is not None else []

    def use_adapter(self, name: str) -> None:
        """Run the adapter loaded as ``name`` (or the model's own weights, under its own name) from now on."""
        if self._adapters is None or name not in self._adapters.names:
            valid = ", ".join(self._adapters.names) if self._adapters is not None else "none were loaded"
            raise ConfigError(f"no adapter named {name!r}; valid: {valid}")
        self._adapters.activate(name)

    def prompts(self, inputs: Sequence[Any], **options: Any) -> Any:
        """A generating task's inputs as :class:`~texttune.inference.generation.Prompts` (token ids in the fine-tuned
        prompt layout, the generation options resolved): what the server streams from. ConfigError for a task that
        does not generate or that has per-request options of its own among ``options``."""
        make = getattr(self._task, "prompts", None)
        if make is None:
            raise ConfigError(f"task {self.task_name!r} does not generate text")
        generation, own = split_request_options(self._task, options)
        if own:
            raise ConfigError(f"option {next(iter(own))!r} does not apply to generating from a prompt")
        rows = [self.check_input(x, i) for i, x in enumerate(inputs)]
        return make(self._ready().model, rows, generation=self._generation(generation))

    @property
    def task(self) -> Any:
        """The task object: its roles, request options and learned state (labels, lengths)."""
        return self._task

    @property
    def backbone(self) -> Any:
        """The backbone with its model and tokenizer loaded."""
        return self._ready()

    @property
    def inference_backend(self) -> str:
        """Which engine generates: "transformers", or "ctranslate2" (see ``load(backend=...)``)."""
        return backend_name(getattr(self._backbone, "model", None))

    def check_input(self, value: Any, index: int = 0) -> dict[str, Any]:
        """One predict input as the task's row; DataError (naming ``index``) when it cannot be used."""
        parse = getattr(self._task, "parse_input", None)
        return parse(value, index) if parse is not None else text_input_row(self._task, value, index)

    def push_to_hub(self, repo_id: str, *, private: bool = False, revision: str | None = None, report: bool = False,
                    dry_run: bool = False) -> Upload:
        """Publish this model's last run (or its saved model) to the hub: :func:`push` on ``last_run``."""
        if self.last_run is None:
            raise ConfigError("nothing to push yet: fit() first, or save() and push the directory with texttune.push")
        return push(self.last_run.run_dir, repo_id, private=private, revision=revision, report=report, dry_run=dry_run)

    def save(self, directory: str | Path) -> Path:
        """Save model, tokenizer and task metadata (loads with transformers and texttune.load)."""
        refuse_backend(getattr(self._backbone, "model", None),
                       "saved (it is saved already; 'texttune export' writes CTranslate2 copies)")
        if self._adapters is not None:
            raise ConfigError("a model loaded with several adapters cannot be saved as one; save each adapter's run")
        # Adapters still separate (fit with merge_adapters=False) are saved as adapters again.
        saved = save_trained(self._task, self._ready(), directory, columns=self.config.data.columns, peft=self.config.peft)
        write_model_card(saved, pipeline_tag=getattr(self._task, "pipeline_tag", None))  # no run: the card says it was not evaluated
        return saved


_API_CLASSES: dict[str, type[TaskModel]] = {}


def api_class(task: str) -> type[TaskModel]:
    """The public class of a registered task (``Summarization``...), made once from its registry entry."""
    cls = task_class(task)
    if task not in _API_CLASSES:
        roles = ", ".join(r.role for r in cls().roles)
        own = ", ".join(own_option_names(cls)) or "none"
        doc = (f"{cls.description[:1].upper()}{cls.description[1:]}. Columns: {roles}.\n\n"
               f"Task options (keyword arguments): {own}. Per-request predict options: "
               f"{', '.join(cls.request_options) or 'none'}.\n\n{(cls.__doc__ or '').strip()}")
        _API_CLASSES[task] = type(cls.api_name, (TaskModel,), {"task_name": task, "__doc__": doc, "__module__": __name__,
                                                                "__qualname__": cls.api_name})
    return _API_CLASSES[task]


def api_names() -> dict[str, str]:
    """Public class name -> task name, for every registered task."""
    return {cls.api_name: name for name, cls in TASKS.items()}


def __getattr__(name: str) -> Any:
    task = api_names().get(name)
    if task is None:
        raise AttributeError(f"module 'texttune.api' has no attribute {name!r}")
    return api_class(task)


def inspect_data(files: Sequence[str | Path], *, task: str, columns: dict[str, str] | None = None,
                 options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The data checks of ``files`` on their own (``texttune inspect``): the report a run writes to data_report.json.

    The first file is the reference (the training data): rows of the others whose input occurs in it are
    leaks. Splits are named by their file's stem. ``options``: the task's options and the checks' thresholds
    (``near_duplicate_threshold``, ``leak_warning_rate``); ``columns``: role -> column, as ``--<role>-column``.
    """
    if not files:
        raise ConfigError("pass one or more data files to inspect")
    model = api_class(task).from_options({**(options or {}), **{f"{r}_column": c for r, c in (columns or {}).items()}})
    tables, names = [], []
    for file in files:
        stem = Path(file).stem or str(file)
        name = stem if stem not in names else f"{stem}-{len(names) + 1}"
        names.append(name)
        tables.append((name, model._table(file, split="train" if not tables else "validation", columns=columns)))
    return check_tables(model._task, tables, settings=settings_of(model.config.data))


def saved_task(directory: str | Path) -> Any:
    """The task (default options) of a saved model, from its texttune.json alone: cheap, nothing is loaded.

    Lets the CLI check options against the model's task before loading the weights.
    """
    model_dir = find_model_dir(directory)
    task = read_metadata(model_dir)["task"]
    if task not in TASKS:
        raise ConfigError(f"{model_dir}: task {task!r} is not known to this texttune version")
    return task_class(task)()


def push(directory: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
         report: bool = False, dry_run: bool = False) -> Upload:
    """Publish a saved model (a run or its model/) to the Hugging Face hub repository ``repo_id`` (OWNER/NAME).

    The model directory goes up as it is, its model card refreshed from the run; ``report``: the run's HTML report
    too; ``dry_run``: only say what would be sent. One-line ConfigError offline or when the hub refuses
    (runs/publish.py).
    """
    model_dir = find_model_dir(directory)
    task = saved_task(model_dir)
    if hasattr(task, "family"):  # a text-to-text task's pipeline depends on its backbone's family
        task.family = read_metadata(model_dir).get("family", task.family)
    return publish.push(model_dir, repo_id, pipeline_tag=getattr(task, "pipeline_tag", None), private=private,
                        revision=revision, report=report, dry_run=dry_run)


def scoring_task(directory: str | Path) -> Any:
    """The task of a saved model (a run directory or model/) restored from its texttune.json without a tokenizer or
    weights: enough to score records (``score_records``), e.g. for ``texttune runs compare``'s paired test."""
    model_dir = find_model_dir(directory)
    metadata = read_metadata(model_dir)
    task = saved_task(model_dir)
    task.restore(metadata.get("task_state") or {})
    return task


def check_load(directory: str | Path, *, backend: str | None = None, compute_type: str | None = None,
               threads: int | None = None, device: str | None = None, dtype: str | None = None) -> None:
    """What :func:`load` would refuse before reading weights: options, task, backend package, device and dtype.

    Cheap (no weights are read), so the CLI calls it before reading its inputs: ``--device cuda``
    on a machine without a GPU fails at once, not after stdin is consumed.
    """
    inference = inference_config(backend=backend, compute_type=compute_type, threads=threads, device=device, dtype=dtype)
    model_dir = find_model_dir(directory)
    saved_task(model_dir)
    check_backend(model_dir, read_metadata(model_dir), inference)


def load(directory: str | Path, *, backend: str | None = None, compute_type: str | None = None,
         threads: int | None = None, device: str | None = None, dtype: str | None = None,
         adapters: dict[str, str | Path] | None = None) -> TaskModel:
    """Load a model saved by texttune (a run directory, its ``model/`` directory, or a ``texttune export``).

    ``device``: ``"auto"`` (default: a CUDA GPU, else Apple's MPS, else the CPU), ``"cpu"``, ``"cuda"``,
    ``"cuda:N"`` or ``"mps"``; ``dtype``: ``"auto"`` (default: bfloat16 on a GPU that supports it,
    else float32), ``"float32"``, ``"bfloat16"`` or ``"float16"`` (GPU only, not for T5-family
    models). A device this machine lacks is a ConfigError, never a silent fallback (docs/inference.md).

    ``backend="ctranslate2"`` generates with CTranslate2 instead of transformers (2-2.5x the
    examples/s for SmolLM2 at int8 on 2 CPU cores, docs/inference.md): the model is converted
    once, cached under ``$TEXTTUNE_HOME/ctranslate2``, at ``compute_type`` (default int8 on CPU,
    float16 on GPU; it takes ``compute_type`` instead of ``dtype``). An export always runs on
    CTranslate2. ``threads``: CTranslate2 workers (one thread each), or torch's process-wide
    threads for transformers. Only generation tasks run on CTranslate2; others get a clear error.

    ``adapters``: {name: run or model directory} of LoRA adapters saved apart (``--no-merge-adapters``), for the same
    task and backbone, loaded over this model unmerged; :meth:`TaskModel.use_adapter` picks the one that runs
    (``texttune serve --adapter``; backbones/adapter_set.py).
    """
    inference = inference_config(backend=backend, compute_type=compute_type, threads=threads, device=device, dtype=dtype)
    model_dir = find_model_dir(directory)
    meta = read_metadata(model_dir)
    saved_task(model_dir)  # a task this version does not know is refused before anything loads
    obj = api_class(meta["task"])(backbone=str(model_dir))  # task options come back through restore() below
    obj.config = replace(obj.config, data=replace(obj.config.data, columns=dict(meta.get("columns") or {})))
    obj._backbone = saved_backbone(model_dir, meta, inference, merge_adapters=not adapters)
    if adapters:
        obj._adapters = attach_adapters(obj._backbone, {n: find_model_dir(d) for n, d in adapters.items()},
                                        served=model_name(model_dir), metadata=meta, read=read_metadata)
    obj._task.restore(meta.get("task_state", {}), tokenizer=obj._backbone.tokenizer, model=obj._backbone.model)
    return obj
