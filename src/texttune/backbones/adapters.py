"""LoRA adapters (the PEFT library) and gradient checkpointing on a loaded backbone.

The recipe calls :func:`prepare_model` once the task's model is loaded, and
:func:`finish_training` before the model is saved. Tasks never see PEFT: LoRA
layers are injected into the transformers model in place, so ``backbone.model``
stays the same ``*ForSeq2SeqLM`` / ``*ForTokenClassification`` object with the
same methods (``generate``, ``base_model``, ``get_output_embeddings``); the
:class:`peft.PeftModel` around it is kept on ``backbone.peft`` for merging and
saving. Only adapter weights (and the task's new head, via ``modules_to_save``)
require gradients, which is what the engine trims checkpoints by.

A model saved with ``--no-merge-adapters`` holds the adapters, the model config
and the tokenizer; ``texttune.json`` names the backbone they apply to.
:func:`adapter_backbone` rebuilds it (backbone weights + adapters, merged once
at load time so inference costs the same as a plain model).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from texttune.backbones.aliases import ALIASES
from texttune.backbones.sources import load_backbone, resolve_source
from texttune.errors import BackboneError, ConfigError
from texttune.peft_config import PeftOptions, split_names

log = logging.getLogger("texttune")

#: Attention projections that get adapters by default, per model type, where PEFT's own table has none.
_TARGETS: dict[str, list[str]] = {
    "marian": ["q_proj", "v_proj"], "mbart": ["q_proj", "v_proj"], "pegasus": ["q_proj", "v_proj"],
    "m2m_100": ["q_proj", "v_proj"], "nllb-moe": ["q_proj", "v_proj"], "distilbert": ["q_lin", "v_lin"],
    "electra": ["query", "value"], "deberta-v2": ["query_proj", "value_proj"], "mpnet": ["q", "v"],
}
#: Heads a task creates (randomly initialised) or must adapt: trained in full and saved with the adapters.
def default_targets(config: Any) -> list[str]:
    """The attention query and value projections of ``config``'s family (bert2bert: both halves)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

    if config.model_type == "encoder-decoder":  # EncoderDecoderModel: the encoder's and decoder's own names
        return sorted({name for part in (config.encoder, config.decoder) for name in default_targets(part)})
    targets = PEFT_TARGETS.get(config.model_type) or _TARGETS.get(config.model_type)
    if not targets:
        raise ConfigError(f"no default LoRA layers for model type {config.model_type!r}; name them with "
                          "--lora-target-modules (e.g. q_proj,v_proj) or use --lora-target-modules all-linear")
    return list(targets)


def _present(model: Any, names: tuple[str, ...] | list[str]) -> list[str]:
    """The entries of ``names`` that name a module of ``model`` (as a full name or a dotted suffix)."""
    modules = [name for name, _ in model.named_modules()]
    return [n for n in names if any(m == n or m.endswith("." + n) for m in modules)]


def modules_to_save(model: Any, *, heads: tuple[str, ...], options: PeftOptions) -> list[str]:
    """Layers trained in full besides the adapters: the user's list, else the task's ``heads`` the model has."""
    given = split_names(options.lora_modules_to_save)
    if given is None:
        return _present(model, heads)
    missing = [n for n in given if not _present(model, [n])]
    if missing:
        raise ConfigError(f"lora_modules_to_save: the model has no layer named {missing[0]!r}")
    return given


def lora_config(model: Any, *, heads: tuple[str, ...], options: PeftOptions) -> Any:
    """The :class:`peft.LoraConfig` for ``model``: the options, with family defaults filled in."""
    from peft import LoraConfig

    targets = split_names(options.lora_target_modules) or default_targets(model.config)
    return LoraConfig(
        r=options.lora_rank, lora_alpha=options.lora_alpha, lora_dropout=options.lora_dropout, bias="none",
        target_modules="all-linear" if targets == ["all-linear"] else targets,
        modules_to_save=modules_to_save(model, heads=heads, options=options) or None,
        fan_in_fan_out=model.config.model_type == "gpt2",  # GPT-2 stores its projections as Conv1D (in, out)
    )


