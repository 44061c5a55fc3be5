"""Causal language modelling: fine-tune a decoder on plain text, or train a small one from scratch.

Documents are tokenized, each ended with EOS, concatenated and cut into chunks
(``texttune.tasks.chunking``); every token is predicted from the ones before it,
and perplexity is measured on the evaluation chunks before and after training.
``predict`` continues prompts with the shared batched generation.

From scratch is a backbone, not a task feature (``--backbone scratch:tiny``, see
``texttune.backbones.scratch``); ``--from-scratch SIZE`` is this task's short
name for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from texttune.backbones import Backbone
from texttune.config import GENERATION_OPTIONS, GenerationConfig, RunConfig, option
from texttune.data import ColumnRole
from texttune.errors import BackboneError, ConfigError
from texttune.inference.backends import refuse_backend
from texttune.inference.generation import Prompts, generate_prompts
from texttune.tasks.causal_loss import supports_target_only, target_only_loss
from texttune.tasks.chunking import (
    DEFAULT_MAX_LENGTH,
    IGNORE,
    check_fits,
    chunk_documents,
    chunk_records,
    chunk_statistics,
    fingerprint,
    perplexity,
    score_chunk_records,
    score_chunks,
)
from texttune.tasks.masked_lm import TEXT_ROLE
from texttune.tasks.packing import model_inputs

DEFAULT_MAX_NEW_TOKENS = 50


@dataclass
class CausalLMOptions:
    """How plain text is cut for next-token prediction; ``from_scratch`` picks a new backbone."""

    max_length: int = option(DEFAULT_MAX_LENGTH, "Tokens per training chunk (documents are concatenated and cut).", ge=2)
    pad_last_chunk: bool = option(False, "Pad the last partial chunk instead of dropping it.")
    from_scratch: str | None = option(None, "Train a new model of this size with a tokenizer trained on the corpus instead of "
                                      "fine-tuning: the same as --backbone scratch:SIZE.", choices=("tiny", "small"))


class CausalLMTask:
    """Plain text -> chunks -> next-token prediction; perplexity, and continuations on predict."""

    name: ClassVar[str] = "causal-lm"
    pipeline_tag: ClassVar[str] = "text-generation"  # the Hugging Face pipeline and hub tag (model card)
    api_name: ClassVar[str] = "CausalLM"
    options: ClassVar[type] = CausalLMOptions
    generates: ClassVar[bool] = True
    heads: ClassVar[tuple[str, ...]] = ()  # the LM head is tied to the embeddings or pretrained
    description: ClassVar[str] = "causal language modelling on plain text: fine-tune a decoder or train one from scratch (perplexity)"
    # Measured (benchmarks/recipes.py --case brown-smollm2, docs/recipes.md): Brown corpus, SmolLM2-135M, 12 x 4,
    # seeds 0-2: validation perplexity 135.9 (133.7-137.3) at the generic 5e-5 without warmup, 113.1 (105.0-118.1) at
    # 3e-4 with warmup 0.1; seed 0 also tried 1e-4 (124.0) and 1e-3 (139.9).
    train_defaults: ClassVar[dict[str, Any]] = {"learning_rate": 3e-4, "warmup_ratio": 0.1}
    # Under --peft lora (rank 8, alpha 16; --case brown-smollm2 and brown-smollm2-48): adapters start at zero and want
    # a far larger rate. 12 x 4, seeds 0-2: 5e-5 251.6, 3e-4 237.5, 2e-3 155.8, 5e-3 132.2, 1e-2 118.6; 48 x 4: 5e-5
    # 242.6 and 3e-4 166.9 (seed 0), 2e-3 107.7, 5e-3 102.7 (seeds 0-2), 1e-2 111.6 (seed 0). 5e-3 wins at 48 steps on
    # every seed; the best rate falls as the budget grows, so a long run may want less.
    lora_train_defaults: ClassVar[dict[str, Any]] = {"learning_rate": 5e-3, "warmup_ratio": 0.1}
    roles: ClassVar[tuple[ColumnRole, ...]] = (replace(TEXT_ROLE, help="plain text (one document per row); for predict, the prompt to "
                                                                       "continue"),)
    input_keys: ClassVar[tuple[str, ...]] = ("text",)
    main_metric: ClassVar[str] = "perplexity"
    metric_names: ClassVar[tuple[str, ...]] = ("perplexity", "loss")
    default_backbone: ClassVar[str] = "smollm2-135m"
    # Chunks cut from the concatenated text: a process's share of the rows would chunk differently, so a
    # distributed evaluation scores the whole set on every process (engine/distributed.py).
    evaluates_whole: ClassVar[bool] = True
    request_options: ClassVar[tuple[str, ...]] = GENERATION_OPTIONS

    def __init__(self, options: CausalLMOptions | None = None) -> None:
        options = options or CausalLMOptions()
        self.max_length = options.max_length
        self.pad_last_chunk = options.pad_last_chunk
        self.from_scratch = options.from_scratch
        self.max_new_tokens = DEFAULT_MAX_NEW_TOKENS
        self.tokenizer: Any = None
        self._eval_cache: dict[str, dict[str, Any]] = {}  # rows fingerprint -> eval chunk tensors

    def choose_backbone(self, given: str | None) -> str:
        """The backbone to load: ``--from-scratch SIZE`` is ``scratch:SIZE``; it cannot be combined with --backbone."""
        if self.from_scratch is None:
            return given or self.default_backbone
        if given is not None:
            raise ConfigError(f"--from-scratch {self.from_scratch} trains a new model; it cannot be combined with --backbone {given!r}")
        return f"scratch:{self.from_scratch}"

    # -- the Task protocol ------------------------------------------------------
    def auto_class(self, family: str) -> str:
        if family == "causal":
            return "AutoModelForCausalLM"
        raise BackboneError(f"task {self.name!r} needs a decoder-only backbone (GPT-2, Llama, SmolLM), but this one is {family!r}; "
                            "for encoders use the masked-lm task")

    def bind(self, backbone: Backbone, config: RunConfig) -> None:
        check_fits(self.max_length, backbone)
        self.tokenizer = backbone.tokenizer

    def learn(self, train_rows: Any) -> dict[str, Any]:
        return {"max_length": self.max_length}

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

    def packing_capacity(self) -> int:
        """Tokens a packed training row holds (tasks/packing.py): one chunk of ``--max-length``; short documents
        (their last chunks) share rows."""
        return self.max_length

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        if supports_target_only(model):  # the same mean loss, skipping the head on padding
            return target_only_loss(model, batch)
        return model(**model_inputs(batch)).loss  # a packed batch without its counts, cache off

    def evaluate(self, model: Any, rows: Any, *, generation: GenerationConfig) -> tuple[dict[str, float], list[dict[str, Any]]]:
        refuse_backend(model, "evaluated (causal-lm evaluate measures perplexity)")  # needs per-token losses
        key = fingerprint(rows)
        if key not in self._eval_cache:
            features, _ = self.encode(rows)
            self._eval_cache[key] = self.collate([features[i] for i in range(len(features))])
        chunks = self._eval_cache[key]
        sums, counts = score_chunks(model, chunks, batch_size=generation.generation_batch_size, shift=True)
        return perplexity(sums, counts), chunk_records(self.tokenizer, chunks, sums, counts)

    def score_records(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """Perplexity and loss from evaluate's chunk records (the bootstrap resamples chunks)."""
        return score_chunk_records(records)

    def row_statistics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Per-chunk (loss sum, tokens), for the fast bootstrap."""
        return chunk_statistics(records)

    def baselines(self, rows: Any) -> dict[str, tuple[dict[str, float], list[dict[str, Any]]]]:
        return {}  # the untrained (zero-shot) model is the reference

    def prompts(self, model: Any, rows: list[dict[str, Any]], *, generation: GenerationConfig) -> Prompts:
        """The texts to continue, tokenized as in training (with the tokenizer's special tokens)."""
        if generation.max_new_tokens is None:
            generation = replace(generation, max_new_tokens=self.max_new_tokens)
        ids = [self.tokenizer(row["text"], add_special_tokens=True)["input_ids"] for row in rows]
        return Prompts(tokenizer=self.tokenizer, ids=ids, decoder_only=True, options=generation)

    def chat_input(self, messages: list[dict[str, str]]) -> str:
        """A chat request as text to continue: the turns laid out by the tokenizer's chat template, ending with the
        assistant's turn opened. ConfigError when the tokenizer has no template (nothing says how to lay out turns)."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError("this model's tokenizer has no chat template, so chat turns have no layout; send text to "
                              "/v1/completions, or fine-tune with the chat task")
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        bos, bos_id = self.tokenizer.bos_token, self.tokenizer.bos_token_id
        adds_bos = bos_id is not None and self.tokenizer("x", add_special_tokens=True)["input_ids"][:1] == [bos_id]
        return text[len(bos):] if adds_bos and bos and text.startswith(bos) else text  # tokenizing adds it again

    def predict(self, model: Any, inputs: list[dict[str, Any]], *, generation: GenerationConfig) -> list[dict[str, Any]]:
        """Continue each prompt; at most ``--max-new-tokens`` (default 50) new tokens, stopping at EOS."""
        return [{"output": text} for text in generate_prompts(model, self.prompts(model, inputs, generation=generation))]

    def finalize_model(self, model: Any) -> None:
        """Plain transformers then generates as texttune does (no silent 20-token limit)."""
        model.generation_config.max_new_tokens = self.max_new_tokens

    def metadata(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "pad_last_chunk": self.pad_last_chunk, "max_new_tokens": self.max_new_tokens,
                "from_scratch": self.from_scratch}

    def restore(self, metadata: dict[str, Any], *, tokenizer: Any = None, model: Any = None) -> None:
        self.max_length = metadata["max_length"]
        self.pad_last_chunk = metadata.get("pad_last_chunk", False)
        self.max_new_tokens = metadata.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS
        self.tokenizer = tokenizer
