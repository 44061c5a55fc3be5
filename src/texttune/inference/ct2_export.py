"""Convert saved texttune models to CTranslate2: ``texttune export`` and the cache behind ``--backend ctranslate2``.

An export is a directory that CTranslate2 and transformers' tokenizer both open
as they are: the converted model (``config.json``, ``model.bin``, vocabulary) at
the top, the tokenizer beside it, the transformers config and generation config
(which decide special tokens and decoding) in ``transformers-config/``, and
``texttune.json`` with the task and which backend, quantization and source model
it is. ``--backend ctranslate2`` on an ordinary model directory converts it once
into ``$TEXTTUNE_HOME/ctranslate2/<hash of the model files>-<quantization>/``.
Both are written to a temporary directory and renamed into place, so an
interrupted conversion leaves nothing behind.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from texttune._version import __version__
from texttune.backbones.aliases import cache_home, sha256_file
from texttune.errors import BackboneError, ConfigError, choices
from texttune.files import atomic_directory, read_json, write_json
from texttune.inference import ct2_smooth
from texttune.inference.ct2_backend import INSTALL_HINT, require_ctranslate2
from texttune.inference.ct2_smooth import RECIPE
from texttune.inference.export_dir import check_output
from texttune.runs.model_dir import METADATA_FILE, find_model_dir, read_metadata
from texttune.tasks import TASKS

#: What ``texttune export --quantization`` and the conversion cache accept (the converter's choices).
QUANTIZATIONS: tuple[str, ...] = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float32", "float16",
                                  "bfloat16")
DEFAULT_QUANTIZATION = "int8"
EXPORT_CONFIG_DIR = "transformers-config"
#: Converter entries that are not text generators (encoders, speech).
_NOT_TEXT_GENERATION = {"Bert", "Camembert", "DistilBert", "Roberta", "XLMRoberta", "Wav2Vec2", "Wav2Vec2Bert", "Whisper"}
#: Pre-norm and embedding layer norm of BART-style models. Hub configs of these families carry
#: normalize_before/normalize_embedding, which the converter reads; configs written by
#: transformers 5 do not, so they are filled in from the architecture.
_BART_NORMS: dict[str, tuple[bool, bool]] = {"bart": (False, True), "mbart": (True, True), "pegasus": (True, False)}


def supported_families() -> list[str]:
    """The text-generation architectures the installed converter knows (e.g. Bart, Llama, Marian, T5)."""
    from ctranslate2.converters.transformers import _MODEL_LOADERS

    names = {name.removesuffix("Config") for name in _MODEL_LOADERS}
    return sorted(names - _NOT_TEXT_GENERATION)


def check_supported(task: str, config: Any) -> None:
    """BackboneError, naming what is supported, unless CTranslate2 can run this task on this model."""
    generating = [name for name, cls in TASKS.items() if cls.generates]  # the others need per-token outputs
    if task not in generating:
        raise BackboneError(f"the ctranslate2 backend runs text generation tasks ({', '.join(generating)}); "
                            f"task {task!r} needs the transformers backend")
    require_ctranslate2()
    name = type(config).__name__.removesuffix("Config")
    if name not in supported_families():
        what = "EncoderDecoderModel (e.g. bert2bert)" if name == "EncoderDecoder" else f"model type {config.model_type!r}"
        raise BackboneError(f"CTranslate2 cannot convert {what}; supported families: {', '.join(supported_families())}")


def check_tokenizer(model_dir: Path) -> None:
    """BackboneError for a tokenizer whose vocabulary the converter cannot rebuild: M2M100's.

    Its language tokens (``__fr__``) are neither in vocab.json nor, with transformers 5, among its
    special tokens, where CTranslate2's M2M100 loader looks for them: the converted vocabulary would
    lack them. NLLB (the same architecture) and mBART-50 keep them as added tokens and convert.
    """
    path = model_dir / "tokenizer_config.json"
    name = read_json(path).get("tokenizer_class") if path.is_file() else None
    if name == "M2M100Tokenizer":
        raise BackboneError(f"{model_dir}: CTranslate2 cannot convert an M2M100 model: its converter does not find the "
                            "M2M100 tokenizer's language tokens (__fr__ ...) with transformers 5; use --backend transformers "
                            "(NLLB and mBART-50 models do convert)")


def convert(model_dir: Path, output: Path, *, quantization: str, calibration: list[list[int]] | None = None) -> bool:
    """Run CTranslate2's transformers converter on ``model_dir`` into ``output`` (which it replaces).

    With ``calibration`` (token ids), a Llama-style model is smoothed for int8 first
    (``ct2_smooth.py``). Returns whether it was.
    """
    require_ctranslate2()
    check_tokenizer(model_dir)
    from ctranslate2.converters import TransformersConverter


    maxima: dict[str, Any] = {}

    class Converter(TransformersConverter):  # type: ignore[misc]
        def load_model(self, model_class: Any, model_name_or_path: str, **kwargs: Any) -> Any:
            model = super().load_model(model_class, model_name_or_path, **kwargs)
            norms = _BART_NORMS.get(model.config.model_type, ())
            for key, value in zip(("normalize_before", "normalize_embedding"), norms):
                if not hasattr(model.config, key):
                    setattr(model.config, key, value)
            if calibration and model.config.model_type in ct2_smooth.SMOOTHED_MODEL_TYPES:
                maxima.update(ct2_smooth.activation_maxima(model, calibration))
            return model

        def _load(self) -> Any:
            spec = super()._load()
            if maxima:
                ct2_smooth.smooth_spec(spec, maxima)
            return spec

    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"quantization {quantization!r} is not valid; valid choices: {choices(QUANTIZATIONS)}")
    try:
        Converter(str(model_dir)).convert(str(output), quantization=quantization, force=True)
    except (ValueError, NotImplementedError, KeyError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackboneError(f"{model_dir}: CTranslate2 could not convert this model ({first})") from None
    return bool(maxima)


def _calibration(model_dir: Path, metadata: dict[str, Any], quantization: str) -> list[list[int]] | None:
    """Calibration token ids when an int8 conversion of this model is smoothed, else None."""
    from transformers import AutoConfig, AutoTokenizer


    if not ct2_smooth.applies(AutoConfig.from_pretrained(model_dir).model_type, quantization):
        return None
    return ct2_smooth.calibration_ids(AutoTokenizer.from_pretrained(model_dir), metadata)


def _file_digest(path: Path, memo: dict[str, Any]) -> str:
    """SHA-256 of a file, remembered by (size, mtime, inode) so a 500 MB model is hashed once, not per load."""
    stat = path.stat()
    signature = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
    known = memo.get(str(path))
    if isinstance(known, dict) and known.get("stat") == signature:
        return str(known["sha256"])
    digest = sha256_file(path)
    memo[str(path)] = {"stat": signature, "sha256": digest}
    return digest


def model_digest(model_dir: Path) -> str:
    """One SHA-256 over the model's files (weights, configs, tokenizer; not texttune.json)."""
    memo_file = cache_home() / "ctranslate2" / "digests.json"
    try:
        memo = read_json(memo_file) if memo_file.is_file() else {}
    except ValueError:
        memo = {}
    combined = hashlib.sha256()
    for path in sorted(p for p in model_dir.resolve().rglob("*") if p.is_file() and p.name != METADATA_FILE):
        combined.update(f"{path.relative_to(model_dir.resolve())}\0{_file_digest(path, memo)}\n".encode())
    write_json(memo_file, memo)
    return combined.hexdigest()


