"""Load any backbone by offline alias, local directory or hub name, and tell its family.

The family decides how a text-to-text task talks to the model:

- ``seq2seq``: encoder-decoder (T5, BART, Marian, Pegasus, EncoderDecoder/bert2bert);
- ``causal``: decoder-only (GPT-2, Llama, SmolLM), prompted with a template;
- ``encoder``: encoder-only (BERT, MiniLM), for tagging, QA and masked LM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from texttune.backbones.aliases import ALIASES, resolve_alias
from texttune.backbones.backbone import Backbone
from texttune.backbones.scratch import is_scratch, scratch_backbone
from texttune.errors import BackboneError, ConfigError, choices
from texttune.hub import hub_problem

# Encoder-only models that transformers also lists under causal LM (as decoders of an EncoderDecoder).
_ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "electra", "distilbert", "deberta", "deberta-v2", "camembert", "albert",
                  "ernie", "mpnet", "megatron-bert"}


def detect_family(config: Any) -> str:
    """seq2seq, causal or encoder, from a transformers config."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    if config.model_type in _ENCODER_TYPES:
        return "encoder"
    if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "causal"
    return "encoder"


def resolve_source(name: str) -> str:
    """Turn an alias, directory or hub name into something ``from_pretrained`` can open offline-safely."""
    if name in ALIASES:
        return str(resolve_alias(name))
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise BackboneError(f"backbone {name!r} is a file; pass the model directory that contains config.json")
        if (path / "model" / "config.json").is_file():  # a texttune run directory
            return str(path / "model")
        if not (path / "config.json").is_file():
            raise BackboneError(f"{name} is not a model directory (no config.json in it)")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise BackboneError(f"backbone directory not found: {name}")
    return name


def load_config(source: str, *, trust_remote_code: bool) -> Any:
    """The model config, from the local cache first; one clear line when the hub is out of reach."""
    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, local_files_only=True, trust_remote_code=trust_remote_code)
    except OSError:
        pass
    except (ValueError, TypeError, StrictDataclassError) as exc:  # transformers 5 validates config fields (a text where a number belongs)
        reason = " ".join(str(exc).split())  # its messages span lines (upgrade hints); errors are one line
        raise BackboneError(f"{source}: cannot read the model config ({reason})") from None
    if Path(source).is_dir():
        raise BackboneError(f"{source}: config.json is unreadable or not a transformers model config")
    problem = hub_problem(source)
    if problem is not None:
        raise BackboneError(
            f"backbone {source!r} is not in the local cache and the model hub {problem}. "
            f"Pass a local model directory (--backbone /path/to/model) or an offline alias: {choices(ALIASES)}"
        )
    try:
        return AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise BackboneError(f"backbone {source!r}: not found on the hub or not a model ({str(exc).splitlines()[0]})") from None


_TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "merges.txt", "spiece.model",
                    "tokenizer.model", "sentencepiece.bpe.model", "source.spm"}


def _has_tokenizer_files(directory: Path) -> bool:
    return any((directory / name).is_file() for name in _TOKENIZER_FILES) or any(directory.glob("*.tiktoken"))


def load_backbone(name: str, *, trust_remote_code: bool = False, auto_class: str | None = None,
                  vocab_size: int | None = None) -> Backbone:
    """Resolve ``name``, read its config and tokenizer; with ``auto_class``, load the model too.

    ``scratch:SIZE`` gives a new model whose tokenizer (``vocab_size`` tokens) is trained on the run's data.
    """
    import transformers

    if is_scratch(name):
        return scratch_backbone(name, vocab_size=vocab_size)
    if vocab_size is not None:
        raise ConfigError(f"option 'vocab_size' sizes the tokenizer of a new model (--backbone scratch:tiny or scratch:small); "
                          f"backbone {name!r} comes with its own tokenizer")
    source = resolve_source(name)
    config = load_config(source, trust_remote_code=trust_remote_code)
    offline = Path(source).is_dir() or hub_problem(source) is not None  # the hub out of reach: the cache, at once
    if Path(source).is_dir() and not _has_tokenizer_files(Path(source)):
        # transformers would build an empty tokenizer from the config alone: every word <unk>, outputs silently empty.
        raise BackboneError(f"backbone {name!r}: {source} has no tokenizer files (tokenizer.json, tokenizer_config.json, "
                            "vocab files...); copy them next to config.json")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=offline, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackboneError(f"backbone {name!r}: cannot load its tokenizer ({first})") from None
    backbone = Backbone(name, source, detect_family(config), config.model_type, config, tokenizer, trust_remote_code)
    if auto_class is not None:
        backbone.load_model(auto_class)
    return backbone
