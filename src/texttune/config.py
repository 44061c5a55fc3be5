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

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from texttune.config_checks import check_positive, validate, validate_generation
from texttune.config_fields import coerce, coerce_field, not_an_option, option, suggest
from texttune.errors import ConfigError
from texttune.peft_config import PeftOptions

#: Lightning strategies texttune accepts (``--strategy``). ddp_spawn is left out: it pickles the
#: module, and the run's evaluation recorder is a closure.
STRATEGIES: tuple[str, ...] = ("auto", "ddp", "ddp_find_unused_parameters_true", "fsdp", "fsdp_cpu_offload",
                               "deepspeed_stage_1", "deepspeed_stage_2", "deepspeed_stage_2_offload",
                               "deepspeed_stage_3", "deepspeed_stage_3_offload")


@dataclass
class DataConfig:
    """Where the data comes from and how it is cut to size."""

    train_file: str | None = option(None, "Training data: CSV, TSV, JSON, JSONL, Parquet, a datasets.save_to_disk directory, or a hub "
                                          "dataset name (online only).")
    validation_file: str | None = option(None, "Validation data (same formats). When omitted, a seeded fraction of the training data is "
                                               "held out.")
    test_file: str | None = option(None, "Test data (same formats): scored once at the end with the best weights, never "
                                         "used to pick a checkpoint or stop early; the \"test\" section of metrics.json.")
    data_file: str | None = option(None, "Data to evaluate on or predict from (evaluate/predict).")
    columns: dict[str, str] = field(default_factory=dict, metadata={"help": "column role -> column name", "choices": None})
    validation_fraction: float = option(0.1, "Fraction of training rows held out for validation when no validation file is given.")
    max_train_samples: int | None = option(None, "Use at most this many training rows (taken after a seeded shuffle).")
    max_eval_samples: int | None = option(None, "Use at most this many validation/evaluation rows (the first ones).")
    max_predict_samples: int | None = option(None, "Predict at most this many rows (the first ones).")
    streaming: bool = option(False, "Read the training data as a stream (JSONL/Parquet files or glob patterns such as 'shards/*.jsonl') "
                             "instead of loading it; needs --max-steps and --validation-file.")
    shuffle_buffer: int = option(10_000, "With --streaming: rows held in the shuffle buffer (larger mixes better, costs memory).")
    data_checks: bool = option(True, "Check the data before training: duplicates, validation rows whose input is in the training "
                                     "data (leaks), near-duplicates, conflicting targets, empty cells, lengths and the task's "
                                     "own checks; data_report.json and a summary in the log (docs/data-checks.md).")
    dedupe: bool = option(False, "Remove the training rows whose input also occurs in the validation (or --test-file) data "
                                 "(leaks, after normalisation); never touches the evaluation data. Says how many it removed.")
    near_duplicate_threshold: float = option(0.9, "Data checks: Jaccard similarity of word sets (MinHash) at which an "
                                                  "evaluation row counts as a near-duplicate of a training row.", gt=0, le=1)
    leak_warning_rate: float = option(0.01, "Data checks: warn loudly when the share of leaked, near-duplicate or "
                                            "conflicting rows of a split is above this.", ge=0, le=1)


@dataclass
class ModelConfig:
    """Which pretrained model to start from."""

    backbone: str | None = option(None, "Hub name, local model directory, offline alias (smollm2-135m, minilm-bert2bert), or "
                                  "scratch:tiny / scratch:small (a new Llama and a tokenizer trained on the training data). "
                                  "Default: the task's offline alias.")
    vocab_size: int | None = option(None, "With --backbone scratch:SIZE: vocabulary size of the tokenizer trained on the "
                                    "training data (default 8000).", ge=300)
    trust_remote_code: bool = option(False, "Allow a backbone to run its own Python code. Off: only enable it for repositories you trust.")


