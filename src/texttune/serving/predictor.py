"""What the server serves: a saved texttune model behind a small, thread-safe-by-convention interface.

The HTTP layer never touches tasks or tensors. It asks a :class:`Predictor` to
check one input (cheap, on the event loop, so a bad input is refused before it
can join a batch) and to predict a batch of checked inputs that share the same
options (slow, on the model thread). The engine is never imported: serving a
model needs ``texttune.api.load`` and the task's own ``predict``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from texttune._version import __version__
from texttune.backbones.attention import actual_attention
from texttune.config import GENERATION_OPTIONS, GenerationConfig
from texttune.errors import ConfigError, TexttuneError
from texttune.inference.backends import GenerationBackend
from texttune.inference.device import dtype_name
from texttune.inference.streaming import RowSink, stream_batch
from texttune.runs import find_model_dir, model_name, read_metadata

log = logging.getLogger("texttune.serving")


class Predictor(Protocol):
    """The model as the server sees it. ``predict`` is only ever called from one thread at a time."""

    task: str
    options: tuple[str, ...]  # the per-request options this task accepts

    def info(self) -> dict[str, Any]:
        """What ``GET /v1/model`` reports (task, backbone, labels, defaults...)."""
        ...

    def check_input(self, value: Any, index: int) -> Any:
        """One request input converted to the task's row; raises TexttuneError when unusable."""
        ...

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The request's options, checked for this task (ConfigError names the bad one)."""
        ...

    def predict(self, rows: list[Any], options: dict[str, Any]) -> list[Any]:
        """One output per row, in order."""
        ...

    def models(self) -> list[str]:
        """The names a request's ``model`` may take (OpenAI-compatible routes): the served model first."""
        ...

    def chat_input(self, messages: list[dict[str, str]]) -> Any:
        """A chat request's turns as the task's input; TexttuneError when this model cannot chat."""
        ...

    def complete(self, rows: list[StreamRow], options: dict[str, Any]) -> list[Any]:
        """Generate for a batch, each row's text going to its sink; one Finished (or exception) per row."""
        ...


@dataclass(frozen=True)
class StreamRow:
    """One input of an OpenAI-compatible request on its way to the model thread."""

    input: Any  # as the task's predict takes it
    sink: RowSink


def input_size(row: Any) -> int:
    """Characters of text in one input, all fields together (for limits and length sorting)."""
    if isinstance(row, str):
        return len(row)
    if isinstance(row, dict):
        return sum(input_size(v) for v in row.values())
    if isinstance(row, (list, tuple)):
        return sum(input_size(v) + 1 for v in row)
    return 0


def unencodable(row: Any) -> str | None:
    """Why an input's text cannot reach a tokenizer, or None.

    JSON may spell an unpaired UTF-16 surrogate (``"\\ud800"``); Python keeps it in the
    string, but it is not Unicode text and the tokenizers (Rust) reject it with a TypeError.
    """
    if isinstance(row, str):
        try:
            row.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (f"the text holds an unpaired UTF-16 surrogate ({row[exc.start]!r} at character {exc.start}), "
                    "which is not Unicode text; send valid UTF-8")
        return None
    values = row.values() if isinstance(row, dict) else row if isinstance(row, (list, tuple)) else ()
    return next((problem for value in values if (problem := unencodable(value)) is not None), None)


