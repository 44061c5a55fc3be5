"""Typed run configuration: one dataclass per concern, one flat option namespace.

Every field below is an option with the same name everywhere: ``--max-steps`` on
the command line, ``max_steps:`` in a ``--config`` YAML file, ``max_steps=`` in
the Python API. Field names are unique across sections so the flat namespace is
unambiguous (a unit test checks this). Column options are per task
(``--text-column``, ``--summary-column``, ...): each task declares its column
roles and they land in :attr:`DataConfig.columns`.

Precedence: dataclass defaults < YAML file < command-line flags. Unknown keys and
badly typed values raise :class:`~texttune.errors.ConfigError` naming the key,
the value and the valid choices. Nothing here touches files other than reading
the YAML file it is given (``config_yaml.py``); range checks and contradictions
are in ``config_checks.py``.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from texttune.config_checks import check_positive, validate, validate_generation
from texttune.errors import ConfigError, choices
from texttune.peft_config import PeftOptions


def option(default: Any, help: str, *, choices: tuple[str, ...] | None = None) -> Any:  # noqa: A002
    """A dataclass field carrying its ``--help`` text and allowed values."""
    return field(default=default, metadata={"help": help, "choices": choices})


#: Lightning strategies texttune accepts (``--strategy``). ddp_spawn is left out: it pickles the
#: module, and the run's evaluation recorder is a closure.
STRATEGIES: tuple[str, ...] = ("auto", "ddp", "ddp_find_unused_parameters_true", "fsdp", "fsdp_cpu_offload",
                               "deepspeed_stage_1", "deepspeed_stage_2", "deepspeed_stage_2_offload",
                               "deepspeed_stage_3", "deepspeed_stage_3_offload")


@dataclass
class DataConfig:
    """Where the data comes from and how it is cut to size."""

    train_file: str | None = option(None, "Training data: CSV, TSV, JSON, JSONL, Parquet, a datasets.save_to_disk directory, or a hub dataset name (online only).")
    validation_file: str | None = option(None, "Validation data (same formats). When omitted, a seeded fraction of the training data is held out.")
    data_file: str | None = option(None, "Data to evaluate on or predict from (evaluate/predict).")
    columns: dict[str, str] = field(default_factory=dict, metadata={"help": "column role -> column name", "choices": None})
    validation_fraction: float = option(0.1, "Fraction of training rows held out for validation when no validation file is given.")
    max_train_samples: int | None = option(None, "Use at most this many training rows (taken after a seeded shuffle).")
    max_eval_samples: int | None = option(None, "Use at most this many validation/evaluation rows (the first ones).")
    max_predict_samples: int | None = option(None, "Predict at most this many rows (the first ones).")
    max_source_length: int = option(512, "Inputs longer than this many tokens are truncated (the count is reported).")
    max_target_length: int = option(128, "Targets longer than this many tokens are truncated for training (the count is reported).")
    streaming: bool = option(False, "Read the training data as a stream (JSONL/Parquet files or glob patterns such as 'shards/*.jsonl') "
                             "instead of loading it; needs --max-steps and --validation-file.")
    shuffle_buffer: int = option(10_000, "With --streaming: rows held in the shuffle buffer (larger mixes better, costs memory).")


@dataclass
class TaskOptions:
    """Options that change what the task asks of the backbone."""

    prefix: str | None = option(None, "Text put before every input (T5 prefix, or the instruction for decoder-only backbones). Default: the task's own; '' for none.")
    source_lang: str | None = option(None, "Translation: source language code (also the default source column), e.g. en.")
    target_lang: str | None = option(None, "Translation: target language code (also the default target column), e.g. fr.")
    max_length: int | None = option(None, "Encoder and language-model tasks: tokens per window or chunk (default: the task's own).")
    label_list: str | None = option(None, "Token classification: comma-separated labels in id order (default: inferred from the training data).")
    label_all_tokens: bool = option(False, "Token classification: label every sub-token (B- becomes I- after the first) instead of only the first.")
    aggregation: str = option("simple", "Token classification: how predict groups sub-token predictions into entities.", choices=("none", "simple", "first", "max", "average"))
    mlm_probability: float = option(0.15, "Masked LM: fraction of tokens to mask.")
    whole_word_masking: bool = option(False, "Masked LM: mask whole words instead of single sub-tokens.")
    pad_last_chunk: bool = option(False, "Language modelling: pad the last partial chunk instead of dropping it.")
    from_scratch: str | None = option(None, "Causal LM: train a new model of this size (tiny, small) with a tokenizer trained on the corpus, instead of fine-tuning.", choices=("tiny", "small"))
    vocab_size: int = option(8000, "Causal LM from scratch: vocabulary size of the trained tokenizer.")
    stride: int = option(128, "Question answering: tokens of overlap between windows of a long context.")
    max_answer_length: int = option(30, "Question answering: longest answer, in tokens.")
    n_best: int = option(20, "Question answering: start/end candidates considered per window.")
    version_2: bool = option(False, "Question answering: allow 'no answer' (SQuAD v2).")
    null_threshold: float = option(0.0, "Question answering v2: answer only when the best span beats no-answer by this score margin.")


@dataclass
class ModelConfig:
    """Which pretrained model to start from."""

    backbone: str | None = option(None, "Hub name, local model directory, or offline alias (smollm2-135m, minilm-bert2bert). Default: the task's offline alias.")
    trust_remote_code: bool = option(False, "Allow a backbone to run its own Python code. Off: only enable it for repositories you trust.")


@dataclass
class TrainConfig:
    """How the Lightning Trainer fits the model."""

    output_dir: str | None = option(None, "Run directory to create (config, metrics, checkpoints, model/, predictions).")
    batch_size: int | str = field(default=8, metadata={
        "help": "Training examples per step on each device, or 'auto': the largest power of two whose forward and "
                "backward pass at the longest training sequence fits in memory (recorded in batch_size.json).",
        "choices": None, "special": ("auto",)})
    effective_batch_size: int | None = option(None, "With --batch-size auto: examples per optimizer step to keep, via gradient accumulation (auto-batch x accumulation = this).")
    max_epochs: int | None = option(None, "Stop after this many epochs (default 3 when --max-steps is not given).")
    max_steps: int | None = option(None, "Stop after this many optimizer steps.")
    learning_rate: float = option(5e-5, "Peak learning rate of AdamW.")
    lr_schedule: str = option("linear", "Learning-rate schedule after warmup.", choices=("linear", "cosine", "constant"))
    warmup_ratio: float = option(0.0, "Fraction of the optimizer steps spent warming the learning rate up from 0.")
    weight_decay: float = option(0.0, "AdamW weight decay (not applied to biases and norms).")
    accumulate_grad_batches: int = option(1, "Accumulate gradients over this many batches per optimizer step.")
    gradient_clip_val: float | None = option(1.0, "Clip the gradient norm to this value (0 or none to disable).")
    seed: int = option(42, "Seed for data order, held-out split, dropout and sampling.")
    precision: str = option("32", "Numeric precision. fp16 is refused for T5-family backbones (it overflows); use bf16-mixed.", choices=("32", "bf16-mixed", "16-mixed"))
    accelerator: str = option("auto", "Lightning accelerator.", choices=("auto", "cpu", "gpu", "mps"))
    devices: int | str = field(default=1, metadata={
        "help": "Devices (GPUs, or CPU processes) per node, or 'auto' for all visible ones. Global batch per optimizer "
                "step = batch_size x devices x num_nodes x accumulate_grad_batches (docs/scaling.md).",
        "choices": None, "special": ("auto",)})
    num_nodes: int = option(1, "Machines taking part in training (launch with torchrun or SLURM; see docs/scaling.md).")
    strategy: str = option("auto", "Lightning's distributed strategy: ddp replicates the model; fsdp and deepspeed_stage_3 "
                           "shard it (deepspeed needs the deepspeed package).", choices=STRATEGIES)
    eval_every_steps: int | None = option(None, "Validate (and checkpoint) every N optimizer steps instead of once per epoch.")
    checkpoint_metric: str | None = option(None, "Metric that picks the best checkpoint, e.g. rougeL, bleu or loss. Default: the task's main metric.")
    early_stopping_patience: int | None = option(None, "Stop when the checkpoint metric has not improved for this many evaluations.")
    resume: str | None = option(None, "Continue an interrupted run: 'latest' (the run directory's last checkpoint) or a checkpoint path.")
    checkpoint_every_steps: int | None = option(None, "Also write checkpoints/last.ckpt every N optimizer steps between evaluations, so a crash loses at most N steps.")
    checkpoint_every_minutes: float | None = option(10.0, "Also write checkpoints/last.ckpt after this many minutes of training since the last one, so a crash loses minutes, not the run (0 or none: off).")
    baselines: bool = option(True, "Before training, evaluate the untrained model (zero-shot) and the task's simple baseline.")
    progress_bar: bool = option(True, "Show progress bars.")
    tensorboard: bool = option(True, "Also log to TensorBoard (RUN_DIR/logs/tensorboard; CSV is always written).")
    mlflow: bool = option(False, "Also log to MLflow (needs the mlflow package).")
    mlflow_tracking_uri: str | None = option(None, "MLflow tracking URI. Default: $MLFLOW_TRACKING_URI, else a SQLite file in the run directory.")
    log_every_steps: int = option(5, "Log loss, learning rate and throughput every N steps (fewer for runs with few steps, so each has a curve).")
    samples_per_eval: int = option(16, "Predictions saved at each evaluation in RUN_DIR/samples/ (0: none).")
    num_workers: int = option(0, "DataLoader worker processes.")
    group_by_length: bool = option(True, "Batch training examples of similar length together (seeded, batches still in random order) so little compute goes to padding.")


@dataclass
class GenerationConfig:
    """Decoding options shared by evaluate, predict and serve."""

    max_new_tokens: int | None = option(None, "Most tokens to generate. Default: from the target lengths seen in training (never a silent 20).")
    min_new_tokens: int | None = option(None, "Fewest tokens to generate.")
    num_beams: int = option(1, "Beam search width (1 = greedy or sampling).")
    do_sample: bool = option(False, "Sample instead of greedy/beam decoding.")
    temperature: float = option(1.0, "Sampling temperature (with --do-sample).")
    top_k: int | None = option(None, "Sample from the k most likely tokens (with --do-sample).")
    top_p: float | None = option(None, "Nucleus sampling probability mass (with --do-sample).")
    no_repeat_ngram_size: int | None = option(None, "Never repeat an n-gram of this size.")
    length_penalty: float | None = option(None, "Beam search length penalty (>1 favours longer outputs).")
    repetition_penalty: float | None = option(None, "Penalty for repeated tokens (>1 discourages repetition).")
    generation_batch_size: int = option(16, "Inputs per generation batch in evaluate/predict (independent of --batch-size).")


#: Per-request generation options (predict's keyword arguments, the server's request fields).
GENERATION_OPTIONS: tuple[str, ...] = (
    "max_new_tokens", "min_new_tokens", "num_beams", "do_sample", "temperature", "top_k", "top_p",
    "no_repeat_ngram_size", "length_penalty", "repetition_penalty",
)


#: Inference backends for evaluate, predict and serve (``texttune.inference``).
BACKENDS: tuple[str, ...] = ("transformers", "ctranslate2")
#: CTranslate2 compute types (weights and arithmetic); "default" keeps an export's own quantization.
COMPUTE_TYPES: tuple[str, ...] = ("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                                  "float32", "float16", "bfloat16")
COMPUTE_TYPE_HELP = ("With --backend ctranslate2: weight and arithmetic types (default: int8 on CPU, float16 on GPU; "
                     "an export keeps its own quantization).")


@dataclass
class ServeConfig:
    """``texttune serve``: where to listen, how to batch, and the limits that protect the server."""

    host: str = option("127.0.0.1", "Address to bind. Loopback by default; use 0.0.0.0 only behind auth (--api-key-env).")
    port: int = option(8000, "TCP port (0 picks a free one and prints it).")
    api_key_env: str | None = option(None, "Name of the environment variable holding the API key. Requests then need 'Authorization: Bearer KEY' or 'X-API-Key: KEY'.")
    max_batch_size: int = option(16, "Most inputs run together in one model call (1 turns dynamic batching off).")
    max_wait_ms: float = option(10.0, "How long the first queued input waits for others to join its batch.")
    max_queue: int = option(256, "Most inputs waiting for the model; beyond it requests get 503 with Retry-After.")
    request_timeout: float = option(60.0, "Seconds a request may take, queue included, before it gets 504.")
    max_body_bytes: int = option(1_048_576, "Largest request body in bytes (413 beyond).")
    max_input_chars: int = option(20_000, "Longest single input in characters, all its fields together (413 beyond).")
    max_inputs_per_request: int = option(64, "Most inputs in one request (422 beyond).")
    max_new_tokens_limit: int = option(512, "Largest max_new_tokens a request may ask for (422 beyond).")
    max_beams_limit: int = option(8, "Largest num_beams a request may ask for (422 beyond).")
    threads: int | None = option(None, "Threads for the model: torch intra-op threads, or CTranslate2 workers of one thread each (default: torch's choice; one worker per core).")
    backend: str | None = option(None, "Inference backend. Default: the model's own (ctranslate2 for a 'texttune export', else transformers).", choices=BACKENDS)
    compute_type: str | None = option(None, COMPUTE_TYPE_HELP, choices=COMPUTE_TYPES)
    access_log: bool = option(False, "Log every request (uvicorn's access log).")


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "task": TaskOptions,
    "model": ModelConfig,
    "train": TrainConfig,
    "generation": GenerationConfig,
    "peft": PeftOptions,
}


@dataclass
class RunConfig:
    """Everything a run needs, resolved. Written to ``config.yaml`` in each run."""

    task: str
    data: DataConfig = field(default_factory=DataConfig)
    task_options: TaskOptions = field(default_factory=TaskOptions)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    peft: PeftOptions = field(default_factory=PeftOptions)

    def flat(self) -> dict[str, Any]:
        """The flat option mapping (the YAML layout ``--config`` reads back)."""
        out: dict[str, Any] = {"task": self.task}
        for section in (self.data, self.task_options, self.model, self.train, self.generation, self.peft):
            for key, value in asdict(section).items():
                if key == "columns":
                    out.update({f"{role}_column": name for role, name in value.items()})
                else:
                    out[key] = value
        return out


def option_fields() -> dict[str, tuple[str, Any]]:
    """Map every flat option name to (section name, dataclass field)."""
    out: dict[str, tuple[str, Any]] = {}
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            if f.name == "columns":
                continue
            out[f.name] = (section, f)
    return out


def _allowed(annotation: Any) -> tuple[type, bool]:
    """(base type, whether None is allowed) for ``int | None`` style annotations."""
    if isinstance(annotation, str):
        annotation = eval(annotation, {}, {})  # noqa: S307 - our own annotations only
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        base = next(a for a in args if a is not type(None))
        return base, type(None) in args  # int | str (batch_size: 8 or "auto") is not nullable
    return annotation, False


#: How error messages name the value types of options ("needs an integer, got 'two'").
_KIND_NAMES: dict[type, str] = {bool: "true or false", int: "an integer", float: "a finite number", str: "a text value"}


def coerce(name: str, value: Any, annotation: Any, valid: tuple[str, ...] | None) -> Any:
    """Check and convert one option value (from YAML or the CLI) to its declared type."""
    base, nullable = _allowed(annotation)
    if value is None or (isinstance(value, str) and value.lower() in {"none", "null"} and base is not str):
        if nullable:
            return None
        raise ConfigError(f"option {name!r} needs a value of type {base.__name__}, got none")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in {"true", "yes", "1", "on", "false", "no", "0", "off"}:
                return value.lower() in {"true", "yes", "1", "on"}
            raise ValueError
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            converted: Any = int(value)
        elif base is float:
            if isinstance(value, bool):
                raise ValueError
            converted = float(value)
            if not math.isfinite(converted):
                raise ValueError
        else:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            converted = str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"option {name!r} needs {_KIND_NAMES.get(base, base.__name__)}, got {value!r}") from None
    if valid is not None and converted not in valid:
        raise ConfigError(f"option {name!r} got {converted!r}; valid choices: {choices(valid)}")
    return converted


def _suggest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def build_config(task: str, options: dict[str, Any], *, column_roles: tuple[str, ...]) -> RunConfig:
    """Build a :class:`RunConfig` from a flat mapping of option names to values.

    ``column_roles`` are the task's column roles: ``<role>_column`` keys are
    accepted for them and no others. Keys may use dashes or underscores.
    """
    known = option_fields()
    column_keys = {f"{role}_column": role for role in column_roles}
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    columns: dict[str, str] = {}
    for raw_key, value in options.items():
        key = raw_key.replace("-", "_")
        if key == "task":
            if value != task:
                raise ConfigError(f"config says task {value!r} but the command is for task {task!r}")
            continue
        if key in column_keys:
            columns[column_keys[key]] = coerce(key, value, str, None)
            continue
        if key not in known:
            valid = sorted([*known, *column_keys])
            raise ConfigError(
                f"unknown option {raw_key!r}{_suggest(key, valid)}; valid options: {', '.join(valid)}"
            )
        section, f = known[key]
        special = f.metadata.get("special", ())
        if isinstance(value, str) and value.strip().lower() in special:  # e.g. batch_size: auto
            sections[section][key] = value.strip().lower()
            continue
        try:
            sections[section][key] = coerce(key, value, f.type, f.metadata.get("choices"))
        except ConfigError:
            if not special:
                raise
            raise ConfigError(f"option {key!r} needs an integer or {choices(special)}, got {value!r}") from None
    config = RunConfig(
        task=task,
        data=DataConfig(columns=columns, **sections["data"]),
        task_options=TaskOptions(**sections["task"]),
        model=ModelConfig(**sections["model"]),
        train=TrainConfig(**sections["train"]),
        generation=GenerationConfig(**sections["generation"]),
        peft=PeftOptions(**sections["peft"]),
    )
    validate(config)
    return config


def generation_from_mapping(values: dict[str, Any]) -> GenerationConfig:
    """A GenerationConfig from a partial mapping (API keyword arguments, HTTP bodies)."""
    known = {f.name: f for f in fields(GenerationConfig)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown generation option {key!r}; valid: {', '.join(sorted(known))}")
        f = known[key]
        kwargs[key] = coerce(key, value, f.type, f.metadata.get("choices"))
    config = GenerationConfig(**kwargs)
    validate_generation(config)
    return config


def defaults_of(cls: type) -> dict[str, Any]:
    """Default values of a section dataclass (for help text and diffs)."""
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


def serve_config(options: dict[str, Any]) -> ServeConfig:
    """A checked :class:`ServeConfig` from flat options (CLI flags or API keywords)."""
    known = {f.name: f for f in fields(ServeConfig)}
    kwargs: dict[str, Any] = {}
    for raw_key, value in options.items():
        key = raw_key.replace("-", "_")
        if key not in known:
            raise ConfigError(f"unknown serve option {raw_key!r}{_suggest(key, list(known))}; valid: {', '.join(sorted(known))}")
        f = known[key]
        kwargs[key] = coerce(key, value, f.type, f.metadata.get("choices"))
    config = ServeConfig(**kwargs)
    for name in ("max_batch_size", "max_queue", "request_timeout", "max_body_bytes", "max_input_chars",
                 "max_inputs_per_request", "max_new_tokens_limit", "max_beams_limit", "threads"):
        check_positive(name, getattr(config, name))
    check_positive("max_wait_ms", config.max_wait_ms, allow_zero=True)
    if not 0 <= config.port <= 65535:
        raise ConfigError(f"option 'port' must be in [0, 65535], got {config.port}")
    if config.max_queue < config.max_inputs_per_request:
        raise ConfigError(f"max_queue ({config.max_queue}) is smaller than max_inputs_per_request "
                          f"({config.max_inputs_per_request}): a full-size request could never be queued")
    return config
