"""How evaluate, predict and serve run a saved model: backend, CTranslate2 compute type, threads, device, dtype.

These are not run options (nothing here changes what a model learns), so they
live beside the inference code rather than in a run's ``config.yaml``; the
choices are shared with :class:`texttune.config.ServeConfig` so the CLI flags
of ``predict``, ``evaluate`` and ``serve`` cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from texttune.config import BACKENDS, COMPUTE_TYPE_HELP, COMPUTE_TYPES, DEVICE_HELP, DTYPE_HELP, DTYPES, coerce, option
from texttune.errors import ConfigError
from texttune.inference.device import normalize_device

TRANSFORMERS = "transformers"
CTRANSLATE2 = "ctranslate2"
DTYPE_ON_CTRANSLATE2 = ("--dtype applies to the transformers backend; CTranslate2 chooses its weight and arithmetic "
                        "types with --compute-type (e.g. --compute-type float16 or bfloat16 on a GPU)")


@dataclass(frozen=True)
class InferenceConfig:
    """Which engine runs the model, and how (``--backend``, ``--compute-type``, ``--threads``, ``--device``, ``--dtype``)."""

    backend: str | None = option(None, "Inference backend. Default: the model's own (ctranslate2 for a 'texttune export', "
                                       "else transformers).", choices=BACKENDS)
    compute_type: str | None = option(None, COMPUTE_TYPE_HELP, choices=COMPUTE_TYPES)
    threads: int | None = option(None, "Threads for the model: torch intra-op threads (transformers), or CTranslate2 "
                                       "workers of one thread each (default: one per core; faster than threads per batch).")
    device: str | None = option(None, DEVICE_HELP)
    dtype: str | None = option(None, DTYPE_HELP, choices=DTYPES)


def inference_config(*, backend: str | None = None, compute_type: str | None = None, threads: int | None = None,
                     device: str | None = None, dtype: str | None = None) -> InferenceConfig:
    """A checked :class:`InferenceConfig` (ConfigError names the bad value and the valid choices).

    Only the values are checked here; whether this machine has the device is known once
    the model loads (``texttune.inference.device.resolve_device``).
    """
    given = {"backend": backend, "compute_type": compute_type, "threads": threads, "device": device, "dtype": dtype}
    values: dict[str, Any] = {}
    for f in fields(InferenceConfig):
        value = given[f.name]
        values[f.name] = None if value is None else coerce(f.name, value, f.type, f.metadata.get("choices"))
    values["device"] = normalize_device(values["device"])
    config = InferenceConfig(**values)
    if config.threads is not None and config.threads <= 0:
        raise ConfigError(f"option 'threads' must be > 0, got {config.threads}")
    if config.compute_type is not None and config.backend == TRANSFORMERS:
        raise ConfigError("compute_type applies to the ctranslate2 backend only; pass backend='ctranslate2' "
                          "(--backend ctranslate2) or leave compute_type out")
    if config.dtype not in (None, "auto") and config.backend == CTRANSLATE2:
        raise ConfigError(DTYPE_ON_CTRANSLATE2)
    return config


def inference_options(source: Any) -> dict[str, Any]:
    """The :class:`InferenceConfig` fields of ``source`` (a ServeConfig, parsed CLI flags) as keyword arguments."""
    return {f.name: getattr(source, f.name, None) for f in fields(InferenceConfig)}
