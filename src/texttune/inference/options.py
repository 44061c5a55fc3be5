"""How evaluate, predict and serve run a saved model: backend, CTranslate2 compute type, threads.

These are not run options (nothing here changes what a model learns), so they
live beside the inference code rather than in a run's ``config.yaml``; the
choices are shared with :class:`texttune.config.ServeConfig` so the CLI flags
of ``predict``, ``evaluate`` and ``serve`` cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from texttune.config import BACKENDS, COMPUTE_TYPE_HELP, COMPUTE_TYPES, coerce, option
from texttune.errors import ConfigError

TRANSFORMERS = "transformers"
CTRANSLATE2 = "ctranslate2"


@dataclass(frozen=True)
class InferenceConfig:
    """Which engine runs generation, and how (``--backend``, ``--compute-type``, ``--threads``)."""

    backend: str | None = option(None, "Inference backend. Default: the model's own (ctranslate2 for a 'texttune export', "
                                       "else transformers).", choices=BACKENDS)
    compute_type: str | None = option(None, COMPUTE_TYPE_HELP, choices=COMPUTE_TYPES)
    threads: int | None = option(None, "Threads for the model: torch intra-op threads (transformers), or CTranslate2 "
                                       "workers of one thread each (default: one per core; faster than threads per batch).")


def inference_config(*, backend: str | None = None, compute_type: str | None = None,
                     threads: int | None = None) -> InferenceConfig:
    """A checked :class:`InferenceConfig` (ConfigError names the bad value and the valid choices)."""
    given = {"backend": backend, "compute_type": compute_type, "threads": threads}
    values: dict[str, Any] = {}
    for f in fields(InferenceConfig):
        value = given[f.name]
        values[f.name] = None if value is None else coerce(f.name, value, f.type, f.metadata.get("choices"))
    config = InferenceConfig(**values)
    if config.threads is not None and config.threads <= 0:
        raise ConfigError(f"option 'threads' must be > 0, got {config.threads}")
    if config.compute_type is not None and config.backend == TRANSFORMERS:
        raise ConfigError("compute_type applies to the ctranslate2 backend only; pass backend='ctranslate2' "
                          "(--backend ctranslate2) or leave compute_type out")
    return config
