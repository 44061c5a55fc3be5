"""``texttune export --format onnx``: a saved encoder-task model as an ONNX graph for ONNX Runtime.

Why our own code: Hugging Face's exporter (``optimum-onnx`` 0.1.0, the latest release) requires
transformers < 4.58 and texttune runs transformers 5, so the graph is written by torch's own
exporter, the ``torch.export``-based one (``dynamo=True``, the default since torch 2.9, built on
``onnxscript``); the TorchScript exporter is deprecated and to be removed. The encoder tasks need
nothing optimum adds: one forward call from the tokenizer's inputs to the head's logits.

An export is a self-describing directory: ``model.onnx`` (inputs named as the tokenizer names
them, batch and sequence axes dynamic; outputs ``logits``, or ``start_logits``/``end_logits`` for
question answering), the tokenizer, ``config.json`` (labels, special ids) and ``texttune.json``
with ``"backend": "onnx"``, the quantization, and the largest difference between ONNX Runtime's
outputs and transformers' measured on a padded batch at export time. ``int8`` is ONNX Runtime's
dynamic quantization (int8 weights of the matrix products, activations quantized per call).
Everything is written to a temporary directory and renamed into place, so an interrupted export
leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from texttune._version import __version__
from texttune.backbones import load_backbone
from texttune.errors import BackboneError, ConfigError, choices
from texttune.extras import require
from texttune.files import atomic_directory, write_json
from texttune.inference.export_dir import check_output
from texttune.runs.model_dir import METADATA_FILE, find_model_dir, read_metadata

#: What ``texttune export --format onnx --quantization`` accepts.
QUANTIZATIONS: tuple[str, ...] = ("float32", "int8")
DEFAULT_QUANTIZATION = "float32"
#: The tasks whose prediction is one forward pass of an encoder (no generation loop).
ENCODER_TASKS: tuple[str, ...] = ("text-classification", "token-classification", "question-answering", "masked-lm")
MODEL_FILE = "model.onnx"
BACKEND = "onnx"
#: Largest |ONNX Runtime - transformers| accepted at export for float32 (the graph computes the same thing).
FLOAT32_TOLERANCE = 1e-3
#: Past this many bytes of weights the graph keeps them in a side file (protobuf's 2 GiB limit).
_EXTERNAL_DATA_BYTES = 1_500_000_000
_SAMPLE = (["ONNX export of a texttune model.", "A second, somewhat longer input, so that the batch needs padding."],
           ["Which format?", "Why pad?"])


def output_names(task: str) -> tuple[str, ...]:
    """The graph's outputs: what the task reads from the transformers model's output."""
    return ("start_logits", "end_logits") if task == "question-answering" else ("logits",)


def is_onnx_export(metadata: dict[str, Any]) -> bool:
    """Whether a texttune.json describes a ``texttune export --format onnx`` directory."""
    return metadata.get("backend") == BACKEND


def check_source(model_dir: Path, metadata: dict[str, Any]) -> None:
    """ConfigError unless ``model_dir`` is a full (not LoRA-only) saved model of an encoder task on an encoder."""
    if metadata.get("backend"):
        raise ConfigError(f"{model_dir} is already a {metadata['backend']} export; export from the model directory it came from")
    if isinstance(metadata.get("peft"), dict) and metadata["peft"].get("merged") is False:
        raise ConfigError(f"{model_dir} holds LoRA adapters, not a full model: save it merged first "
                          "(texttune.load(dir).save(new_dir), or train with --merge-adapters, the default)")
    task = metadata.get("task")
    if task not in ENCODER_TASKS:
        raise ConfigError(f"ONNX export covers the encoder tasks ({', '.join(ENCODER_TASKS)}); task {task!r} needs "
                          "--format ctranslate2 or the transformers backend")
    if metadata.get("family") not in (None, "encoder"):
        raise ConfigError(f"ONNX export covers encoder backbones (BERT, RoBERTa, MiniLM...); this {task} model is a "
                          f"{metadata['family']} model: use the transformers backend")


def sample_inputs(tokenizer: Any, model: Any) -> dict[str, Any]:
    """A padded batch of two text pairs as torch tensors: the inputs the graph is traced and checked with.

    Only the tokenizer's inputs that the model's forward takes (DistilBERT has no token_type_ids).
    """
    accepted = set(inspect.signature(model.forward).parameters)
    batch = tokenizer(*_SAMPLE, padding=True, return_tensors="pt")
    return {name: batch[name] for name in tokenizer.model_input_names if name in batch and name in accepted}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide the exporters' chatter, not their errors: torch's notes on torchvision ops and axis names, and ONNX Runtime's
    advice (on the root logger) to pre-process before quantizing."""
    loggers = [logging.getLogger(), logging.getLogger("torch.onnx")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def write_graph(model: Any, inputs: dict[str, Any], path: Path, *, task: str) -> None:
    """``torch.onnx.export`` of ``model`` with dynamic batch and sequence axes (BackboneError if it fails)."""
    import torch

    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence", max=int(getattr(model.config, "max_position_embeddings", 0) or 2**16))
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    try:
        with torch.no_grad(), _quiet():
            program = torch.onnx.export(model.eval(), (), kwargs=inputs, input_names=list(inputs), output_names=list(output_names(task)),
                                        dynamic_shapes={name: {0: batch, 1: sequence} for name in inputs}, dynamo=True,
                                        external_data=size > _EXTERNAL_DATA_BYTES, verbose=False)
            program.save(str(path), external_data=size > _EXTERNAL_DATA_BYTES)
    except Exception as exc:  # torch.export's errors are many types and pages long
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackboneError(f"torch could not export this {type(model).__name__} to ONNX ({first})") from None


def quantize_int8(source: Path, target: Path) -> None:
    """ONNX Runtime's dynamic int8 quantization of ``source`` (weights int8, activations quantized per call)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)


def open_session(path: Path, *, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for ``path``; ``threads`` intra-op threads (default: ONNX Runtime's, one per core)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def max_difference(session: Any, model: Any, inputs: dict[str, Any], *, task: str) -> float:
    """Largest |ONNX Runtime - transformers| over the task's outputs on ``inputs``."""
    import numpy as np
    import torch

    with torch.no_grad():
        expected = model.eval()(**inputs)
    got = session.run(list(output_names(task)), {name: value.numpy() for name, value in inputs.items()})
    return max(float(np.abs(g - getattr(expected, name).float().numpy()).max()) for g, name in zip(got, output_names(task)))


def export(source: str | Path, *, output: str | Path, quantization: str = DEFAULT_QUANTIZATION) -> Path:
    """Write an ONNX export of a texttune run or model directory (an encoder task) to ``output``, atomically."""
    model_dir, output = find_model_dir(source), Path(output)
    metadata = read_metadata(model_dir)
    check_source(model_dir, metadata)
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"quantization {quantization!r} is not valid for ONNX; valid choices: {choices(QUANTIZATIONS)}")
    check_output(output, model_dir, backend="onnx", label="an ONNX")
    require("onnx", what="texttune export --format onnx")
    backbone = load_backbone(str(model_dir))  # config and tokenizer; pickles and custom code refused
    model = backbone.load_model(metadata["auto_class"], model_kwargs={"dtype": "float32", "attn_implementation": "eager"})
    inputs, task = sample_inputs(backbone.tokenizer, model), metadata["task"]
    with atomic_directory(output) as tmp:
        if quantization == "int8":
            with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=f".{output.name}.float32-") as scratch:
                write_graph(model, inputs, Path(scratch) / MODEL_FILE, task=task)
                quantize_int8(Path(scratch) / MODEL_FILE, tmp / MODEL_FILE)
        else:
            write_graph(model, inputs, tmp / MODEL_FILE, task=task)
        difference = max_difference(open_session(tmp / MODEL_FILE), model, inputs, task=task)
        if quantization == "float32" and difference > FLOAT32_TOLERANCE:
            raise BackboneError(f"the ONNX graph's outputs differ from the model's by {difference:.2g} (> {FLOAT32_TOLERANCE}); "
                                "not exported")
        backbone.tokenizer.save_pretrained(tmp)
        model.config.save_pretrained(tmp)
        import onnxruntime

        write_json(tmp / METADATA_FILE, {**metadata, "backend": BACKEND, BACKEND: {
            "quantization": quantization, "file": MODEL_FILE, "inputs": list(inputs), "outputs": list(output_names(task)),
            "max_abs_difference": difference, "source_model": str(model_dir.resolve()), "opset": _opset(tmp / MODEL_FILE),
            "torch_exporter": "dynamo", "onnxruntime_version": onnxruntime.__version__, "exported_by": f"texttune {__version__}"}})
    return output


def _opset(path: Path) -> int | None:
    """The default-domain opset of the graph at ``path``."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


__all__ = ["BACKEND", "DEFAULT_QUANTIZATION", "ENCODER_TASKS", "MODEL_FILE", "QUANTIZATIONS", "check_source", "export",
           "is_onnx_export", "max_difference", "open_session", "output_names", "sample_inputs"]
