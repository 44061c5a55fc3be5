"""Range checks and contradictions of the run options that single-field typing cannot catch.

Split from ``config.py`` (which declares the options and builds a :class:`RunConfig`):
these functions only read a built config and raise :class:`~texttune.errors.ConfigError`
naming the option, the value and what would be valid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from texttune.errors import ConfigError
from texttune.peft_config import validate_peft

if TYPE_CHECKING:
    from texttune.config import GenerationConfig, RunConfig


def check_positive(name: str, value: float | None, *, allow_zero: bool = False) -> None:
    """None, or a value > 0 (>= 0 with ``allow_zero``); otherwise a ConfigError naming the option."""
    if value is not None and (value < 0 or (value == 0 and not allow_zero)):
        raise ConfigError(f"option {name!r} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def check_limit(name: str, value: int | None) -> int | None:
    """A row limit such as ``max_eval_samples``: None (no limit) or > 0; returned unchanged."""
    check_positive(name, value)
    return value


def validate(config: RunConfig) -> None:
    """Range checks and contradictions that single-field typing cannot catch."""
    t, g, d = config.train, config.generation, config.data
    for name in ("log_every_steps", "accumulate_grad_batches", "max_epochs", "max_steps", "eval_every_steps", "early_stopping_patience",
                 "effective_batch_size"):
        check_positive(name, getattr(t, name))
    if t.batch_size != "auto":
        check_positive("batch_size", t.batch_size)
        if t.effective_batch_size is not None:
            raise ConfigError("effective_batch_size needs --batch-size auto; with a fixed batch size set "
                              "--accumulate-grad-batches instead")
    elif t.effective_batch_size is not None and t.accumulate_grad_batches != 1:
        raise ConfigError("give either effective_batch_size or accumulate_grad_batches with --batch-size auto, not both")
    for name in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
        check_positive(name, getattr(d, name))
    if t.learning_rate != "auto":
        check_positive("learning_rate", t.learning_rate)
    check_positive("head_learning_rate", t.head_learning_rate)
    check_positive("gradient_clip_val", t.gradient_clip_val, allow_zero=True)
    check_positive("weight_decay", t.weight_decay, allow_zero=True)
    check_positive("num_workers", t.num_workers, allow_zero=True)
    check_positive("samples_per_eval", t.samples_per_eval, allow_zero=True)
    check_positive("checkpoint_every_steps", t.checkpoint_every_steps)
    check_positive("checkpoint_every_minutes", t.checkpoint_every_minutes, allow_zero=True)
    validate_scale(config)
    if not 0 <= t.warmup_ratio < 1:
        raise ConfigError(f"option 'warmup_ratio' must be in [0, 1), got {t.warmup_ratio!r}")
    if not 0 < d.validation_fraction < 1:
        raise ConfigError(f"option 'validation_fraction' must be in (0, 1), got {d.validation_fraction!r}")
    if d.dedupe and (d.streaming or not d.data_checks):
        raise ConfigError("--dedupe removes the leaked training rows the data checks find: it cannot apply with "
                          + ("--streaming (the rows are read as training goes)" if d.streaming else "--no-data-checks"))
    validate_generation(g)
    validate_peft(config.peft)


def validate_scale(config: RunConfig) -> None:
    """Devices, nodes, strategy and streaming: the options of docs/scaling.md."""
    import importlib.util

    t, d = config.train, config.data
    if t.devices != "auto":
        check_positive("devices", t.devices)
    check_positive("num_nodes", t.num_nodes)
    check_positive("shuffle_buffer", d.shuffle_buffer)
    if t.strategy.startswith(("fsdp", "deepspeed")) and t.accelerator in {"cpu", "mps"}:
        raise ConfigError(f"--strategy {t.strategy} needs --accelerator gpu (Lightning runs FSDP and DeepSpeed on CUDA "
                          f"GPUs only); on {t.accelerator} use --strategy ddp")
    if t.strategy.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(f"--strategy {t.strategy} needs DeepSpeed: pip install deepspeed (on a machine with CUDA), "
                          f"or use --strategy fsdp, which ships with torch")
    if d.streaming:
        if t.max_steps is None:
            raise ConfigError("--streaming needs --max-steps: a stream has no known length, so epochs and the "
                              "learning-rate schedule cannot be derived from it")
        if t.max_epochs is not None:
            raise ConfigError("--streaming counts optimizer steps (--max-steps), not epochs; drop --max-epochs")
        if t.batch_size == "auto":
            raise ConfigError("--streaming needs a fixed --batch-size (the auto search reads the whole training set)")


def validate_generation(g: GenerationConfig) -> None:
    """Generation option ranges; shared with predict and the server."""
    for name in ("max_new_tokens", "num_beams", "top_k", "no_repeat_ngram_size", "generation_batch_size"):
        check_positive(name, getattr(g, name))
    check_positive("min_new_tokens", g.min_new_tokens, allow_zero=True)
    check_positive("temperature", g.temperature)
    check_positive("repetition_penalty", g.repetition_penalty)
    if g.top_p is not None and not 0 < g.top_p <= 1:
        raise ConfigError(f"option 'top_p' must be in (0, 1], got {g.top_p!r}")
    if g.min_new_tokens is not None and g.max_new_tokens is not None and g.min_new_tokens > g.max_new_tokens:
        raise ConfigError(
            f"min_new_tokens ({g.min_new_tokens}) is larger than max_new_tokens ({g.max_new_tokens})"
        )