@contextlib.contextmanager
def _quiet_peft() -> Iterator[None]:
    """PEFT asks transformers for ``is_gradient_checkpointing``, deprecated in 5.24: same answer, a warning per call."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)
        yield


def add_lora(backbone: Any, *, heads: tuple[str, ...], options: PeftOptions) -> Any:
    """Inject LoRA adapters into ``backbone.model`` in place; keep and return the PeftModel around it."""
    from peft import get_peft_model

    config = lora_config(backbone.model, heads=heads, options=options)
    try:
        with _quiet_peft():
            wrapped = get_peft_model(backbone.model, config)
    except ValueError as exc:  # target modules not found, unsupported layer types
        linear = sorted({name.rsplit(".", 1)[-1] for name, module in backbone.model.named_modules()
                         if type(module).__name__ in {"Linear", "Conv1D"}})
        raise ConfigError(f"LoRA cannot adapt this backbone ({str(exc).splitlines()[0]}); its linear layers are named: "
                          f"{', '.join(linear[:20])}") from None
    backbone.peft = wrapped
    assert wrapped.get_base_model() is backbone.model  # tasks keep the transformers model they know
    return wrapped


def enable_gradient_checkpointing(model: Any) -> None:
    """Recompute activations in backward (non-reentrant checkpointing: works with frozen embeddings)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ConfigError(f"{type(model).__name__} does not support gradient checkpointing; drop --gradient-checkpointing")
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.24 renamed it
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if any(not p.requires_grad for p in model.parameters()):
        model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still get an input that needs grad


def is_checkpointing(model: Any) -> bool:
    """Whether gradient (activation) checkpointing is on, under either transformers name."""
    name = "is_activation_checkpointing" if hasattr(type(model), "is_activation_checkpointing") else "is_gradient_checkpointing"
    return bool(getattr(model, name, False))


def disable_checkpointing(model: Any) -> None:
    """Back to storing activations (a saved model should not carry the training-time setting)."""
    if hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()


def parameter_counts(model: Any) -> dict[str, Any]:
    """Trainable and total parameters (tied weights once), and the trainable share in percent."""
    unique = {id(p): p for p in model.parameters()}.values()
    total = sum(p.numel() for p in unique)
    trainable = sum(p.numel() for p in unique if p.requires_grad)
    return {"trainable": int(trainable), "total": int(total), "trainable_percent": round(100 * trainable / max(total, 1), 4)}


def prepare_model(backbone: Any, *, heads: tuple[str, ...], options: PeftOptions) -> dict[str, Any]:
    """LoRA and gradient checkpointing as ``options`` ask; returns what was done (for model_summary.json).

    ``heads``: the modules the task adds (``task.heads``), trained in full beside the adapters.
    """
    done: dict[str, Any] = {}
    if options.peft == "lora":
        if backbone.scratch:
            raise ConfigError(f"--peft lora adapts a pretrained backbone; a new model ({backbone.name}) "
                              "has nothing to adapt: drop one of them")
        wrapped = backbone.peft or add_lora(backbone, heads=heads, options=options)
        done["peft"] = describe(wrapped)
    if options.gradient_checkpointing:
        enable_gradient_checkpointing(backbone.model)
        done["gradient_checkpointing"] = True
    counts = parameter_counts(backbone.model)
    log.info("trainable parameters: %s of %s (%.2f%%)%s", f"{counts['trainable']:,}", f"{counts['total']:,}",
             counts["trainable_percent"], f", LoRA on {', '.join(done['peft']['target_modules'])}" if "peft" in done else "")
    return done


def describe(wrapped: Any) -> dict[str, Any]:
    """The adapter settings that texttune.json and model_summary.json record."""
    config = wrapped.peft_config["default"]
    targets = config.target_modules
    return {"method": "lora", "rank": config.r, "alpha": config.lora_alpha, "dropout": config.lora_dropout,
            "target_modules": sorted(targets) if not isinstance(targets, str) else [targets],
            "modules_to_save": sorted(config.modules_to_save or [])}


