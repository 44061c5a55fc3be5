"""Masked language modelling: adapt an encoder (BERT, MiniLM, RoBERTa) to a domain's text.

Training masks a fresh random 15% of each chunk's tokens every time a batch is
drawn (transformers' ``DataCollatorForLanguageModeling``, optionally masking whole
words). Evaluation masks the evaluation chunks once, with a fixed seed, and keeps
them: perplexity before training, after each epoch and in another run is then
measured on the very same masked tokens, so the numbers are comparable. The saved
``model/`` directory is a plain ``save_pretrained`` encoder: it is a backbone for
token classification or question answering like any other.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

from texttune.backbones import Backbone
from texttune.config import GenerationConfig, RunConfig, option
from texttune.data import ColumnRole
from texttune.errors import BackboneError, DataError
from texttune.tasks.chunking import (
    DEFAULT_MAX_LENGTH,
    check_fits,
    chunk_documents,
    chunk_records,
    chunk_statistics,
    fingerprint,
    perplexity,
    score_chunk_records,
    score_chunks,
)

EVAL_MASK_SEED = 1234  # fixed, not the run's --seed: every run scores the same masked tokens
TEXT_ROLE = ColumnRole("text", ("text", "document", "content", "sentence"), help="plain text (one document per row)")


@dataclass
class MaskedLMOptions:
    """What masked language modelling asks of an encoder, and how many fill-mask candidates predict returns."""

    max_length: int = option(DEFAULT_MAX_LENGTH, "Tokens per training chunk (documents are concatenated and cut).", ge=2)
    mlm_probability: float = option(0.15, "Fraction of tokens to mask.", gt=0, lt=1)
    whole_word_masking: bool = option(False, "Mask whole words instead of single sub-tokens.")
    pad_last_chunk: bool = option(False, "Pad the last partial chunk instead of dropping it.")
    top_k: int = option(5, "Fill-mask candidates per mask token that predict and serve return (a request may ask for "
                        "another number).", ge=1, le=1000)


class MaskedLMTask:
    """Plain text -> chunks -> masked-token prediction; perplexity on a fixed masking."""

    name: ClassVar[str] = "masked-lm"
    pipeline_tag: ClassVar[str] = "fill-mask"  # the Hugging Face pipeline and hub tag (model card)
    api_name: ClassVar[str] = "MaskedLM"
    options: ClassVar[type] = MaskedLMOptions
    generates: ClassVar[bool] = False
    # The MLM head's transform (hidden x hidden): new when the backbone shipped without an MLM head
    # (sentence-embedding checkpoints such as MiniLM), so LoRA trains it in full. The decoder stays
    # tied to the frozen embeddings.
    heads: ClassVar[tuple[str, ...]] = ("cls.predictions.transform", "lm_head.dense", "lm_head.layer_norm")
    description: ClassVar[str] = "masked language modelling on plain text: adapt an encoder to a domain (perplexity)"
    # Measured (benchmarks/recipes.py --case imdb-minilm, docs/recipes.md): IMDb reviews, minilm, 30 x 8, seeds 0-2:
    # validation perplexity 1227.8 (1216.9-1244.1) at the generic 5e-5 without warmup, 787.9 (725.0-825.4) at 3e-4
    # with warmup 0.1; seed 0 also tried 1e-4 (1019.2) and 1e-3 (907.0).
    train_defaults: ClassVar[dict[str, Any]] = {"learning_rate": 3e-4, "warmup_ratio": 0.1}
    roles: ClassVar[tuple[ColumnRole, ...]] = (TEXT_ROLE,)
    input_keys: ClassVar[tuple[str, ...]] = ("text",)
    main_metric: ClassVar[str] = "perplexity"
    metric_names: ClassVar[tuple[str, ...]] = ("perplexity", "loss")
    default_backbone: ClassVar[str] = "minilm"
    # Chunks cut from the concatenated text: a process's share of the rows would chunk differently, so a
    # distributed evaluation scores the whole set on every process (engine/distributed.py).
    evaluates_whole: ClassVar[bool] = True
    request_options: ClassVar[tuple[str, ...]] = ("top_k",)  # candidates per mask

    def __init__(self, options: MaskedLMOptions | None = None) -> None:
        options = options or MaskedLMOptions()
        self.max_length = options.max_length
        self.top_k = options.top_k
        self.mlm_probability = options.mlm_probability
        self.whole_word_masking = options.whole_word_masking
        self.pad_last_chunk = options.pad_last_chunk
        self.tokenizer: Any = None
        self._collator: Any = None
        self._eval_cache: dict[str, dict[str, Any]] = {}  # rows fingerprint -> masked eval tensors

    # -- the Task protocol ------------------------------------------------------
    def auto_class(self, family: str) -> str:
        if family == "encoder":
            return "AutoModelForMaskedLM"
        raise BackboneError(f"task {self.name!r} needs an encoder backbone (BERT, RoBERTa, MiniLM), but this one is {family!r}; "
                            "for decoder-only models use the causal-lm task")

    def bind(self, backbone: Backbone, config: RunConfig) -> None:
        check_fits(self.max_length, backbone)
        self._attach(backbone.tokenizer)

    def _attach(self, tokenizer: Any) -> None:
        from transformers import DataCollatorForLanguageModeling

        if tokenizer.mask_token is None:
            raise BackboneError("this backbone's tokenizer has no mask token, so it cannot do masked language modelling")
        if self.whole_word_masking and not tokenizer.is_fast:
            raise BackboneError("--whole-word-masking needs a fast tokenizer (it finds words from character offsets)")
        self.tokenizer = tokenizer
        # Whole-word masking replaces every chosen word by [MASK] (no 10% random / 10% kept): the
        # library's rule, stated here so it does not warn about overriding the defaults.
        replace = {"mask_replace_prob": 1.0, "random_replace_prob": 0.0} if self.whole_word_masking else {}
        self._collator = DataCollatorForLanguageModeling(
            tokenizer, mlm_probability=self.mlm_probability, whole_word_mask=self.whole_word_masking, **replace)

    @property
    def mask_token(self) -> str | None:
        """The token predict inputs mark the missing word with (``[MASK]`` for BERT); None before bind/restore."""
        return None if self.tokenizer is None else self.tokenizer.mask_token

    def learn(self, train_rows: Any) -> dict[str, Any]:
        return {"max_length": self.max_length, "mask_token": self.mask_token}

    def model_kwargs(self) -> dict[str, Any]:
        return {}  # the MLM head ties its output to the input embeddings; a missing head is created

    def encode(self, rows: Any) -> tuple[Any, dict[str, Any]]:
        return chunk_documents(rows, self.tokenizer, size=self.max_length, pad_last=self.pad_last_chunk,
                               add_special_tokens=True, offsets=self.whole_word_masking)

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Masks a new random subset each call (global torch RNG, seeded by the run's --seed)."""
        return self._collator(features)  # input_ids, attention_mask, labels: (B, T)

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        return model(**batch).loss

    def _masked_eval(self, rows: Any) -> dict[str, Any]:
        """The evaluation chunks masked once with EVAL_MASK_SEED, cached per set of rows."""
        key = fingerprint(rows)
        if key not in self._eval_cache:
            import torch
            from transformers import DataCollatorForLanguageModeling

            features, _ = self.encode(rows)
            masker = DataCollatorForLanguageModeling(self.tokenizer, mlm_probability=self.mlm_probability,
                                                     whole_word_mask=self._collator.whole_word_mask, seed=EVAL_MASK_SEED,
                                                     mask_replace_prob=self._collator.mask_replace_prob,
                                                     random_replace_prob=self._collator.random_replace_prob)
            # One seeded generator over fixed-size slices: the same chunks always get the same masks.
            batches = [masker([features[j] for j in range(i, min(i + 64, len(features)))]) for i in range(0, len(features), 64)]
            self._eval_cache[key] = {k: torch.cat([b[k] for b in batches]) for k in ("input_ids", "attention_mask", "labels")}
        return self._eval_cache[key]

    def evaluate(self, model: Any, rows: Any, *, generation: GenerationConfig) -> tuple[dict[str, float], list[dict[str, Any]]]:
        masked = self._masked_eval(rows)
        sums, counts = score_chunks(model, masked, batch_size=generation.generation_batch_size, shift=False)
        return perplexity(sums, counts), chunk_records(self.tokenizer, masked, sums, counts)

    def score_records(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """Perplexity and loss from evaluate's chunk records (the bootstrap resamples chunks)."""
        return score_chunk_records(records)

    def row_statistics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Per-chunk (loss sum, tokens), for the fast bootstrap."""
        return chunk_statistics(records)

    def baselines(self, rows: Any) -> dict[str, tuple[dict[str, float], list[dict[str, Any]]]]:
        return {}  # perplexity has no model-free counterpart here; the zero-shot model is the reference

    def predict(self, model: Any, inputs: list[dict[str, Any]], *, generation: GenerationConfig,
                top_k: int | None = None) -> list[dict[str, Any]]:
        """Top-k fillers of each mask token, with scores (transformers' fill-mask pipeline).

        ``top_k``: candidates per mask for this call (default: the ``--top-k`` the model was trained with).

        One mask: ``candidates`` is a list of {token, token_str, score, sequence};
        several masks: one such list per mask, in order (the pipeline's own shapes).
        """
        from transformers import pipeline
        from transformers.pipelines.base import PipelineException

        mask = self.tokenizer.mask_token
        for i, row in enumerate(inputs):
            if mask not in row["text"]:
                raise DataError(f"input {i + 1} ({row['text'][:60]!r}) has no mask token; write {mask} where the missing "
                                f"word goes, e.g. 'Paris is the {mask} of France.'")
        top_k = top_k or self.top_k
        top_k = min(top_k, getattr(model.config, "vocab_size", None) or top_k)  # never more candidates than tokens
        fill = pipeline("fill-mask", model=model, tokenizer=self.tokenizer, device=next(model.parameters()).device,
                        pipeline_class=_float32_fill_mask())
        was_training = model.training
        model.eval()
        outputs = []
        try:
            for i, row in enumerate(inputs):  # one at a time: the pipeline unwraps one-element lists
                try:
                    found = fill(row["text"], top_k=top_k, tokenizer_kwargs={"truncation": True})
                except PipelineException as exc:  # e.g. the mask lies beyond the model's length
                    raise DataError(f"input {i + 1} ({row['text'][:60]!r}): {exc}") from None
                outputs.append({"candidates": _plain(found)})
        finally:
            model.train(was_training)
        return outputs

    def finalize_model(self, model: Any) -> None:
        pass  # a masked LM has no generation defaults

    def metadata(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "mlm_probability": self.mlm_probability,
                "whole_word_masking": self.whole_word_masking, "pad_last_chunk": self.pad_last_chunk, "top_k": self.top_k}

    def restore(self, metadata: dict[str, Any], *, tokenizer: Any = None, model: Any = None) -> None:
        self.max_length = metadata["max_length"]
        self.mlm_probability = metadata["mlm_probability"]
        self.whole_word_masking = metadata["whole_word_masking"]
        self.pad_last_chunk = metadata.get("pad_last_chunk", False)
        self.top_k = metadata.get("top_k", MaskedLMOptions.top_k)
        if tokenizer is not None:
            self._attach(tokenizer)


@functools.cache
def _float32_fill_mask() -> type:
    """transformers' fill-mask pipeline with its softmax in float32: a bfloat16 model's scores keep float32 precision.

    (The stock pipeline takes the softmax in the logits' own type, so bfloat16 scores carry
    3 significant digits; token-classification's pipeline upcasts by itself.)
    """
    from transformers import FillMaskPipeline

    class Float32FillMask(FillMaskPipeline):
        def _forward(self, model_inputs: Any) -> Any:
            outputs = super()._forward(model_inputs)
            outputs["logits"] = outputs["logits"].float()  # (B, T, V)
            return outputs

    return Float32FillMask


def _plain(found: Any) -> Any:
    """Pipeline output with plain Python numbers (scores can be numpy floats), scores rounded."""
    if isinstance(found, list):
        return [_plain(item) for item in found]
    return {"token": int(found["token"]), "token_str": found["token_str"], "score": round(float(found["score"]), 6),
            "sequence": found["sequence"]}