@dataclass
class TrainConfig:
    """How the Lightning Trainer fits the model."""

    output_dir: str | None = option(None, "Run directory to create (config, metrics, checkpoints, model/, predictions).")
    batch_size: int | str = field(default=8, metadata={
        "help": "Training examples per step on each device, or 'auto': the largest power of two whose forward and "
                "backward pass at the longest training sequence fits in memory (recorded in batch_size.json).",
        "choices": None, "special": ("auto",)})
    effective_batch_size: int | None = option(None, "With --batch-size auto: examples per optimizer step to keep, via gradient "
                                                    "accumulation (auto-batch x accumulation = this).")
    max_epochs: int | None = option(None, "Stop after this many epochs (default 3 when --max-steps is not given).")
    max_steps: int | None = option(None, "Stop after this many optimizer steps.")
    learning_rate: float | str = field(default=5e-5, metadata={
        "help": "Peak learning rate of AdamW, or 'auto': a short learning-rate range test on the training data picks it "
                "before training (the weights, optimizer and data order are restored; the pick is recorded in "
                "lr_find.json and config.yaml; docs/recipes.md).",
        "choices": None, "special": ("auto",)})
    head_learning_rate: float | None = option(None, "Peak learning rate of the layers the task adds (a classifier, a span "
                                                   "head), which start from random weights. Default: --learning-rate.")
    lr_schedule: str = option("linear", "Learning-rate schedule after warmup.", choices=("linear", "cosine", "constant"))
    warmup_ratio: float = option(0.0, "Fraction of the optimizer steps spent warming the learning rate up from 0; when above 0, "
                                      "at least 10 steps (at most a fifth of the run).")
    weight_decay: float = option(0.0, "AdamW weight decay (not applied to biases and norms).")
    accumulate_grad_batches: int = option(1, "Accumulate gradients over this many batches per optimizer step.")
    gradient_clip_val: float | None = option(1.0, "Clip the gradient norm to this value (0 or none to disable).")
    seed: int = option(42, "Seed for data order, held-out split, dropout and sampling.")
    precision: str = option("32", "Numeric precision. fp16 is refused for T5-family backbones (it overflows); use "
                                  "bf16-mixed.", choices=("32", "bf16-mixed", "16-mixed"))
    accelerator: str = option("auto", "Lightning accelerator.", choices=("auto", "cpu", "gpu", "mps"))
    devices: int | str = field(default=1, metadata={
        "help": "Devices (GPUs, or CPU processes) per node, or 'auto' for all visible ones. Global batch per optimizer "
                "step = batch_size x devices x num_nodes x accumulate_grad_batches (docs/scaling.md).",
        "choices": None, "special": ("auto",)})
    num_nodes: int = option(1, "Machines taking part in training (launch with torchrun or SLURM; see docs/scaling.md).")
    strategy: str = option("auto", "Lightning's distributed strategy: ddp replicates the model; fsdp and deepspeed_stage_3 "
                           "shard it (deepspeed needs the deepspeed package).", choices=STRATEGIES)
    eval_every_steps: int | None = option(None, "Validate (and checkpoint) every N optimizer steps instead of once per epoch.")
    checkpoint_metric: str | None = option(None, "Metric that picks the best checkpoint, e.g. rougeL, bleu or loss. Default: the task's "
                                                 "main metric.")
    early_stopping_patience: int | None = option(None, "Stop when the checkpoint metric has not improved for this many evaluations.")
    resume: str | None = option(None, "Continue an interrupted run: 'latest' (the run directory's last checkpoint) or a checkpoint path.")
    checkpoint_every_steps: int | None = option(None, "Also write checkpoints/last.ckpt every N optimizer steps between evaluations, so a "
                                                      "crash loses at most N steps.")
    checkpoint_every_minutes: float | None = option(10.0, "Also write checkpoints/last.ckpt after this many minutes of training since the "
                                                          "last one, so a crash loses minutes, not the run (0 or none: off).")
    baselines: bool = option(True, "Before training, evaluate the untrained model (zero-shot) and the task's simple baseline.")
    bootstrap: int = option(1000, "Bootstrap resamples of the evaluation rows (seeded by --seed) for the 95 percent interval of every "
                                  "metric and the paired tests against the baselines and zero-shot (0: off; docs/evaluation.md).",
                            ge=0, le=100_000)
    progress_bar: bool = option(True, "Show progress bars.")
    tensorboard: bool = option(True, "Also log to TensorBoard (RUN_DIR/logs/tensorboard; CSV is always written).")
    mlflow: bool = option(False, "Also log to MLflow (needs the mlflow package).")
    mlflow_tracking_uri: str | None = option(None, "MLflow tracking URI. Default: $MLFLOW_TRACKING_URI, else a SQLite file in the run "
                                                   "directory.")
    log_every_steps: int = option(5, "Log loss, learning rate and throughput every N steps (fewer for runs with few steps, so each has a "
                                     "curve).")
    samples_per_eval: int = option(16, "Predictions saved at each evaluation in RUN_DIR/samples/ (0: none).")
    num_workers: int = option(0, "DataLoader worker processes.")
    group_by_length: bool = option(True, "Batch training examples of similar length together (seeded, batches still in random order) so "
                                         "little compute goes to padding.")
    packing: bool | None = option(None, "Decoder-only training (chat, causal-lm, text-to-text on a decoder): lay each batch's examples "
                                        "end to end in rows of up to the task's maximum length, attention kept inside each example, "
                                        "the same loss and steps as the padded batch. Unset, on where measured faster "
                                        "(FlashAttention 2; --no-group-by-length), off with length-grouped batches "
                                        "on SDPA (docs/speed.md); the run's environment.json says which and why.")


#: Smallest temperature and repetition penalty (logits are divided by them: 1e-300 overflows to inf).
MIN_DIVISOR = 0.01