def finish_training(backbone: Any, *, options: PeftOptions) -> dict[str, Any] | None:
    """Before saving: checkpointing off, adapters merged unless ``--no-merge-adapters``; the texttune.json "peft" entry."""
    model = backbone.model
    if is_checkpointing(model):
        disable_checkpointing(model)
    if backbone.peft is None:
        return None
    info = describe(backbone.peft)
    if options.merge_adapters:
        backbone.model = backbone.peft.merge_and_unload()
        backbone.peft = None
        return {**info, "merged": True}
    return {**info, "merged": False, "base_model": base_reference(backbone)}


def base_reference(backbone: Any) -> str:
    """How an adapter directory names its backbone: the alias or hub name, or the absolute local directory."""
    if backbone.name in ALIASES or not Path(backbone.source).is_dir():
        return backbone.name
    return str(Path(backbone.source).resolve())


def is_adapter_dir(metadata: dict[str, Any]) -> bool:
    """Whether a saved model's texttune.json describes adapters kept apart from their backbone."""
    peft = metadata.get("peft")
    return isinstance(peft, dict) and peft.get("merged") is False


def adapter_backbone(model_dir: Path, metadata: dict[str, Any], *, dtype: Any = None, merge: bool = True) -> Any:
    """The Backbone of an adapter directory: its backbone's weights, the adapters merged in, its own config and tokenizer.

    ``dtype``: the torch dtype the backbone's weights are loaded in (None: transformers' default), so a
    bfloat16 model is never held in float32 on the way; the adapters are merged into weights of that type.
    ``merge=False``: the adapters stay apart (``backbone.peft``, adapter name "default"), so others can join them
    (``backbones/adapter_set.py``).
    """
    base = metadata["peft"].get("base_model")
    try:
        source = resolve_source(str(base))
    except BackboneError as exc:
        raise BackboneError(f"{model_dir} holds LoRA adapters for backbone {base!r}, which cannot be found ({exc}); "
                            "save the model with merged adapters to make it self-contained") from None
    backbone = load_backbone(str(model_dir))  # the fine-tuned config (labels, generation) and tokenizer
    own_source, backbone.source = backbone.source, source  # the weights come from the backbone...
    backbone.load_model(metadata["auto_class"], model_kwargs={"config": backbone.config, "ignore_mismatched_sizes": True,
                                                             **({"dtype": dtype} if dtype is not None else {})})
    backbone.source = own_source  # ...then the adapters from the directory
    _load_generation_config(backbone.model, model_dir)
    return _merged(backbone, model_dir) if merge else _kept_apart(backbone, model_dir)


def _merged(backbone: Any, model_dir: Path) -> Any:
    from peft import PeftModel

    try:
        with _quiet_peft():
            wrapped = PeftModel.from_pretrained(backbone.model, str(model_dir))
    except (OSError, ValueError, RuntimeError) as exc:
        raise BackboneError(f"{model_dir}: cannot load its LoRA adapters ({str(exc).splitlines()[0]})") from None
    backbone.model = wrapped.merge_and_unload().eval()
    return backbone


def _kept_apart(backbone: Any, model_dir: Path) -> Any:
    from peft import PeftModel

    try:
        with _quiet_peft():
            backbone.peft = PeftModel.from_pretrained(backbone.model, str(model_dir))  # LoRA layers injected in place
    except (OSError, ValueError, RuntimeError) as exc:
        raise BackboneError(f"{model_dir}: cannot load its LoRA adapters ({str(exc).splitlines()[0]})") from None
    backbone.model.eval()
    return backbone


def _load_generation_config(model: Any, model_dir: Path) -> None:
    if (model_dir / "generation_config.json").is_file():
        from transformers import GenerationConfig

        model.generation_config = GenerationConfig.from_pretrained(model_dir)


def save_adapters(directory: Path, *, wrapped: Any, model: Any) -> None:
    """Adapter files (adapter_config.json, adapter_model.safetensors) plus the model config beside them.

    adapter_config.json names the directory the backbone was loaded from, so PEFT alone can load it on
    this machine; texttune.json names the backbone as the user did (an alias works on any machine).
    """
    wrapped.save_pretrained(directory, safe_serialization=True)
    model.config.save_pretrained(directory)
    if getattr(model, "generation_config", None) is not None and model.can_generate():
        model.generation_config.save_pretrained(directory)
