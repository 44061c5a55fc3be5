"""The backbone of a saved model, on the backend, device and dtype it should run on (what ``texttune.load`` uses).

A transformers model is loaded directly in the dtype asked for (``from_pretrained(dtype=...)``:
a bfloat16 model is never held in float32 on the way) and then moved to the device.
A CTranslate2 backbone keeps the transformers config and tokenizer (tasks read
special tokens and templates from them) and gets a
:class:`~texttune.inference.ct2_backend.CTranslate2Model` where the transformers
model would be; no torch weights are loaded. It comes from an export, or from a
model directory through the conversion cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from texttune.backbones import Backbone, load_backbone
from texttune.backbones.adapters import adapter_backbone, is_adapter_dir
from texttune.backbones.attention import choose_attention, model_class_for
from texttune.backbones.sources import detect_family
from texttune.errors import BackboneError, ConfigError
from texttune.files import read_json
from texttune.inference.ct2_backend import ct2_device, default_compute_type, open_model, require_ctranslate2
from texttune.inference.ct2_export import EXPORT_CONFIG_DIR, QUANTIZATIONS, cached_conversion, check_supported, generation_config, is_export
from texttune.inference.device import dtype_name, resolve_device, resolve_dtype
from texttune.inference.options import CTRANSLATE2, DTYPE_ON_CTRANSLATE2, TRANSFORMERS, InferenceConfig

#: An inference dtype as the precision name the attention choice knows (its activations' type).
_PRECISION_OF = {"bfloat16": "bf16-true", "float16": "16-true"}


def saved_backbone(model_dir: Path, metadata: dict[str, Any], inference: InferenceConfig, *,
                   merge_adapters: bool = True) -> Any:
    """The backbone of a saved model with its model loaded, on the backend ``inference`` and the directory call for.

    ``merge_adapters=False``: LoRA adapters saved apart stay apart (``backbone.peft``), so others can join them.
    """
    if _wants_ctranslate2(metadata, inference):
        if not merge_adapters:
            raise ConfigError("serving several LoRA adapters needs the transformers backend (CTranslate2 runs merged "
                              "weights only); leave out --backend ctranslate2")
        return ct2_backbone(model_dir, metadata, inference)

    device, dtype = _placement(model_dir, inference)
    if inference.threads is not None:
        import torch

        torch.set_num_threads(inference.threads)  # process-wide: torch has no per-model thread pool
    if is_adapter_dir(metadata):  # LoRA adapters saved apart: the backbone's weights with the adapters merged in
        backbone = adapter_backbone(model_dir, metadata, dtype=dtype, merge=merge_adapters)
    else:
        backbone = load_backbone(str(model_dir))  # config and tokenizer; the weights next, in their dtype
        # The same rule as training: FlashAttention 2 for half precision on CUDA when installed, else SDPA.
        attention = choose_attention(model_class_for(metadata["auto_class"], backbone.config), device_type=device.type,
                                     precision=_PRECISION_OF.get(dtype_name(dtype), "32"))
        backbone.load_model(metadata["auto_class"], model_kwargs={"dtype": dtype, **attention.model_kwargs()})
    backbone.model.to(device)
    return backbone


def check_backend(model_dir: Path, metadata: dict[str, Any], inference: InferenceConfig) -> None:
    """The cheap checks of :func:`saved_backbone` (package, task, architecture, device, dtype), before anything loads."""
    if not _wants_ctranslate2(metadata, inference):
        _placement(model_dir, inference)
        return
    require_ctranslate2()
    _check_ct2_options(inference)
    if not is_export(metadata):
        from transformers import AutoConfig

        check_supported(metadata["task"], AutoConfig.from_pretrained(model_dir, trust_remote_code=False))


def _placement(model_dir: Path, inference: InferenceConfig) -> tuple[Any, Any]:
    """(torch device, torch dtype) of a transformers model, or ConfigError naming what this machine or model lacks."""
    if inference.compute_type is not None:
        raise ConfigError("compute_type applies to the ctranslate2 backend; add backend='ctranslate2' (--backend ctranslate2)")
    device = resolve_device(inference.device)
    return device, resolve_dtype(inference.dtype, device=device, model_type=_model_type(model_dir))


def _model_type(model_dir: Path) -> str | None:
    """``model_type`` of the directory's config.json (float16 is refused for some), None if unreadable (loading says why)."""
    try:
        value = read_json(model_dir / "config.json").get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _check_ct2_options(inference: InferenceConfig) -> tuple[str, int]:
    """CTranslate2's (device, index) for ``inference``; ConfigError for a dtype (CTranslate2 takes --compute-type)."""
    if inference.dtype not in (None, "auto"):
        raise ConfigError(DTYPE_ON_CTRANSLATE2)
    return ct2_device(inference.device)


def _wants_ctranslate2(metadata: dict[str, Any], inference: InferenceConfig) -> bool:
    """Whether a saved model runs on CTranslate2: an export always does, a model directory when asked."""
    if is_export(metadata):
        if inference.backend == TRANSFORMERS:
            raise ConfigError("this directory is a CTranslate2 export and has no transformers weights; load the model "
                              f"directory it came from ({metadata.get('ctranslate2', {}).get('source_model', '?')}) instead")
        return True
    if inference.backend == CTRANSLATE2:
        if is_adapter_dir(metadata):
            raise ConfigError("this directory holds LoRA adapters without their backbone's weights and CTranslate2 needs a "
                              "full model: use the transformers backend, or train with --merge-adapters (the default)")
    return inference.backend == CTRANSLATE2


def ct2_backbone(model_dir: Path, metadata: dict[str, Any], inference: InferenceConfig) -> Any:
    """A :class:`~texttune.backbones.Backbone` for ``model_dir`` with a CTranslate2 model loaded."""
    require_ctranslate2()
    if is_export(metadata):
        return _export_backbone(model_dir, metadata, inference)

    device = _check_ct2_options(inference)
    backbone = load_backbone(str(model_dir))  # config and tokenizer only; no weights
    check_supported(metadata["task"], backbone.config)
    requested = inference.compute_type
    quantization = requested if requested in QUANTIZATIONS else default_compute_type(device[0])
    directory = cached_conversion(model_dir, metadata, quantization=quantization)
    backbone.model = open_model(directory, config=backbone.config, generation_config=generation_config(model_dir, backbone.config),
                                tokenizer=backbone.tokenizer, compute_type=requested or quantization, threads=inference.threads,
                                device=device)
    return backbone


def _export_backbone(model_dir: Path, metadata: dict[str, Any], inference: InferenceConfig) -> Any:
    from transformers import AutoConfig, AutoTokenizer

    device = _check_ct2_options(inference)
    config_dir = model_dir / EXPORT_CONFIG_DIR
    try:
        config = AutoConfig.from_pretrained(config_dir, trust_remote_code=False)  # a saved model never runs code
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise BackboneError(f"{model_dir}: incomplete CTranslate2 export ({str(exc).splitlines()[0]}); export it again") from None
    family = metadata.get("family") or detect_family(config)
    backbone = Backbone(str(model_dir), str(model_dir), family, config.model_type, config, tokenizer)
    backbone.model = open_model(model_dir, config=config, generation_config=generation_config(config_dir, config),
                                tokenizer=tokenizer, compute_type=inference.compute_type or "default", threads=inference.threads,
                                device=device)
    return backbone