class ModelPredictor:
    """A model saved by texttune (any task), loaded with ``load`` (:func:`texttune.api.load`).

    The loader is passed in: serving sits below the API layer (DEVELOPERS.md) and never imports it,
    so the server cannot reach training code; ``texttune serve`` hands it ``texttune.load``.
    """

    def __init__(self, model_dir: str | Path, *, load: Callable[..., Any], backend: str | None = None,
                 compute_type: str | None = None, threads: int | None = None, device: str | None = None,
                 dtype: str | None = None, adapters: dict[str, Path] | None = None) -> None:
        """``backend``, ``compute_type``, ``threads``, ``device``, ``dtype``, ``adapters``: as :func:`texttune.api.load`
        (``--backend``..., ``--adapter NAME=DIR``)."""
        self.model_dir = find_model_dir(model_dir)
        self.metadata = read_metadata(self.model_dir)
        extra = {"adapters": adapters} if adapters else {}
        self.model = load(self.model_dir, backend=backend, compute_type=compute_type, threads=threads, device=device,
                          dtype=dtype, **extra)
        self.task = self.model.task_name
        self.options = tuple(self.model.task.request_options)
        self.name = model_name(self.model_dir)
        self._version = __version__

    def info(self) -> dict[str, Any]:
        task = self.model.task
        hf_config = self.model.backbone.model.config
        labels = getattr(task, "labels", None)
        gen = self.generation_defaults() if task.generates else None
        return {
            "task": self.task,
            "description": task.description,
            "backbone": self.metadata.get("backbone"),
            "family": self.metadata.get("family"),
            "architecture": (hf_config.architectures or [type(self.model.backbone.model).__name__])[0],
            "model_dir": str(self.model_dir),
            "inputs": [r.role for r in self.model.input_roles()],
            "options": list(self.options),
            "labels": list(labels) if labels else None,
            "mask_token": getattr(task, "mask_token", None),  # a task whose inputs hold a mask token says which
            "generation_defaults": gen,
            "backend": self.backend_info(),
            "models": self.models(),  # the served name and its adapters' (the OpenAI routes' "model")
            "texttune_version": self._version,
        }

    def backend_info(self) -> dict[str, Any]:
        """Which engine runs the model (``name``) and on which ``device``: transformers with its ``dtype``,
        CTranslate2 with its compute type and threads."""
        model = self.model.backbone.model
        if isinstance(model, GenerationBackend):
            return model.info()
        return {"name": "transformers", "device": str(model.device), "dtype": dtype_name(model.dtype),
                "attention": actual_attention(model)}

    def generation_defaults(self) -> dict[str, Any]:
        """texttune's generation defaults with the saved model's own values (max_new_tokens...) on top."""
        values = {k: v for k, v in asdict(GenerationConfig()).items() if k in GENERATION_OPTIONS}
        saved = getattr(self.model.backbone.model, "generation_config", None)
        for key in GENERATION_OPTIONS:
            value = getattr(saved, key, None) if saved is not None else None
            if value is not None and key not in {"do_sample", "top_k", "top_p", "temperature"}:
                values[key] = value  # sampling knobs keep texttune's (greedy) defaults
        return values

    def check_input(self, value: Any, index: int) -> Any:
        return self.model.check_input(value, index)

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return self.model.check_request_options(options)

    def predict(self, rows: list[Any], options: dict[str, Any]) -> list[Any]:
        self._use(self.name)  # /v1/predict serves the model itself, whatever adapter ran last
        return self.model.predict(rows, batch_size=len(rows), **options)

    def models(self) -> list[str]:
        return self.model.served_names or [self.name]

    def _use(self, name: str | None) -> None:
        """Switch to adapter ``name`` (the model thread only; batches never mix adapters)."""
        if self.model.served_names and name is not None:
            self.model.use_adapter(name)

    def chat_input(self, messages: list[dict[str, str]]) -> Any:
        make = getattr(self.model.task, "chat_input", None)
        if make is None:
            raise ConfigError(f"a {self.task} model does not generate text; chat completions need one that does")
        return make(messages)

    def complete(self, rows: list[StreamRow], options: dict[str, Any]) -> list[Any]:
        """``options``: generation options plus ``model``, ``stop`` (strings) and ``seed``. A failure fails every row
        of the batch and is not retried row by row (as /v1/predict's are): text may have been streamed already."""
        generation = dict(options)
        generation.pop("model", None)
        stops, seed = generation.pop("stop", ()), generation.pop("seed", None)
        try:
            self._use(options.get("model"))
            prompts = self.model.prompts([row.input for row in rows], **generation)
            return list(stream_batch(self.model.backbone.model, prompts, [row.sink for row in rows], stops=stops,
                                     seed=seed))
        except Exception as exc:  # noqa: BLE001 - every caller of the batch gets it
            if not isinstance(exc, TexttuneError):
                log.exception("generation failed for a batch of %d", len(rows))
            return [exc] * len(rows)
