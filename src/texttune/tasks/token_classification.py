"""Token classification: one tag per word (named entities, part-of-speech tags, chunks).

Rows are pre-tokenized sentences: a list of words and a list of as many tags.
Words are split into sub-tokens by the backbone's fast tokenizer and each word's
tag goes on its first sub-token (``--label-all-tokens``: on every sub-token, with
``B-`` turned into ``I-`` after the first, as in the Hugging Face course); every
other position gets -100 and is ignored by the loss. Evaluation tags each word
with the prediction at its first sub-token and scores words with seqeval.

Prediction takes either raw text, returned as entities with character offsets by
transformers' ``TokenClassificationPipeline`` (grouped by ``--aggregation``), or
a list of words, returned as one tag per word.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from texttune.backbones import Backbone
from texttune.config import GenerationConfig, RunConfig, option
from texttune.data import ColumnRole
from texttune.errors import BackboneError, ConfigError, DataError, choices
from texttune.metrics import seqeval_scores
from texttune.metrics.tagging import seqeval_statistics
from texttune.tasks.base import pad_batch
from texttune.tasks.class_labels import parse_label_list
from texttune.tasks.data_checks import bio_errors

IGNORE = -100  # label id the loss skips
_PREFIXED = re.compile(r"^([BIESLU])-(.+)$")  # IOB/IOB2, IOBES and BILOU tags
_PREFIX_ORDER = "BIESLU"


def sort_labels(tags: Iterable[str]) -> list[str]:
    """O first, then each type's B-/I- (E-, S-...) tags together, types in alphabetical order.

    A B-X or I-X tag brings its partner along, so a model trained on single-word
    entities of a type can still continue one at prediction time.
    """
    labels = set(tags)
    for tag in list(labels):
        match = _PREFIXED.match(tag)
        if match and match.group(1) in "BI":
            labels |= {f"B-{match.group(2)}", f"I-{match.group(2)}"}

    def key(tag: str) -> tuple[int, str, int]:
        if tag == "O":
            return (0, "", 0)
        match = _PREFIXED.match(tag)
        return (1, match.group(2), 1 + _PREFIX_ORDER.index(match.group(1))) if match else (1, tag, 0)

    return sorted(labels, key=key)


def _preview(words: Any) -> str:
    text = " ".join(map(str, words[:8])) + (" ..." if len(words) > 8 else "") if isinstance(words, list) else repr(words)
    return text[:80]


@dataclass
class TokenClassificationOptions:
    """Labels, how they map to sub-tokens, and how predict groups entities."""

    max_length: int = option(256, "Tokens per sentence; longer sentences are truncated (their cut words get O).", ge=4)
    label_list: str | None = option(None, "Comma-separated labels in id order (default: inferred from the training data).")
    label_all_tokens: bool = option(False, "Label every sub-token (B- becomes I- after the first) instead of only the first.")
    aggregation: str = option("simple", "How predict and serve group sub-token predictions into entities (a request may ask "
                              "for another).", choices=("none", "simple", "first", "max", "average"))


class TokenClassificationTask:
    """Words -> one tag each; seqeval entity F1 against a majority-tag baseline."""

    name: ClassVar[str] = "token-classification"
    pipeline_tag: ClassVar[str] = "token-classification"  # the Hugging Face pipeline and hub tag (model card)
    api_name: ClassVar[str] = "TokenClassification"
    options: ClassVar[type] = TokenClassificationOptions
    generates: ClassVar[bool] = False
    heads: ClassVar[tuple[str, ...]] = ("classifier", "score")  # the new tag head (BERT-like, decoder-only), trained in full under LoRA
    description: ClassVar[str] = "one tag per word: NER, POS tagging, chunking (seqeval F1; majority-tag baseline)"
    # Measured (benchmarks/recipes.py --case conll-minilm, docs/recipes.md): CoNLL-2003, minilm, 300 x 32, first
    # 1,000 validation sentences, seed 0: entity F1 80.2 at the generic 5e-5 without warmup, 84.9 at 1e-4, 88.7 at
    # 3e-4, 87.2 at 5e-4 (warmup 0.1 each); a head rate of 3e-3 on top changed nothing (88.7), so none is set.
    train_defaults: ClassVar[dict[str, Any]] = {"learning_rate": 3e-4, "warmup_ratio": 0.1}
    roles: ClassVar[tuple[ColumnRole, ...]] = (
        # "text" last: prediction inputs may be raw text (a string), training rows may not.
        ColumnRole("tokens", ("tokens", "words", "text"), kind="any",
                   help="words of each sentence (a list of strings); for predict, raw text also works"),
        ColumnRole("tags", ("ner_tags", "tags", "labels", "pos_tags"), kind="any",
                   help="tags, one per word: strings, or integer ids with --label-list or a ClassLabel feature"),
    )
    input_keys: ClassVar[tuple[str, ...]] = ("tokens",)  # a string (raw text) or a list of words
    main_metric: ClassVar[str] = "f1"
    metric_names: ClassVar[tuple[str, ...]] = ("precision", "recall", "f1", "accuracy")
    default_backbone: ClassVar[str] = "minilm"
    request_options: ClassVar[tuple[str, ...]] = ("aggregation",)

    def __init__(self, options: TokenClassificationOptions | None = None) -> None:
        options = options or TokenClassificationOptions()
        self.label_option = parse_label_list(options.label_list) if options.label_list else None
        self.labels: list[str] = list(self.label_option or [])  # id order
        self.label_source = "in --label-list" if self.label_option else "in the training data"
        self._file_labels: list[str] | None = None  # inferred from the whole training file by check_table
        self.label_all_tokens = options.label_all_tokens
        self.aggregation = options.aggregation
        self.max_length = options.max_length
        self.majority = "O"
        self.tokenizer: Any = None

    # -- the Task protocol ------------------------------------------------------
    def parse_input(self, value: Any, index: int) -> dict[str, Any]:
        """``{"tokens": text or words}`` from a string (raw text), a list of words, or a dict with text or tokens."""
        if isinstance(value, dict):
            tokens = value.get("tokens") if value.get("tokens") is not None else value.get("text")
        elif isinstance(value, (str, list, tuple)):
            tokens = value
        else:
            raise DataError(f"input {index}: expected raw text, a list of words or a dict, got {type(value).__name__}")
        words = isinstance(tokens, (list, tuple)) and len(tokens) > 0 and all(isinstance(w, str) for w in tokens)
        if not words and not (isinstance(tokens, str) and tokens.strip()):
            got = "nothing (one input file holds either texts or word lists, not both)" if tokens is None else repr(str(tokens)[:60])
            raise DataError(f"input {index}: needs raw text (a non-empty string, key 'text') or a non-empty list of words "
                            f"(key 'tokens'), got {got}")
        return {"tokens": list(tokens) if words else tokens}

    def auto_class(self, family: str) -> str:
        # Any family may have a token-classification head (Llama, GPT-2, T5 do); bind() checks the model type.
        return "AutoModelForTokenClassification"

    def bind(self, backbone: Backbone, config: RunConfig) -> None:
        from transformers.models.auto.modeling_auto import MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES

        remote = "AutoModelForTokenClassification" in (getattr(backbone.config, "auto_map", None) or {})
        if backbone.model_type not in MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES and not remote:
            raise BackboneError(
                f"backbone {backbone.name!r} ({backbone.model_type}, {backbone.family}) has no token-classification head in "
                "transformers; use an encoder such as --backbone minilm (BERT, RoBERTa, DeBERTa...)"
            )
        limit = getattr(backbone.config, "max_position_embeddings", None)
        if isinstance(limit, int) and self.max_length > limit:
            raise ConfigError(f"option 'max_length' is {self.max_length} but backbone {backbone.name!r} reads at most {limit} tokens")
        self._attach(backbone.tokenizer)

    def _attach(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise BackboneError(f"task {self.name!r} needs a fast (Rust) tokenizer to map sub-tokens to words; "
                                f"this backbone has {type(tokenizer).__name__}")
        if tokenizer.pad_token is None:  # decoder-only tokenizers (Llama, GPT-2) come without one
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        self.tokenizer = tokenizer

    def check_table(self, table: Any, *, training: bool) -> None:
        """Check every cell while rows still map to file lines (the API calls this before fit/evaluate).

        Training data also fixes the inferred label list here, from the whole file:
        a tag that only the held-out part of it has is then still a known label.
        """
        known = self.label_option if training else (self.label_option or self._file_labels)
        words, tags = self._read(table.rows, known=known, locate=table.locate)
        if training and self.label_option is None:
            self._file_labels = self._id_names(table.rows) or sort_labels(t for sentence in tags for t in sentence)

    def check_data(self, rows: Any) -> dict[str, Any]:
        """The data checks' task findings (tasks/data_checks.py): sentences with invalid BIO sequences."""
        return bio_errors(rows["tags"])

    def learn(self, train_rows: Any) -> dict[str, Any]:
        words, tags = self._read(train_rows, known=self.label_option)
        if self.label_option is None:
            # A ClassLabel feature fixes the ids already; otherwise O first, then by entity type.
            self.labels = (self._id_names(train_rows) or self._file_labels
                           or sort_labels(t for sentence in tags for t in sentence))
        counts = Counter(t for sentence in tags for t in sentence)
        self.majority = counts.most_common(1)[0][0]
        return {"labels": len(self.labels), "label_list": self.labels, "majority_tag": self.majority,
                "tag_counts": dict(counts.most_common()), "words_max": max(len(w) for w in words)}

    def model_kwargs(self) -> dict[str, Any]:
        if not self.labels:
            raise ConfigError("token classification needs its labels before the model exists: train first, or pass label_list")
        return {
            "num_labels": len(self.labels),
            "id2label": dict(enumerate(self.labels)),
            "label2id": {label: i for i, label in enumerate(self.labels)},
            # A backbone trained for other labels (a texttune tagger) gets a new head instead of a size error.
            "ignore_mismatched_sizes": True,
        }

    def encode(self, rows: Any) -> tuple[Any, dict[str, Any]]:
        from datasets import Dataset

        words, tags = self._read(rows, known=self.labels)
        label2id = {label: i for i, label in enumerate(self.labels)}
        # id of each label's continuation: B-X -> I-X (when known), everything else itself
        inside = [label2id.get(f"I-{label[2:]}", i) if label.startswith("B-") else i for i, label in enumerate(self.labels)]
        enc = self.tokenizer(words, is_split_into_words=True, truncation=True, max_length=self.max_length)
        labels: list[list[int]] = []
        truncated = 0
        for row, sentence in enumerate(tags):
            ids = [label2id[t] for t in sentence]
            aligned, previous = [], None
            for word in enc.word_ids(row):  # one entry per sub-token; None for [CLS], [SEP]...
                if word is None:
                    aligned.append(IGNORE)
                elif word != previous:
                    aligned.append(ids[word])
                else:
                    aligned.append(inside[ids[word]] if self.label_all_tokens else IGNORE)
                previous = word
            labels.append(aligned)
            truncated += bool(enc.encodings[row].overflowing)
        lengths = [len(ids) for ids in enc["input_ids"]]
        stats = {"rows": len(words), "inputs_truncated": truncated,
                 "input_tokens_mean": round(sum(lengths) / len(lengths), 1), "input_tokens_max": max(lengths),
                 "labels": dict(Counter(t for sentence in tags for t in sentence).most_common())}
        return Dataset.from_dict({"input_ids": enc["input_ids"], "labels": labels}), stats

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = [{"input_ids": f["input_ids"], "labels": f["labels"]} for f in features]
        return pad_batch(batch, pad_token_id=self.tokenizer.pad_token_id)  # labels padded with -100

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        return model(**batch).loss

    def evaluate(self, model: Any, rows: Any, *, generation: GenerationConfig) -> tuple[dict[str, float], list[dict[str, Any]]]:
        words, references = self._read(rows, known=self.labels)
        predictions = self._tag_words(model, words, batch_size=generation.generation_batch_size)
        records = [{"tokens": w, "reference": r, "prediction": p} for w, r, p in zip(words, references, predictions)]
        return self._score(predictions, references), records

    def score_records(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """Metrics from evaluate's records (a distributed evaluation gathers them from every process)."""
        return self._score([r["prediction"] for r in records], [r["reference"] for r in records])

    def baselines(self, rows: Any) -> dict[str, tuple[dict[str, float], list[dict[str, Any]]]]:
        words, references = self._read(rows, known=self.labels)
        predictions = [[self.majority] * len(w) for w in words]
        records = [{"tokens": w, "reference": r, "prediction": p} for w, r, p in zip(words, references, predictions)]
        return {"majority_tag": (self._score(predictions, references), records)}

    def predict(self, model: Any, inputs: list[dict[str, Any]], *, generation: GenerationConfig,
                aggregation: str | None = None) -> list[dict[str, Any]]:
        """Entities with offsets for raw text, one tag per word for word lists; ``aggregation`` for this call only."""
        texts: dict[int, str] = {}
        word_lists: dict[int, list[str]] = {}
        for i, row in enumerate(inputs):
            value = row.get("tokens", row.get("text"))
            if isinstance(value, str) and value.strip():
                texts[i] = value
            elif isinstance(value, list) and value and all(isinstance(w, str) for w in value):
                word_lists[i] = value
            else:
                raise DataError(f"input {i}: needs raw text (a non-empty string) or a non-empty list of words, "
                                f"got {str(value)[:60]!r}")
        out: dict[int, dict[str, Any]] = {}
        batch = generation.generation_batch_size
        found = self._entities(model, list(texts.values()), batch_size=batch, aggregation=aggregation or self.aggregation)
        for i, entities in zip(texts, found):
            out[i] = {"entities": entities}
        for i, tags in zip(word_lists, self._tag_words(model, list(word_lists.values()), batch_size=batch)):
            out[i] = {"tags": tags}
        return [out[i] for i in range(len(inputs))]

    def finalize_model(self, model: Any) -> None:
        """Nothing to add: id2label/label2id went into the model config with the new head."""

    def metadata(self) -> dict[str, Any]:
        return {"labels": self.labels, "majority": self.majority, "max_length": self.max_length,
                "label_all_tokens": self.label_all_tokens, "aggregation": self.aggregation}

    def restore(self, metadata: dict[str, Any], *, tokenizer: Any = None, model: Any = None) -> None:
        self.labels = list(metadata["labels"])
        self.label_option = list(self.labels)  # integer tags in new data are ids into these labels
        self.label_source = "among the model's labels"
        self.majority = metadata.get("majority", "O")
        self.max_length = metadata.get("max_length", TokenClassificationOptions.max_length)
        self.label_all_tokens = metadata.get("label_all_tokens", False)
        self.aggregation = metadata.get("aggregation", "simple")
        if tokenizer is not None:
            self._attach(tokenizer)

    # -- helpers ----------------------------------------------------------------
    def _read(self, rows: Any, *, known: list[str] | None, locate: Any = None) -> tuple[list[list[str]], list[list[str]]]:
        """Words and string tags of every row, after checking each cell; integer ids become label names.

        ``known``: the labels tags must be among (None: any tag); ``locate(i)``: row i's place in its file.
        """
        names = self._id_names(rows)
        words_column, tags_column = list(rows["tokens"]), list(rows["tags"])
        known_set = set(known) if known is not None else None
        locate = locate or (lambda i: f"row {i + 1}")
        words_out: list[list[str]] = []
        tags_out: list[list[str]] = []
        for i, (words, tags) in enumerate(zip(words_column, tags_column)):
            where = f"{locate(i)} ({_preview(words)})"
            if not isinstance(words, list) or not words or not all(isinstance(w, str) for w in words):
                kind = "an empty list" if words == [] else f"{type(words).__name__}: {str(words)[:40]!r}"
                raise DataError(f"{locate(i)}: the tokens cell must be a non-empty list of words (strings), got {kind}; "
                                "token classification trains on pre-tokenized sentences (JSONL lists, Parquet, or a .conll file)")
            if not isinstance(tags, list):
                raise DataError(f"{where}: the tags cell must be a list with one tag per token, got {type(tags).__name__}")
            if len(words) != len(tags):
                raise DataError(f"{where}: {len(words)} tokens but {len(tags)} tags; every token needs exactly one tag")
            if tags and not isinstance(tags[0], str):
                tags = [self._tag_name(t, names, where) for t in tags]
            for tag in tags:
                if not isinstance(tag, str) or not tag:
                    raise DataError(f"{where}: tag {tag!r} is not a label (expected non-empty strings or integer ids)")
                if known_set is not None and tag not in known_set:
                    hint = "; pass --label-list with every label to allow it" if self.label_source == "in the training data" else ""
                    raise DataError(f"{where}: tag {tag!r} is not {self.label_source}; known labels: {choices(known_set)}{hint}")
            words_out.append(words)
            tags_out.append(tags)
        return words_out, tags_out

    def _id_names(self, rows: Any) -> list[str] | None:
        """Names for integer tags: the dataset's ClassLabel feature, else the label list."""
        from datasets import ClassLabel

        inner = getattr(rows.features.get("tags"), "feature", None)
        if isinstance(inner, ClassLabel):
            return list(inner.names)
        return self.label_option

    @staticmethod
    def _tag_name(tag: Any, names: list[str] | None, where: str) -> Any:
        if isinstance(tag, bool) or not isinstance(tag, int):
            return tag  # reported by the caller
        if names is None:
            raise DataError(f"{where}: tags are integer ids but no label names are known; pass --label-list "
                            "with the labels in id order, e.g. --label-list O,B-PER,I-PER")
        if not 0 <= tag < len(names):
            raise DataError(f"{where}: tag id {tag} is outside the {len(names)} labels {choices(names)}")
        return names[tag]

    def _score(self, predictions: list[list[str]], references: list[list[str]]) -> dict[str, float]:
        return seqeval_scores(*self._entity_tags(predictions, references))

    def row_statistics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Per-sentence entity counts, for the fast bootstrap (seqeval rescored 1,000 times would take minutes)."""
        return seqeval_statistics(*self._entity_tags([r["prediction"] for r in records], [r["reference"] for r in records]))

    def _entity_tags(self, predictions: list[list[str]], references: list[list[str]]) -> tuple[list[list[str]], list[list[str]]]:
        """The tags as seqeval scores them. Plain tags (POS): each word is its own one-word "entity", so overall F1
        equals accuracy and f1_<TAG> is the per-tag F1, instead of seqeval misreading "NN" as "N-N"."""
        if any(_PREFIXED.match(label) for label in self.labels):
            return predictions, references

        def single(tags: list[list[str]]) -> list[list[str]]:
            return [[t if t == "O" else f"B-{t}" for t in sentence] for sentence in tags]

        return single(predictions), single(references)

    def _tag_words(self, model: Any, sentences: list[list[str]], *, batch_size: int) -> list[list[str]]:
        """One tag per word: the label at the word's first sub-token (words cut off by truncation get O)."""
        import torch

        fallback = "O" if "O" in self.labels else self.majority
        results: list[list[str]] = [[] for _ in sentences]
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))  # similar lengths pad less
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(order), batch_size):
                    chunk = order[start:start + batch_size]
                    enc = self.tokenizer([sentences[i] for i in chunk], is_split_into_words=True,
                                         truncation=True, max_length=self.max_length)
                    batch = pad_batch([{"input_ids": ids} for ids in enc["input_ids"]], pad_token_id=self.tokenizer.pad_token_id)
                    logits = model(**{k: v.to(model.device) for k, v in batch.items()}).logits  # (B, T, labels)
                    best = logits.argmax(dim=-1).tolist()  # (B, T)
                    for row, index in enumerate(chunk):
                        tags = [fallback] * len(sentences[index])
                        seen: set[int] = set()
                        for position, word in enumerate(enc.word_ids(row)):
                            if word is not None and word not in seen:
                                seen.add(word)
                                tags[word] = self.labels[best[row][position]]
                        results[index] = tags
        finally:
            model.train(was_training)
        return results

    def _entities(self, model: Any, texts: list[str], *, batch_size: int, aggregation: str) -> list[list[dict[str, Any]]]:
        """Entities with character offsets, from transformers' TokenClassificationPipeline."""
        if not texts:
            return []
        from transformers import pipeline

        was_training = model.training
        model.eval()
        try:
            tagger = pipeline("token-classification", model=model, tokenizer=self.tokenizer,
                              aggregation_strategy=aggregation, device=model.device)
            limit = self.tokenizer.model_max_length
            # With a stride the pipeline reads long texts in overlapping windows instead of cutting them.
            stride = {"stride": min(32, limit // 4)} if aggregation != "none" and limit < 100_000 else {}
            found = tagger(texts, batch_size=batch_size, **stride)
        finally:
            model.train(was_training)
        return [[{k: v.item() if hasattr(v, "item") else v for k, v in e.items()} for e in entities] for entities in found]