def cached_conversion(model_dir: Path, metadata: dict[str, Any], *, quantization: str) -> Path:
    """The CTranslate2 conversion of ``model_dir`` at ``quantization``, converting it on first use."""
    ct2 = require_ctranslate2()
    version = ".".join(ct2.__version__.split(".")[:2])
    name = f"{model_digest(model_dir)[:24]}-{quantization}-{RECIPE}-ct2v{version}"
    target = cache_home() / "ctranslate2" / name
    if (target / "model.bin").is_file():
        return target
    # keep_existing: another process may have finished the same conversion first
    with atomic_directory(target, keep_existing=lambda existing: (existing / "model.bin").is_file()) as tmp:
        smoothed = convert(model_dir, tmp, quantization=quantization, calibration=_calibration(model_dir, metadata, quantization))
        write_json(tmp / "texttune-source.json", {"source_model": str(model_dir.resolve()), "quantization": quantization,
                                                  "smoothquant": smoothed, "ctranslate2_version": ct2.__version__})
    return target


def is_export(metadata: dict[str, Any]) -> bool:
    """Whether a texttune.json describes a ``texttune export --format ctranslate2`` directory."""
    return metadata.get("backend") == "ctranslate2"


def export(source: str | Path, *, output: str | Path, quantization: str = "int8") -> Path:
    """Write a CTranslate2 export of a texttune run or model directory to ``output`` (atomically)."""
    from transformers import AutoConfig, AutoTokenizer

    model_dir, output = find_model_dir(source), Path(output)
    metadata = read_metadata(model_dir)
    if is_export(metadata):
        raise ConfigError(f"{model_dir} is already a CTranslate2 export; export from the model directory it came from")
    if isinstance(metadata.get("peft"), dict) and metadata["peft"].get("merged") is False:
        raise ConfigError(f"{model_dir} holds LoRA adapters, not a full model: save it merged first "
                          "(texttune.load(dir).save(new_dir), or train with --merge-adapters, the default)")
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"quantization {quantization!r} is not valid; valid choices: {choices(QUANTIZATIONS)}")
    config = AutoConfig.from_pretrained(model_dir)
    check_supported(metadata["task"], config)
    check_output(output, model_dir, backend="ctranslate2", label="a CTranslate2")
    with atomic_directory(output) as tmp:
        smoothed = convert(model_dir, tmp, quantization=quantization, calibration=_calibration(model_dir, metadata, quantization))
        AutoTokenizer.from_pretrained(model_dir).save_pretrained(tmp)
        config.save_pretrained(tmp / EXPORT_CONFIG_DIR)
        generation_config(model_dir, config).save_pretrained(tmp / EXPORT_CONFIG_DIR)
        write_json(tmp / METADATA_FILE, {**metadata, "backend": "ctranslate2", "ctranslate2": {
            "quantization": quantization, "smoothquant": smoothed, "source_model": str(model_dir.resolve()),
            "source_sha256": model_digest(model_dir),
            "ctranslate2_version": require_ctranslate2().__version__, "exported_by": f"texttune {__version__}"}})
    return output


def generation_config(model_dir: Path, config: Any) -> Any:
    """The generation config transformers would load with the model (its file, else derived from the config)."""
    from transformers import GenerationConfig

    if (model_dir / "generation_config.json").is_file():
        return GenerationConfig.from_pretrained(model_dir)
    return GenerationConfig.from_model_config(config)


__all__ = ["DEFAULT_QUANTIZATION", "INSTALL_HINT", "QUANTIZATIONS", "cached_conversion", "check_supported", "convert", "export",
           "generation_config", "is_export", "model_digest", "supported_families"]