@dataclass
class GenerationConfig:
    """Decoding options shared by evaluate, predict and serve (generation tasks), and the evaluation batch size (all tasks).

    Declared once: the CLI flags, the API's ``predict(**options)``, the client and the server's
    request schema (with these bounds; the server caps two of them further) all come from here.
    """

    max_new_tokens: int | None = option(None, "Most tokens to generate. Default: from the target lengths seen in training (never a silent "
                                              "20).", ge=1)
    min_new_tokens: int | None = option(None, "Fewest tokens to generate.", ge=0)
    num_beams: int = option(1, "Beam search width (1 = greedy or sampling).", ge=1)
    do_sample: bool = option(False, "Sample instead of greedy/beam decoding.")
    temperature: float = option(1.0, "Sampling temperature (with --do-sample).", ge=MIN_DIVISOR, le=100)
    top_k: int | None = option(None, "Sample from the k most likely tokens (with --do-sample).", ge=1, le=1000)
    top_p: float | None = option(None, "Nucleus sampling probability mass (with --do-sample).", gt=0, le=1)
    no_repeat_ngram_size: int | None = option(None, "Never repeat an n-gram of this size.", ge=1, le=100)
    length_penalty: float | None = option(None, "Beam search length penalty (>1 favours longer outputs).", ge=-100, le=100)
    repetition_penalty: float | None = option(None, "Penalty for repeated tokens (>1 discourages repetition).", ge=MIN_DIVISOR, le=100)
    generation_batch_size: int = option(16, "Inputs per batch when evaluating (the validation loss pass and, for generation "
                                        "tasks, generating) and predicting; independent of --batch-size.", ge=1)


#: Per-request generation options (predict's keyword arguments, the server's request fields).
GENERATION_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(GenerationConfig) if f.name != "generation_batch_size")
#: What a task that does not generate takes from GenerationConfig.
EVALUATION_ONLY: tuple[str, ...] = ("generation_batch_size",)


#: Inference backends for evaluate, predict and serve (``texttune.inference``).
BACKENDS: tuple[str, ...] = ("transformers", "ctranslate2")
#: CTranslate2 compute types (weights and arithmetic); "default" keeps an export's own quantization.
COMPUTE_TYPES: tuple[str, ...] = ("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                                  "float32", "float16", "bfloat16")
COMPUTE_TYPE_HELP = ("With --backend ctranslate2: weight and arithmetic types (default: int8 on CPU, float16 on GPU; "
                     "an export keeps its own quantization).")
#: Floating-point types of a transformers model at inference (``--dtype``; ``texttune.inference.device``).
DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
DEVICE_HELP = ("Where the model runs: auto (a CUDA GPU, else Apple's MPS, else the CPU), cpu, cuda, cuda:N or mps "
               "(CTranslate2: cpu or cuda[:N]).")
DTYPE_HELP = ("Floating-point type of the weights (transformers backend): auto (bfloat16 on a GPU that supports it, else "
              "float32), float32, bfloat16, or float16 (GPU only; refused for T5-family models). CTranslate2 takes "
              "--compute-type instead.")


@dataclass
class ServeConfig:
    """``texttune serve``: where to listen, how to batch, and the limits that protect the server."""

    host: str = option("127.0.0.1", "Address to bind. Loopback by default; use 0.0.0.0 only behind auth (--api-key-env).")
    port: int = option(8000, "TCP port (0 picks a free one and prints it).")
    api_key_env: str | None = option(None, "Name of the environment variable holding the API key. Requests then need 'Authorization: "
                                           "Bearer KEY' or 'X-API-Key: KEY'.")
    max_batch_size: int | None = option(None, "Most inputs run together in one model call (1 turns dynamic batching off). "
                                              "Default: 16, or 64 on a CUDA GPU.")
    max_wait_ms: float = option(10.0, "How long the first queued input waits for others to join its batch.")
    max_queue: int = option(256, "Most inputs waiting for the model; beyond it requests get 503 with Retry-After.")
    request_timeout: float = option(60.0, "Seconds a request may take, queue included, before it gets 504.")
    max_body_bytes: int = option(1_048_576, "Largest request body in bytes (413 beyond).")
    max_input_chars: int = option(20_000, "Longest single input in characters, all its fields together (413 beyond).")
    max_inputs_per_request: int = option(64, "Most inputs in one request (422 beyond).")
    max_new_tokens_limit: int = option(512, "Largest max_new_tokens a request may ask for (422 beyond).")
    max_beams_limit: int = option(8, "Largest num_beams a request may ask for (422 beyond).")
    threads: int | None = option(None, "Threads for the model: torch intra-op threads, or CTranslate2 workers of one thread each "
                                       "(default: torch's choice; one worker per core).")
    backend: str | None = option(None, "Inference backend. Default: the model's own (ctranslate2 for a 'texttune export', else "
                                       "transformers).", choices=BACKENDS)
    compute_type: str | None = option(None, COMPUTE_TYPE_HELP, choices=COMPUTE_TYPES)
    device: str | None = option(None, DEVICE_HELP)
    dtype: str | None = option(None, DTYPE_HELP, choices=DTYPES)
    access_log: bool = option(False, "Log every request (uvicorn's access log).")


#: The sections every task shares; each task adds its own options (``tasks/<name>.py``).
SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "generation": GenerationConfig,
    "peft": PeftOptions,
}


