"""Saved models: a plain ``save_pretrained`` directory plus ``texttune.json``.

The directory loads with ``transformers`` alone (Auto classes or ``pipeline``);
``texttune.json`` adds what transformers does not know: the task, its prompt or
prefix, learned lengths and label lists, and the backbone it came from. A model
trained with ``--peft lora --no-merge-adapters`` holds LoRA adapters
(``adapter_config.json``, ``adapter_model.safetensors``) and its config instead of
full weights; ``texttune.json``'s ``peft`` entry names the backbone they apply to.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from texttune._version import __version__
from texttune.errors import BackboneError
from texttune.files import atomic_directory, read_json, write_json
from texttune.runs.untrusted import check_model_files

METADATA_FILE = "texttune.json"


def model_metadata(*, task: Any, backbone: Any, columns: dict[str, str], peft: dict[str, Any] | None,
                   trained_steps: int | None = None) -> dict[str, Any]:
    """The saved model's ``texttune.json`` (built here only): what ``texttune.load`` needs to rebuild the task.

    ``task`` and ``backbone`` are the bound task and its backbone; ``trained_steps`` is known after training.
    """
    return {
        "task": task.name, "texttune_version": __version__, "backbone": backbone.name, "family": backbone.family,
        "auto_class": task.auto_class(backbone.family), "task_state": task.metadata(), "columns": dict(columns),
        **({"trained_steps": int(trained_steps)} if trained_steps is not None else {}),
        **({"peft": peft} if peft else {}),
    }


def save_model_dir(path: str | Path, *, model: Any, tokenizer: Any, metadata: dict[str, Any],
                   save_weights: Callable[[Path], None] | None = None) -> Path:
    """Write model, tokenizer and metadata to ``path`` atomically (temp dir + rename).

    ``save_weights(directory)`` writes the weights instead of ``model.save_pretrained`` (unmerged LoRA
    adapters: only the adapters and the model config; ``metadata["peft"]`` names their backbone).
    """
    with atomic_directory(path) as tmp:
        if save_weights is not None:
            save_weights(tmp)
        else:
            model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / METADATA_FILE, metadata)
    return Path(path)


def find_model_dir(path: str | Path) -> Path:
    """The model directory for a run directory or a model directory; a clear error otherwise."""
    p = Path(path)
    if not p.exists():
        raise BackboneError(f"{p}: no such run or model directory")
    if not p.is_dir():
        raise BackboneError(f"{p} is a file; pass a run directory or its model/ directory")
    for candidate in (p / "model", p):
        if (candidate / METADATA_FILE).is_file():
            return candidate
    if (p / "config.yaml").is_file():
        raise BackboneError(f"{p} is a run directory without a saved model (did the run finish? see {p / 'status.json'})")
    raise BackboneError(f"{p} is not a texttune model directory (no {METADATA_FILE}); train one with 'texttune train'")


def model_name(model_dir: Path) -> str:
    """What a served model is called (``/v1/models``): its run's directory name (``runs/debian-lora/model`` ->
    ``debian-lora``), or the model directory's own name when it is not inside a run."""
    return model_dir.parent.name if model_dir.name == "model" and model_dir.parent.name else model_dir.name


def _check_entries(meta: dict[str, Any], where: Path) -> None:
    """The entries loading reads, with the types it needs: a hand-edited file gets a message, not a KeyError."""
    import transformers

    auto_class = meta.get("auto_class")
    if not (isinstance(auto_class, str) and auto_class.startswith("AutoModel") and getattr(transformers, auto_class, None)):
        raise BackboneError(f"{where}: 'auto_class' must name a transformers AutoModel class, got {auto_class!r}")
    for key in ("task_state", "columns"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise BackboneError(f"{where}: {key!r} must be an object, got {type(meta[key]).__name__}")


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """``texttune.json`` of a model directory, after checking that loading it cannot run code (``untrusted.py``)."""
    try:
        meta = read_json(model_dir / METADATA_FILE)
    except ValueError as exc:
        raise BackboneError(f"{model_dir / METADATA_FILE}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or "task" not in meta:
        raise BackboneError(f"{model_dir / METADATA_FILE}: missing the 'task' entry")
    _check_entries(meta, model_dir / METADATA_FILE)
    check_model_files(model_dir, meta)
    return meta
