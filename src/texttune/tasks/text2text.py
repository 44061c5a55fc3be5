"""Text-to-text tasks: any input text to any target text, on any generative backbone.

``text2text`` is the general task (question generation is the worked example);
``summarization`` and ``translation`` only change column names, the default
prefix or instruction, the metrics and the model-free baseline.

Metrics are computed in the targets' language (docs/metrics.md): translation's
``target_lang``, or ``metric_language`` for text2text and summarization; it picks
ROUGE's tokenizer (unless ``rouge_tokenizer`` says), ROUGE-Lsum's and lead-k's
sentence splitting and sacreBLEU's tokenizer. ``learn`` returns the settings as
"scoring", which the run records in metrics.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from texttune.backbones import Backbone
from texttune.config import GENERATION_OPTIONS, GenerationConfig, RunConfig, option
from texttune.data import ColumnRole
from texttune.errors import BackboneError, ConfigError
from texttune.inference.generation import Prompts, generate_prompts
from texttune.inference.scored import applies as scored_applies
from texttune.inference.scored import generate_scored
from texttune.metrics import bleu_chrf, generation_length, lead_sentences, mean_sentence_count, rouge, scoring_settings
from texttune.metrics.rowwise import bleu_chrf_statistics, length_statistics, rouge_statistics
from texttune.metrics.tokenize import ROUGE_TOKENIZERS, check_language
from texttune.tasks.base import pad_batch
from texttune.tasks.causal_loss import supports_target_only, target_only_loss
from texttune.tasks.data_checks import copied_targets
from texttune.tasks.lang_codes import LanguagePair, plain_code, remember_languages, set_languages
from texttune.tasks.packing import model_inputs
from texttune.tasks.prompting import PromptFormat

LANGUAGES = {"en": "English", "fr": "French", "de": "German", "ro": "Romanian", "es": "Spanish", "it": "Italian",
             "pt": "Portuguese", "nl": "Dutch"}


def position_limit(config: Any) -> int | None:
    """How many positions the generating side of a model has (None: relative positions such as T5's, or unknown).

    Generating past it crashes (learned position embeddings) or runs on where the model never saw text.
    """
    if config is None:
        return None
    decoder = getattr(config, "decoder", None)  # EncoderDecoder (bert2bert): the decoder's own config
    config = decoder if decoder is not None and hasattr(decoder, "model_type") else config
    if getattr(config, "relative_attention_num_buckets", None) is not None:
        return None
    for name in ("max_position_embeddings", "n_positions", "max_target_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


@dataclass
class Text2TextOptions:
    """Options every text-to-text task has (text2text and summarization add how they score, translation its languages)."""

    prefix: str | None = option(None, "Text put before every input: the T5 prefix, or the instruction for decoder-only "
                                "backbones. Default: the task's own; '' for none.")
    max_source_length: int = option(512, "Inputs longer than this many tokens are truncated (the count is reported).", ge=1)
    max_target_length: int = option(128, "Targets longer than this many tokens are truncated for training (the count is reported).", ge=1)


@dataclass
class ScoredTextOptions(Text2TextOptions):
    """Options of text2text and summarization: the shared ones and the language their targets are scored in."""

    metric_language: str | None = option(None, "Language code of the targets (e.g. en, fr, zh) for scoring: ROUGE's "
                                         "tokenizer, sentence splitting, sacreBLEU's tokenizer. Default: English.")
    rouge_tokenizer: str = option("auto", "ROUGE's tokenizer: default (rouge-score's, English, stemmed), unicode "
                                  "(accents and all scripts kept), cjk (one token per CJK character), or auto (from "
                                  "--metric-language).", choices=ROUGE_TOKENIZERS)


@dataclass
class TranslationOptions(Text2TextOptions):
    """Translation's options: the text-to-text ones and the two languages."""

    source_lang: str = option("en", "Source language code (also the default source column), e.g. en.")
    target_lang: str = option("fr", "Target language code (also the default target column), e.g. fr.")


class Text2TextTask:
    """Input text -> target text. Subclasses set columns, prompts, metrics and baselines."""

    name: ClassVar[str] = "text2text"
    seq2seq_pipeline: ClassVar[str] = "text2text-generation"  # the pipeline of an encoder-decoder model
    api_name: ClassVar[str] = "Text2Text"
    options: ClassVar[type] = ScoredTextOptions
    generates: ClassVar[bool] = True  # generation options apply; CTranslate2 can run it
    audits_loss_mask: ClassVar[bool] = True  # a row is a prompt and its answer: tasks/loss_mask.py checks the labels
    heads: ClassVar[tuple[str, ...]] = ()  # the generation head comes pretrained: nothing new to train under LoRA
    # Under --peft lora only (benchmarks/recipes.py --case debian-smollm2, docs/recipes.md): SmolLM2-135M, Debian
    # summaries, 24 x 8, seed 0: ROUGE-L 17.6 at the generic 5e-5 without warmup, 26.8 at 1e-3, 28.5 at 2e-3 (warmup
    # 0.1); LoRA's adapters start at zero and need the larger rate. Full fine-tuning keeps 5e-5 until more seeds are in.
    lora_train_defaults: ClassVar[dict[str, Any]] = {"learning_rate": 2e-3, "warmup_ratio": 0.1}
    description: ClassVar[str] = "any text-to-text task, e.g. question generation (input -> target)"
    roles: ClassVar[tuple[ColumnRole, ...]] = (
        ColumnRole("input", ("input", "source", "text", "answer_context", "context"), help="input text"),
        ColumnRole("target", ("target", "output", "question", "label"), help="target text"),
    )
    input_keys: ClassVar[tuple[str, ...]] = ("input",)
    main_metric: ClassVar[str] = "rougeL"
    metric_names: ClassVar[tuple[str, ...]] = ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "chrf", "gen_len")
    default_backbone: ClassVar[str] = "smollm2-135m"
    request_options: ClassVar[tuple[str, ...]] = GENERATION_OPTIONS

    def __init__(self, options: Text2TextOptions | None = None) -> None:
        options = options or self.options()
        self.prefix_option = options.prefix
        self.source_lang: str | None = getattr(options, "source_lang", None)
        self.target_lang: str | None = getattr(options, "target_lang", None)
        self.metric_language: str | None = check_language(getattr(options, "metric_language", None))
        self.rouge_tokenizer: str = getattr(options, "rouge_tokenizer", "auto")
        self.prefix = ""
        self.family = "seq2seq"
        self.max_source_length = options.max_source_length
        self.max_target_length = options.max_target_length
        self.max_new_tokens: int | None = None
        self.format: PromptFormat | None = None
        self.languages: LanguagePair | None = None  # set for many-to-many models (mBART-50, NLLB, M2M100)
        self.saved_codes: dict[str, str] = {}  # the model's own codes, from a saved model's metadata

    # -- what differs between text-to-text tasks --------------------------------
    def default_prefix(self, backbone: Backbone) -> str:
        """Prefix for T5-style backbones / instruction for decoder-only ones; none otherwise."""
        return ""

    @property
    def language(self) -> str | None:
        """The language the targets are scored in (None: English)."""
        return self.metric_language

    def scoring(self) -> dict[str, str]:
        """How :meth:`score` scores (metrics.json "scoring"): language, ROUGE's tokenizer, sacreBLEU's signatures."""
        return scoring_settings(language=self.language, rouge_tokenizer=self.rouge_tokenizer,
                                bleu="bleu" in self.metric_names)

    def score(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        return {**rouge(predictions, references, tokenizer=self.rouge_tokenizer, language=self.language),
                **bleu_chrf(predictions, references, language=self.language), **generation_length(predictions)}

    def baseline_predictions(self, inputs: list[str]) -> tuple[str, list[str]]:
        """Name and outputs of the model-free baseline: copy the input."""
        return "copy_input", list(inputs)

    # -- the Task protocol ------------------------------------------------------
    def auto_class(self, family: str) -> str:
        if family == "seq2seq":
            return "AutoModelForSeq2SeqLM"
        if family == "causal":
            return "AutoModelForCausalLM"
        raise BackboneError(
            f"task {self.name!r} generates text, but this backbone is encoder-only; "
            "use an encoder-decoder or decoder-only model, or warm-start one with --backbone minilm-bert2bert"
        )

    def bind(self, backbone: Backbone, config: RunConfig) -> None:
        self.family = backbone.family
        self.prefix = self.prefix_option if self.prefix_option is not None else self.default_prefix(backbone)
        self._attach(backbone.tokenizer, backbone.config)

    def requested_languages(self) -> tuple[str | None, str | None, tuple[str, str]]:
        """(source, target) language codes the user gave, and the options they come from (for refusals).

        text2text and summarization read and write one language: ``metric_language``.
        """
        return self.metric_language, self.metric_language, ("--metric-language", "--metric-language")

    def _attach(self, tokenizer: Any, model_config: Any) -> None:
        start = getattr(model_config, "decoder_start_token_id", None) if self.family == "seq2seq" else None
        if self.family == "seq2seq":  # many-to-many models: language codes on inputs and labels (tasks/lang_codes.py)
            source, target, options = self.requested_languages()
            self.languages = set_languages(tokenizer, source=self.saved_codes.get("source", source),
                                           target=self.saved_codes.get("target", target), options=options)
        self.format = PromptFormat(tokenizer=tokenizer, family=self.family, prefix=self.prefix, decoder_start_token_id=start)

    def model_kwargs(self) -> dict[str, Any]:
        return {}  # generation heads come with the pretrained model

    def learn(self, train_rows: Any) -> dict[str, Any]:
        assert self.format is not None, "bind() first"
        forced = 1 if self.languages is not None else 0  # the target language token is generated too
        lengths = sorted(self.format.target_length(t) + forced for t in train_rows["target"])
        # Enough room for the longest target seen in training (capped by the training
        # cut), so no prediction is silently shorter than the references it is scored on.
        self.max_new_tokens = min(lengths[-1], self.max_target_length)
        return {"target_tokens_max": lengths[-1], "target_tokens_p50": lengths[len(lengths) // 2],
                "max_new_tokens": self.max_new_tokens, "scoring": self.scoring()}

    def encode(self, rows: Any) -> tuple[Any, dict[str, Any]]:
        assert self.format is not None, "bind() first"
        fmt = self.format

        def encode_batch(batch: dict[str, list[str]]) -> dict[str, list[Any]]:
            out: dict[str, list[Any]] = {"input_ids": [], "labels": [], "source_truncated": [], "target_truncated": []}
            for text, target in zip(batch["input"], batch["target"]):
                e = fmt.encode(text, target, max_source_length=self.max_source_length, max_target_length=self.max_target_length)
                out["input_ids"].append(e.input_ids)
                out["labels"].append(e.labels)
                out["source_truncated"].append(e.source_truncated)
                out["target_truncated"].append(e.target_truncated)
            return out

        features = rows.map(encode_batch, batched=True, remove_columns=rows.column_names)
        lengths = [len(ids) for ids in features["input_ids"]]
        stats = {
            "rows": len(features),
            "inputs_truncated": int(sum(features["source_truncated"])),
            "targets_truncated": int(sum(features["target_truncated"])),
            "input_tokens_mean": round(sum(lengths) / len(lengths), 1),
            "input_tokens_max": max(lengths),
        }
        return features.remove_columns(["source_truncated", "target_truncated"]), stats

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        assert self.format is not None
        tok = self.format.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        return pad_batch([{"input_ids": f["input_ids"], "labels": f["labels"]} for f in features], pad_token_id=pad)

    def packing_capacity(self) -> int | None:
        """Tokens a packed training row holds (tasks/packing.py): a longest prompt and answer; decoder-only only."""
        return self.max_source_length + self.max_target_length if self.family == "causal" else None

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        if self.family == "causal" and supports_target_only(model):
            return target_only_loss(model, batch)
        return model(**model_inputs(batch)).loss  # a packed batch without its counts, cache off

    def prompts(self, model: Any, rows: list[dict[str, Any]], *, generation: GenerationConfig) -> Prompts:
        """The rows' inputs in the fine-tuned prompt layout (prefix or prompt template), ready for any backend."""
        assert self.format is not None
        if generation.max_new_tokens is None:
            from dataclasses import replace

            generation = replace(generation, max_new_tokens=self.max_new_tokens or self.max_target_length)
        limit = position_limit(getattr(model, "config", None))
        if limit is not None and generation.max_new_tokens > limit:
            raise ConfigError(f"max_new_tokens {generation.max_new_tokens} is more than this model can generate: it has "
                              f"{limit} positions; use at most {limit}")
        ids = [
            self.format.encode(row["input"], None, max_source_length=self.max_source_length,
                               max_target_length=self.max_target_length).input_ids
            for row in rows
        ]
        forced = self.languages.target_token_id if self.languages is not None else None
        return Prompts(tokenizer=self.format.tokenizer, ids=ids, decoder_only=self.family == "causal", options=generation,
                       forced_bos_token_id=forced)

    @property
    def pipeline_tag(self) -> str:
        """The Hugging Face pipeline and hub tag: the task's own for an encoder-decoder, text-generation for a
        decoder-only model (transformers' summarization and translation pipelines need an encoder-decoder)."""
        return "text-generation" if self.family == "causal" else self.seq2seq_pipeline

    def chat_input(self, messages: list[dict[str, str]]) -> str:
        """A chat request as this task's input: its one user message, laid out as in fine-tuning (texttune's prompt
        layout, not the tokenizer's chat template). ConfigError for an encoder-decoder model or several turns."""
        if self.family != "causal":
            raise ConfigError("chat completions need a decoder-only model and this one is encoder-decoder; send the input "
                              "as the prompt of /v1/completions")
        if len(messages) != 1 or messages[0]["role"] != "user":
            raise ConfigError(f"this {self.name} model answers one input: send one user message (it was fine-tuned with "
                              "texttune's prompt layout, which has no system or assistant turns)")
        return messages[0]["content"]

    def _generate(self, model: Any, texts: list[str], generation: GenerationConfig) -> list[str]:
        return generate_prompts(model, self.prompts(model, [{"input": t} for t in texts], generation=generation))

    def evaluate(self, model: Any, rows: Any, *, generation: GenerationConfig) -> tuple[dict[str, float], list[dict[str, Any]]]:
        inputs, references = list(rows["input"]), list(rows["target"])
        predictions = self._generate(model, inputs, generation)
        records = [{"input": i, "reference": r, "prediction": p} for i, r, p in zip(inputs, references, predictions)]
        return self.score(predictions, references), records

    def loss_in_evaluation(self, model: Any, *, generation: GenerationConfig) -> bool:
        """Whether :meth:`evaluate_with_loss` can give the validation loss too (inference/scored.py: transformers
        models; decoder-only ones whose logits are the head of the last hidden state, on SDPA or eager attention,
        one beam)."""
        return (self.family != "causal" or supports_target_only(model)) and scored_applies(model, generation)

    def evaluate_with_loss(self, model: Any, rows: Any, *,
                           generation: GenerationConfig) -> tuple[dict[str, float], list[dict[str, Any]], float, int]:
        """:meth:`evaluate`, plus the loss pass's summed target cross-entropy and target token count, from one pass
        over each prompt (inference/scored.py): the engine's evaluation inside training, where that applies."""
        assert self.format is not None
        inputs, references = list(rows["input"]), list(rows["target"])
        prompts = self.prompts(model, [{"input": text} for text in inputs], generation=generation)
        targets = []  # the ids the loss pass scores: labels, less a decoder-only prompt (tokenized alone: a prefix)
        for prompt, text, reference in zip(prompts.ids, inputs, references):
            labels = self.format.encode(text, reference, max_source_length=self.max_source_length,
                                        max_target_length=self.max_target_length).labels
            targets.append(labels[len(prompt):] if prompts.decoder_only else labels)
        scored = generate_scored(model, prompts, targets)
        records = [{"input": i, "reference": r, "prediction": p} for i, r, p in zip(inputs, references, scored.texts)]
        return self.score(scored.texts, references), records, scored.loss_sum, scored.tokens

    def score_records(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """Metrics from evaluate's records (a distributed evaluation gathers them from every process)."""
        return self.score([r["prediction"] for r in records], [r["reference"] for r in records])

    def row_statistics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Per-row statistics of the metrics :meth:`score` reports, for the fast bootstrap (metrics/rowwise.py)."""
        predictions, references = [r["prediction"] for r in records], [r["reference"] for r in records]
        stats = length_statistics(predictions)
        if "bleu" in self.metric_names:
            stats.update(bleu_chrf_statistics(predictions, references, language=self.language))
        if any(name.startswith("rouge") for name in self.metric_names):
            stats.update(rouge_statistics(predictions, references, tokenizer=self.rouge_tokenizer, language=self.language))
        return stats

    def baselines(self, rows: Any) -> dict[str, tuple[dict[str, float], list[dict[str, Any]]]]:
        inputs, references = list(rows["input"]), list(rows["target"])
        name, outputs = self.baseline_predictions(inputs)
        records = [{"input": i, "reference": r, "prediction": p} for i, r, p in zip(inputs, references, outputs)]
        return {name: (self.score(outputs, references), records)}

    def predict(self, model: Any, inputs: list[dict[str, Any]], *, generation: GenerationConfig) -> list[dict[str, Any]]:
        texts = [row["input"] for row in inputs]
        return [{"output": text} for text in self._generate(model, texts, generation)]

    def finalize_model(self, model: Any) -> None:
        """Make the saved model generate like texttune does, also under plain transformers."""
        model.generation_config.max_new_tokens = self.max_new_tokens
        if self.languages is not None:  # plain transformers then starts with the target language too
            remember_languages(model, self.languages)

    def metadata(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "family": self.family,
            "source_lang": self.source_lang,
            "target_lang": self.target_lang,
            "metric_language": self.metric_language,
            "rouge_tokenizer": self.rouge_tokenizer,
            "max_source_length": self.max_source_length,
            "max_target_length": self.max_target_length,
            "max_new_tokens": self.max_new_tokens,
            "language_codes": {"source": self.languages.source, "target": self.languages.target} if self.languages else None,
        }

    def restore(self, metadata: dict[str, Any], *, tokenizer: Any = None, model: Any = None) -> None:
        self.prefix = metadata["prefix"]
        self.prefix_option = metadata["prefix"]
        self.family = metadata["family"]
        self.source_lang = metadata.get("source_lang")
        self.target_lang = metadata.get("target_lang")
        self.metric_language = metadata.get("metric_language")  # models saved before it: English, rouge-score's tokenizer
        self.rouge_tokenizer = metadata.get("rouge_tokenizer", "auto")
        self.max_source_length = metadata["max_source_length"]
        self.max_target_length = metadata["max_target_length"]
        self.max_new_tokens = metadata.get("max_new_tokens")
        self.saved_codes = metadata.get("language_codes") or {}
        if tokenizer is not None and model is not None:
            self._attach(tokenizer, model.config)


class SummarizationTask(Text2TextTask):
    """Long text -> short summary; ROUGE against a lead-k baseline."""

    name: ClassVar[str] = "summarization"
    seq2seq_pipeline: ClassVar[str] = "summarization"
    api_name: ClassVar[str] = "Summarization"
    description: ClassVar[str] = "long text -> summary (ROUGE; lead-k baseline)"
    roles: ClassVar[tuple[ColumnRole, ...]] = (
        ColumnRole("text", ("text", "document", "article", "input", "source"), help="text to summarize", key="input"),
        ColumnRole("summary", ("summary", "highlights", "abstract", "target"), help="reference summary", key="target"),
    )
    metric_names: ClassVar[tuple[str, ...]] = ("rouge1", "rouge2", "rougeL", "rougeLsum", "gen_len")
    lead_k = 1

    def default_prefix(self, backbone: Backbone) -> str:
        if backbone.family == "causal":
            return "Summarize the following text."
        return "summarize: " if backbone.t5_style else ""

    def score(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        return {**rouge(predictions, references, tokenizer=self.rouge_tokenizer, language=self.language),
                **generation_length(predictions)}

    def learn(self, train_rows: Any) -> dict[str, Any]:
        stats = super().learn(train_rows)
        # Lead-k with k = the references' usual sentence count: lead-1 for one-line
        # synopses, lead-3 for news highlights (the classic CNN/DM baseline).
        self.lead_k = mean_sentence_count(list(train_rows["target"]), language=self.language)
        return {**stats, "lead_k": self.lead_k}

    def baseline_predictions(self, inputs: list[str]) -> tuple[str, list[str]]:
        return f"lead_{self.lead_k}", [lead_sentences(text, self.lead_k, language=self.language) for text in inputs]

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "lead_k": self.lead_k}

    def restore(self, metadata: dict[str, Any], *, tokenizer: Any = None, model: Any = None) -> None:
        super().restore(metadata, tokenizer=tokenizer, model=model)
        self.lead_k = metadata.get("lead_k", 1)


class TranslationTask(Text2TextTask):
    """Source language -> target language; sacreBLEU and chrF against copying the source."""

    name: ClassVar[str] = "translation"
    seq2seq_pipeline: ClassVar[str] = "translation"
    api_name: ClassVar[str] = "Translation"
    options: ClassVar[type] = TranslationOptions
    description: ClassVar[str] = "source language -> target language (BLEU, chrF; copy-source baseline)"
    main_metric: ClassVar[str] = "bleu"
    metric_names: ClassVar[tuple[str, ...]] = ("bleu", "chrf", "gen_len")

    @property
    def roles(self) -> tuple[ColumnRole, ...]:  # type: ignore[override]
        source, target = self.source_lang or "en", self.target_lang or "fr"  # a model's code (fra_Latn) finds "fr" too
        return (
            ColumnRole("source", tuple(dict.fromkeys((source, plain_code(source), "source", "src", "input"))),
                       help="source-language text", key="input"),
            ColumnRole("target", tuple(dict.fromkeys((target, plain_code(target), "target", "tgt"))), help="target-language text"),
        )

    def check_data(self, rows: Any) -> dict[str, Any]:
        """The data checks' task findings (tasks/data_checks.py): pairs whose target equals the source."""
        return copied_targets(rows["input"], rows["target"])

    def default_prefix(self, backbone: Backbone) -> str:
        src = LANGUAGES.get(self.source_lang or "", self.source_lang)
        tgt = LANGUAGES.get(self.target_lang or "", self.target_lang)
        if backbone.family == "causal":
            return f"Translate the following text from {src} to {tgt}."
        return f"translate {src} to {tgt}: " if backbone.t5_style else ""

    @property
    def language(self) -> str | None:
        """The target language: sacreBLEU's tokenizer follows it."""
        return self.target_lang

    def requested_languages(self) -> tuple[str | None, str | None, tuple[str, str]]:
        """--source-lang and --target-lang."""
        return self.source_lang, self.target_lang, ("--source-lang", "--target-lang")

    def scoring(self) -> dict[str, str]:
        return scoring_settings(language=self.language, bleu=True)  # no ROUGE here

    def score(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        return {**bleu_chrf(predictions, references, language=self.language), **generation_length(predictions)}

    def baseline_predictions(self, inputs: list[str]) -> tuple[str, list[str]]:
        return "copy_source", list(inputs)