@dataclass
class RunConfig:
    """Everything a run needs, resolved. Written to ``config.yaml`` in each run."""

    task: str
    task_options: Any = None  # the task's own options dataclass (tasks/<name>.py declares it)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    peft: PeftOptions = field(default_factory=PeftOptions)
    #: The GenerationConfig fields this task takes (all for generation tasks, the batch size for the others).
    generation_fields: tuple[str, ...] = field(default=tuple(f.name for f in fields(GenerationConfig)), repr=False)

    def flat(self) -> dict[str, Any]:
        """The flat option mapping (the YAML layout ``--config`` reads back): only options this task takes."""
        out: dict[str, Any] = {"task": self.task}
        sections = [self.data, self.task_options, self.model, self.train, self.generation, self.peft]
        for section in (s for s in sections if s is not None):
            for key, value in asdict(section).items():
                if key == "columns":
                    out.update({f"{role}_column": name for role, name in value.items()})
                elif section is not self.generation or key in self.generation_fields:
                    out[key] = value
        return out


def option_fields(task_options: type | None = None, *,
                  generation_fields: tuple[str, ...] | None = None) -> dict[str, tuple[str, Any]]:
    """Map every flat option name a task takes to (section name, dataclass field).

    ``task_options``: the task's options dataclass; ``generation_fields``: the GenerationConfig
    fields it takes (default: all). A name may appear in one section only (a unit test checks
    every registered task).
    """
    out: dict[str, tuple[str, Any]] = {}
    sections: dict[str, type] = {**SECTIONS, **({"task": task_options} if task_options is not None else {})}
    for section, cls in sections.items():
        for f in fields(cls):
            if f.name == "columns" or (section == "generation" and generation_fields is not None
                                       and f.name not in generation_fields):
                continue
            if f.name in out:
                raise TypeError(f"option {f.name!r} is declared by both {out[f.name][0]} and {section}")
            out[f.name] = (section, f)
    return out


def build_config(task: str, options: dict[str, Any], *, task_options: type, column_roles: tuple[str, ...],
                 generation_fields: tuple[str, ...] | None = None,
                 elsewhere: dict[str, tuple[str, ...]] | None = None) -> RunConfig:
    """Build a :class:`RunConfig` for ``task`` from a flat mapping of option names to values.

    ``task_options``: the task's options dataclass; ``column_roles``: its column roles
    (``<role>_column`` keys are accepted for them and no others); ``generation_fields``: the
    GenerationConfig fields it takes (default: all). ``elsewhere`` maps the options of other
    tasks to those tasks, so an option of another task is refused naming both (the
    registry passes it: config knows no tasks). Keys may use dashes or underscores.
    """
    known = option_fields(task_options, generation_fields=generation_fields)
    column_keys = {f"{role}_column": role for role in column_roles}
    sections: dict[str, dict[str, Any]] = {name: {} for name in [*SECTIONS, "task"]}
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
            raise ConfigError(not_an_option(raw_key, task, valid=sorted([*known, *column_keys]), owners=(elsewhere or {}).get(key)))
        section, f = known[key]
        sections[section][key] = coerce_field(key, value, f)
    config = RunConfig(
        task=task,
        task_options=task_options(**sections["task"]),
        data=DataConfig(columns=columns, **sections["data"]),
        model=ModelConfig(**sections["model"]),
        train=TrainConfig(**sections["train"]),
        generation=GenerationConfig(**sections["generation"]),
        peft=PeftOptions(**sections["peft"]),
        **({"generation_fields": generation_fields} if generation_fields is not None else {}),
    )
    validate(config)
    return config


def generation_from_mapping(values: dict[str, Any], *, fields_taken: tuple[str, ...] | None = None) -> GenerationConfig:
    """A GenerationConfig from a partial mapping (API keyword arguments, HTTP bodies).

    ``fields_taken``: the fields the task takes (others are refused); default: all.
    """
    known = {f.name: f for f in fields(GenerationConfig) if fields_taken is None or f.name in fields_taken}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown generation option {key!r}; valid: {', '.join(sorted(known))}")
        kwargs[key] = coerce_field(key, value, known[key])
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
            raise ConfigError(f"unknown serve option {raw_key!r}{suggest(key, list(known))}; valid: {', '.join(sorted(known))}")
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
