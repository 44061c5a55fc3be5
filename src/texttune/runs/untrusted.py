"""What a model directory may contain before texttune loads it: data, never code.

A saved model travels: users load directories someone sent them, or serve what a
colleague trained. Two things in such a directory could run code on load:

- pickled weights (``pytorch_model.bin``, ``*.pt``, ``*.pkl``...): unpickling can
  call any Python function the file names. texttune saves weights only as
  safetensors, so a saved model without safetensors weights is refused, naming the
  pickle files it found, and they are never opened.
- custom code (``auto_map`` in ``config.json`` or ``tokenizer_config.json``):
  transformers would import ``.py`` files from the directory, or, when
  ``trust_remote_code`` is left unset, stop and ask on the terminal (a hung server).
  A saved model never runs code: it is refused with the file and key named.

Backbones (``--backbone DIR``, hub names) are loaded by transformers, which reads
safetensors first and ``.bin`` files only with ``torch.load(weights_only=True)``
(tensors and plain data; anything else raises, see ``backbones/sources.py``);
their custom code needs ``--trust-remote-code``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from texttune.errors import BackboneError

#: Safetensors weights a saved model directory may have: full weights (one file or shards) or LoRA adapters.
SAFETENSORS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")
#: Suffixes of files that torch or pickle would unpickle.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib")
#: JSON files in which transformers looks for ``auto_map`` (custom classes imported from the directory).
CODE_MAP_FILES = ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json")


def names_custom_code(path: Path) -> bool:
    """Whether a transformers JSON file asks for custom code (a non-empty ``auto_map`` or ``custom_pipelines``).

    A file that is not JSON is not judged here: the loader that reads it reports it.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and bool(data.get("auto_map") or data.get("custom_pipelines"))


def check_model_files(model_dir: Path, metadata: dict[str, Any]) -> None:
    """Refuse a saved model directory whose loading could run code (pickled weights only, custom code).

    A CTranslate2 export (``metadata["backend"] == "ctranslate2"``) keeps its weights in
    CTranslate2's own ``model.bin`` (not a pickle) and has no safetensors.
    """
    for path in _code_map_candidates(model_dir):
        if names_custom_code(path):
            raise BackboneError(
                f"{path}: names custom Python code ('auto_map'); texttune never runs code from a saved model "
                "directory. Load only models whose architecture transformers ships, or re-save the model "
                "without custom code where you trust it")
    if metadata.get("backend") == "ctranslate2":
        return
    if metadata.get("backend") == "onnx":  # texttune export --format onnx: for ONNX Runtime, not for texttune.load
        source = (metadata.get("onnx") or {}).get("source_model", "?")
        raise BackboneError(f"{model_dir} is an ONNX export for ONNX Runtime (model.onnx); texttune runs the model directory "
                            f"it came from ({source})")
    if metadata.get("backend") == "gguf":  # texttune export --format gguf: for llama.cpp and Ollama
        source = (metadata.get("gguf") or {}).get("source_model", "?")
        raise BackboneError(f"{model_dir} is a GGUF export for llama.cpp and Ollama (model.gguf; its README.md has the "
                            f"commands); texttune runs the model directory it came from ({source})")
    if any((model_dir / name).is_file() for name in SAFETENSORS_WEIGHTS):
        return
    pickled = sorted(p.name for p in model_dir.iterdir() if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES)
    found = (f"; it has {', '.join(pickled)}, which texttune does not open: unpickling a file can run any code "
             "it names" if pickled else "")
    raise BackboneError(
        f"{model_dir}: no safetensors weights (model.safetensors); texttune loads a saved model's weights only "
        f"from safetensors{found}. Save the model again with texttune, or convert its weights to safetensors "
        "where you trust the file")


def _code_map_candidates(model_dir: Path) -> list[Path]:
    """The directory's own transformers JSON files and those one level down (an export keeps its config there)."""
    found = [model_dir / name for name in CODE_MAP_FILES]
    found += [sub / name for sub in sorted(model_dir.iterdir()) if sub.is_dir() for name in CODE_MAP_FILES]
    return [p for p in found if p.is_file()]
