"""Causal language modelling: fine-tune a decoder on plain text, or train a small one from scratch.

Documents are tokenized, each ended with EOS, concatenated and cut into chunks
(``texttune.tasks.chunking``); every token is predicted from the ones before it,
and perplexity is measured on the evaluation chunks before and after training.
``predict`` continues prompts with the shared batched generation.

From scratch (``--from-scratch tiny|small``) is the same flow with a different
starting point. The API hands the engine a :class:`ScratchBackbone` that has no
weights and no tokenizer yet; :meth:`CausalLMTask.learn` (the step that sees the
training rows) trains a byte-level BPE tokenizer on them, builds a randomly
initialised Llama of the chosen size, writes both to ``RUN_DIR/init-model/`` and
points the backbone at that directory. The engine then loads it like any backbone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from texttune.backbones import Backbone
from texttune.config import GENERATION_OPTIONS, GenerationConfig, RunConfig, TaskOptions
from texttune.data import ColumnRole
from texttune.errors import BackboneError, ConfigError
from texttune.inference.generation import generate_texts
from texttune.tasks.causal_loss import supports_target_only, target_only_loss
from texttune.tasks.chunking import IGNORE, check_fits, chunk_documents, chunk_length, chunk_records, fingerprint, perplexity, score_chunks
from texttune.tasks.masked_lm import TEXT_ROLE

DEFAULT_MAX_NEW_TOKENS = 50
MIN_VOCAB = 300  # 256 byte symbols come first in a byte-level BPE vocabulary
END_OF_TEXT = "<|endoftext|>"  # the one special token of a from-scratch tokenizer: BOS, EOS and padding
# Llama shapes for --from-scratch: small enough to train on a CPU in minutes.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4},
    "small": {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 6, "num_attention_heads": 8},
}


@dataclass
class ScratchBackbone(Backbone):
    """A backbone that exists only once the task has trained its tokenizer on the training data."""

    size: str = "tiny"

    def load_model(self, auto_class: str, *, model_kwargs: dict[str, Any] | None = None) -> Any:
        if self.tokenizer is None:
            raise ConfigError(f"a --from-scratch {self.size} model exists only after training; call fit() (texttune train) first")
        return super().load_model(auto_class, model_kwargs=model_kwargs)


def scratch_backbone(size: str, *, backbone_option: str | None) -> ScratchBackbone:
    """The placeholder backbone for ``--from-scratch SIZE`` (refuses a --backbone given too)."""
    from transformers import LlamaConfig

    if backbone_option is not None:
        raise ConfigError(f"--from-scratch {size} trains a new model; it cannot be combined with --backbone {backbone_option!r}")
    config = LlamaConfig(**SIZES[size], num_key_value_heads=SIZES[size]["num_attention_heads"], tie_word_embeddings=True)
    return ScratchBackbone(name=f"from-scratch-{size}", source="", family="causal", model_type="llama",
                           config=config, tokenizer=None, size=size)


class CausalLMTask:
    """Plain text -> chunks -> next-token prediction; perplexity, and continuations on predict."""

    name: ClassVar[str] = "causal-lm"
    description: ClassVar[str] = "causal language modelling on plain text: fine-tune a decoder or train one from scratch (perplexity)"
    roles: ClassVar[tuple[ColumnRole, ...]] = (replace(TEXT_ROLE, help="plain text (one document per row); for predict, the prompt to continue"),)
    input_keys: ClassVar[tuple[str, ...]] = ("text",)
    main_metric: ClassVar[str] = "perplexity"
    metric_names: ClassVar[tuple[str, ...]] = ("perplexity", "loss")
    higher_is_better: ClassVar[bool] = False
    default_backbone: ClassVar[str] = "smollm2-135m"
    predict_options: ClassVar[tuple[str, ...]] = GENERATION_OPTIONS

    def __init__(self, options: TaskOptions | None = None) -> None:
        options = options or TaskOptions()
        if options.vocab_size < MIN_VOCAB:
            raise ConfigError(f"option 'vocab_size' must be at least {MIN_VOCAB} for a byte-level tokenizer, got {options.vocab_size}")
        self.max_length = chunk_length(options.max_length)
        self.pad_last_chunk = options.pad_last_chunk
        self.from_scratch = options.from_scratch
        self.vocab_size = options.vocab_size
        self.max_new_tokens = DEFAULT_MAX_NEW_TOKENS
        self.tokenizer: Any = None
        self._backbone: Backbone | None = None
        self._init_dir: Path | None = None
        self._eval_cache: dict[str, dict[str, Any]] = {}  # rows fingerprint -> eval chunk tensors

    # -- the Task protocol ------------------------------------------------------
    def auto_class(self, family: str) -> str:
        if family == "causal":
            return "AutoModelForCausalLM"
        raise BackboneError(f"task {self.name!r} needs a decoder-only backbone (GPT-2, Llama, SmolLM), but this one is {family!r}; "
                            "for encoders use the masked-lm task")

    def bind(self, backbone: Backbone, config: RunConfig) -> None:
        self._backbone = backbone
        if isinstance(backbone, ScratchBackbone) and backbone.tokenizer is None:
            output_dir = config.train.output_dir  # always set by fit(); None for predict before fit (refused later)
            self._init_dir = Path(output_dir) / "init-model" if output_dir else None
            return  # the tokenizer comes from learn()
        check_fits(self.max_length, backbone)
        self.tokenizer = backbone.tokenizer

    def learn(self, train_rows: Any) -> dict[str, Any]:
        if not isinstance(self._backbone, ScratchBackbone) or self.tokenizer is not None:
            return {"max_length": self.max_length}
        if self._init_dir is None:
            raise ConfigError("--from-scratch needs an output directory for its initial model (--output-dir)")
        tokenizer, config, stats = self._init_model(train_rows, self._init_dir, self._backbone.config)
        self._backbone.source, self._backbone.tokenizer, self._backbone.config = str(self._init_dir), tokenizer, config
        self.tokenizer = tokenizer
        return {"max_length": self.max_length, "vocab_size": len(tokenizer), "init_model": str(self._init_dir), **stats}

    def _init_model(self, rows: Any, init_dir: Path, base_config: Any) -> tuple[Any, Any, dict[str, Any]]:
        """Train the tokenizer on ``rows``, random-initialise a Llama, save both to ``init_dir``."""
        from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

        if (init_dir / "config.json").is_file():  # --resume: keep the tokenizer the checkpoint was trained with
            return AutoTokenizer.from_pretrained(init_dir), AutoConfig.from_pretrained(init_dir), {}
        tokenizer = train_tokenizer(rows["text"], vocab_size=self.vocab_size, max_length=self.max_length)
        eos = tokenizer.eos_token_id
        config = replace_config(base_config, vocab_size=len(tokenizer), max_position_embeddings=max(self.max_length, 2048),
                                bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
        model = LlamaForCausalLM(config)  # random weights from the torch RNG the engine seeded with --seed
        model.generation_config.eos_token_id = model.generation_config.pad_token_id = eos
        model.save_pretrained(init_dir, safe_serialization=True)
        tokenizer.save_pretrained(init_dir)
        return tokenizer, config, {"parameters": sum(p.numel() for p in model.parameters())}

    def model_kwargs(self) -> dict[str, Any]:
        return {}

    def encode(self, rows: Any) -> tuple[Any, dict[str, Any]]:
        features, stats = chunk_documents(rows, self.tokenizer, size=self.max_length, pad_last=self.pad_last_chunk,
                                          add_special_tokens=True, append_eos=True)
        return features.remove_columns("special_tokens_mask"), stats

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Stack equal-length chunks; every attended token is a label (EOS too: it may equal the pad id)."""
        import torch

        ids = torch.tensor([f["input_ids"] for f in features])  # (B, T)
        mask = torch.tensor([f["attention_mask"] for f in features])  # (B, T)
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, IGNORE)}

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        if supports_target_only(model):  # the same mean loss, skipping the head on padding
            return target_only_loss(model, batch)
        return model(**batch).loss

    def evaluate(self, model: Any, rows: Any, *, generation: GenerationConfig) -> tuple[dict[str, float], list[dict[str, Any]]]:
        key = fingerprint(rows)
        if key not in self._eval_cache:
            features, _ = self.encode(rows)
            self._eval_cache[key] = self.collate([features[i] for i in range(len(features))])
        chunks = self._eval_cache[key]
        sums, counts = score_chunks(model, chunks, batch_size=generation.generation_batch_size, shift=True)
        return perplexity(sums, counts), chunk_records(self.tokenizer, chunks, sums, counts)

    def baselines(self, rows: Any) -> dict[str, dict[str, float]]:
        return {}  # the untrained (zero-shot) model is the reference

    def predict(self, model: Any, inputs: list[dict[str, Any]], *, generation: GenerationConfig) -> list[dict[str, Any]]:
        """Continue each prompt; at most ``--max-new-tokens`` (default 50) new tokens, stopping at EOS."""
        if generation.max_new_tokens is None:
            generation = replace(generation, max_new_tokens=self.max_new_tokens)
        ids = [self.tokenizer(row["text"], add_special_tokens=True)["input_ids"] for row in inputs]
        return [{"output": text} for text in generate_texts(model, self.tokenizer, ids, decoder_only=True, options=generation)]

    def finalize_model(self, model: Any) -> None:
        """Plain transformers then generates as texttune does (no silent 20-token limit)."""
        model.generation_config.max_new_tokens = self.max_new_tokens

    def metadata(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "pad_last_chunk": self.pad_last_chunk, "max_new_tokens": self.max_new_tokens,
                "from_scratch": self.from_scratch, "vocab_size": len(self.tokenizer) if self.tokenizer is not None else None}

    def restore(self, metadata: dict[str, Any], *, tokenizer: Any = None, model: Any = None) -> None:
        self.max_length = metadata["max_length"]
        self.pad_last_chunk = metadata.get("pad_last_chunk", False)
        self.max_new_tokens = metadata.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS
        self.tokenizer = tokenizer


def replace_config(config: Any, **changes: Any) -> Any:
    """A copy of a transformers config with some fields changed."""
    return type(config)(**{**config.to_dict(), **changes})


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
                                   pad_token=END_OF_TEXT, model_max_length=max(max_length, 2048))
