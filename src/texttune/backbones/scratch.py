"""From-scratch backbones: ``--backbone scratch:tiny`` or ``scratch:small``.

A new Llama with random weights and a byte-level BPE tokenizer trained on the
run's own training text, instead of a pretrained model. Until the training rows
are known the backbone has a config but no tokenizer: the recipe calls
:meth:`ScratchBackbone.initialise` once with them (every other backbone does
nothing there), which trains the tokenizer, random-initialises the model from the
torch RNG the recipe seeded, writes both to ``RUN_DIR/init-model/`` and points
the backbone at that directory. From then on it loads like any local backbone.
A resumed run finds ``init-model/`` and keeps the tokenizer it trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from texttune.backbones.backbone import Backbone
from texttune.errors import ConfigError, choices

PREFIX = "scratch:"
DEFAULT_VOCAB_SIZE = 8000
MIN_VOCAB = 300  # 256 byte symbols come first in a byte-level BPE vocabulary
POSITIONS = 2048  # longest sequence a new model reads (tasks refuse longer chunks with a clear message)
END_OF_TEXT = "<|endoftext|>"  # the one special token of a from-scratch tokenizer: BOS, EOS and padding
# Llama shapes: small enough to train on a CPU in minutes.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4},
    "small": {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 6, "num_attention_heads": 8},
}


def is_scratch(name: str | None) -> bool:
    """Whether a ``--backbone`` value asks for a new model (``scratch:SIZE``)."""
    return bool(name) and str(name).startswith(PREFIX)


@dataclass
class ScratchBackbone(Backbone):
    """A backbone that exists only once :meth:`initialise` has seen the training text."""

    size: str = "tiny"
    vocab_size: int = DEFAULT_VOCAB_SIZE

    @property
    def scratch(self) -> bool:
        return True

    def load_model(self, auto_class: str, *, model_kwargs: dict[str, Any] | None = None) -> Any:
        if self.tokenizer is None:
            raise ConfigError(f"a {self.name} model exists only after training; call fit() (texttune train) first")
        return super().load_model(auto_class, model_kwargs=model_kwargs)

    def initialise(self, rows: Any, *, directory: Path) -> dict[str, Any]:
        """Train the tokenizer on every text column of ``rows``, random-initialise the model, save both to ``directory``."""
        from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

        if self.tokenizer is not None:
            return {}
        if (directory / "config.json").is_file():  # --resume: keep the tokenizer the checkpoint was trained with
            self.source, self.tokenizer, self.config = str(directory), AutoTokenizer.from_pretrained(directory), \
                AutoConfig.from_pretrained(directory)
            return {"init_model": str(directory)}
        tokenizer = train_tokenizer(_texts(rows), vocab_size=self.vocab_size, max_length=POSITIONS)
        eos = tokenizer.eos_token_id
        config = type(self.config)(**{**self.config.to_dict(), "vocab_size": len(tokenizer), "max_position_embeddings": POSITIONS,
                                      "bos_token_id": eos, "eos_token_id": eos, "pad_token_id": eos})
        model = LlamaForCausalLM(config)  # random weights from the torch RNG the recipe seeded with --seed
        model.generation_config.eos_token_id = model.generation_config.pad_token_id = eos
        model.save_pretrained(directory, safe_serialization=True)
        tokenizer.save_pretrained(directory)
        self.source, self.tokenizer, self.config = str(directory), tokenizer, config
        return {"vocab_size": len(tokenizer), "init_model": str(directory),
                "parameters": sum(p.numel() for p in model.parameters())}


def scratch_backbone(name: str, *, vocab_size: int | None = None) -> ScratchBackbone:
    """The placeholder backbone for ``scratch:SIZE`` (weights and tokenizer come from :meth:`ScratchBackbone.initialise`)."""
    from transformers import LlamaConfig

    size = name[len(PREFIX):]
    if size not in SIZES:
        raise ConfigError(f"backbone {name!r}: unknown size {size!r}; valid: {choices(f'{PREFIX}{s}' for s in SIZES)}")
    vocab = DEFAULT_VOCAB_SIZE if vocab_size is None else vocab_size
    if vocab < MIN_VOCAB:
        raise ConfigError(f"option 'vocab_size' must be at least {MIN_VOCAB} for a byte-level tokenizer, got {vocab}")
    config = LlamaConfig(**SIZES[size], num_key_value_heads=SIZES[size]["num_attention_heads"], tie_word_embeddings=True)
    return ScratchBackbone(name=name, source="", family="causal", model_type="llama", config=config, tokenizer=None,
                           size=size, vocab_size=vocab)


def _texts(rows: Any) -> Any:
    """Every text cell of ``rows`` (all string columns), for training the tokenizer."""
    columns = [c for c in rows.column_names if rows.features[c].dtype in {"string", "large_string"}]
    if not columns:
        raise ConfigError(f"a scratch backbone trains its tokenizer on text columns, but the training data has none "
                          f"(columns: {', '.join(rows.column_names)})")
    if len(columns) == 1:
        return rows[columns[0]]
    return [text for column in columns for text in rows[column]]


def train_tokenizer(texts: Any, *, vocab_size: int, max_length: int) -> Any:
    """A GPT-2-style byte-level BPE tokenizer trained on ``texts`` (never produces unknown tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator((texts[i : i + 1000] for i in range(0, len(texts), 1000)), trainer=trainer, length=len(texts))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT,
                                   pad_token=END_OF_TEXT, model_max_length=max_length)
