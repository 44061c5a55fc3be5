"""``texttune export --format FORMAT``: one registry of export formats.

Each format is one module with ``export(source, *, output, quantization) -> Path``,
its ``QUANTIZATIONS`` and ``DEFAULT_QUANTIZATION``; adding a format is that module
and one line in ``FORMATS``. The formats check their own sources (task,
architecture, tokenizer) and write atomically; this module only picks one and
refuses names it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from texttune.errors import ConfigError, choices
from texttune.inference import ct2_export, gguf_export, onnx_export


@dataclass(frozen=True)
class ExportFormat:
    """One target format: the module that writes it and what it is for (shown in ``--help``)."""

    module: ModuleType
    purpose: str


#: Every format ``texttune export`` writes, by the name given to ``--format``.
FORMATS: dict[str, ExportFormat] = {
    "ctranslate2": ExportFormat(ct2_export, "fast CPU/GPU generation; texttune predict/evaluate/serve use it directly"),
    "gguf": ExportFormat(gguf_export, "one .gguf file (+ Ollama Modelfile) for llama.cpp and Ollama; Llama-architecture models"),
    "onnx": ExportFormat(onnx_export, "ONNX Runtime and other ONNX engines; encoder tasks (classification, tagging, QA, fill-mask)"),
}


def export_format(name: str) -> ExportFormat:
    """The format called ``name``, or a one-line error listing the valid ones."""
    if name not in FORMATS:
        raise ConfigError(f"--format {name!r} is not supported; valid choices: {choices(FORMATS)}")
    return FORMATS[name]


def export(source: str | Path, *, output: str | Path, format: str, quantization: str | None = None) -> Path:  # noqa: A002 (the CLI flag's name)
    """Write ``source`` (a run or model directory) as ``format`` to ``output``; the format's default quantization if None."""
    module = export_format(format).module
    return module.export(source, output=output, quantization=quantization or module.DEFAULT_QUANTIZATION)


__all__ = ["FORMATS", "ExportFormat", "export", "export_format"]
