"""Text classification: one label per text (or text pair), several labels (multi-label), or one number (regression).

The backbone gets a sequence-classification head (``AutoModelForSequenceClassification``:
BERT's pooled [CLS], a decoder's last non-pad token) sized from the labels found in the
training file, which are saved as ``config.id2label`` so the model also runs in plain
``transformers.pipeline("text-classification")``. Multi-label decisions use a threshold
tuned on the validation rows at each evaluation (global, or per label), saved with the
model. Two baselines come before training: the majority class and TF-IDF + a linear model
(scikit-learn) fitted on the training rows: a fine-tuned transformer must beat both.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from texttune.backbones import Backbone
from texttune.config import GenerationConfig, RunConfig, option
from texttune.data import ColumnRole
from texttune.errors import BackboneError, ConfigError, DataError
from texttune.metrics.classification import label_scores, label_statistics, multilabel_scores, regression_scores, tune_thresholds
from texttune.tasks.base import pad_batch
from texttune.tasks.class_labels import (
    HF_PROBLEM_TYPES,
    MULTI,
    PROBLEM_TYPES,
    REGRESSION,
    SINGLE,
    LabelReader,
    balanced_weights,
    check_known,
    check_training_labels,
    label_set,
    parse_label_list,
    sort_labels,
)
from texttune.tasks.data_checks import label_checks
from texttune.tasks.tfidf_baseline import tfidf_linear

log = logging.getLogger("texttune")


@dataclass
class TextClassificationOptions:
    """What the labels are, how long an input may be, and how decisions are made."""

    problem_type: str | None = option(None, "single-label (one label per row), multi-label (a list of labels per row, or text "
                                      "split by --label-separator) or regression (one number per row). Default: multi-label "
                                      "when --label-separator is given, else single-label.", choices=PROBLEM_TYPES)
    max_length: int = option(128, "Tokens per input (both texts of a pair together); longer inputs are truncated (the count "
                             "is reported).", ge=8)
    label_list: str | None = option(None, "Comma-separated labels in id order: integer labels are ids into it, and every label "
                                    "in the data must be in it. Default: the labels of the training data, sorted.")
    label_separator: str | None = option(None, "Multi-label labels given as text, e.g. 'a|b' with --label-separator '|'.")
    class_weights: str = option("none", "balanced: weigh the loss of each class (multi-label: of each label's positives) "
                                "by how rare it is, for skewed data.", choices=("none", "balanced"))
    drop_unlabelled: bool = option(False, "Multi-label: drop rows with no label at all (by default they are kept: they "
                                   "teach the model when no label applies).")
    threshold_tuning: str = option("global", "Multi-label: tune the decision threshold on the validation rows, one for all "
                                   "labels (global) or one per label.", choices=("global", "per-label"))
    threshold: float | None = option(None, "Multi-label decision threshold; default: the tuned one saved with the model (a "
                                     "request may ask for another).", ge=0, le=1)
    top_k: int = option(1, "Labels with their scores that predict and serve return per input, best first (a request may ask "
                        "for another number).", ge=1, le=1000)


class TextClassificationTask:
    """Text (or a text pair) -> label(s) or a number; macro-F1 against majority and TF-IDF baselines."""

    name: ClassVar[str] = "text-classification"
    pipeline_tag: ClassVar[str] = "text-classification"  # the Hugging Face pipeline and hub tag (model card)
    api_name: ClassVar[str] = "TextClassification"
    options: ClassVar[type] = TextClassificationOptions
    generates: ClassVar[bool] = False
    # The new head of each architecture (BERT & co., Llama & co., BART/T5), and BERT's pooler, which a
    # sentence-embedding checkpoint (minilm) ships without: all trained in full under LoRA.
    heads: ClassVar[tuple[str, ...]] = ("classifier", "score", "classification_head", "pooler")
    description: ClassVar[str] = ("text or text pair -> label(s) or a number: single-label, multi-label, regression "
                                  "(macro-F1; majority and TF-IDF baselines)")
    roles: ClassVar[tuple[ColumnRole, ...]] = (
        ColumnRole("text", ("text", "sentence", "sentence1", "review", "content", "document", "input"), help="text to classify"),
        ColumnRole("text_pair", ("text_pair", "sentence2", "hypothesis", "pair"), required=False,
                   help="second text of a pair (NLI, paraphrase); optional"),
        ColumnRole("label", ("label", "labels", "class", "category", "target"), kind="any",
                   help="label: text, an integer id, a list of labels (multi-label) or a number (regression)"),
    )
    input_keys: ClassVar[tuple[str, ...]] = ("text", "text_pair")  # text_pair: only for a model trained on pairs
    # Single-label: macro-F1, so a model that ignores rare classes does not look good on skewed data.
    # Multi-label: micro-F1 (every decision counts once; stable with hundreds of rare labels). Regression: Pearson.
    main_metric: ClassVar[str] = "macro_f1"
    #: What each problem type reports (besides per-label precision_X, recall_X, f1_X and support_X), its main metric first.
    METRICS: ClassVar[dict[str, tuple[str, ...]]] = {
        SINGLE: ("macro_f1", "accuracy", "micro_f1", "weighted_f1", "macro_precision", "macro_recall"),
        MULTI: ("micro_f1", "macro_f1", "weighted_f1", "micro_precision", "micro_recall", "subset_accuracy", "threshold"),
        REGRESSION: ("pearson", "spearman", "mse", "mae"),
    }
    metric_names: ClassVar[tuple[str, ...]] = tuple(dict.fromkeys(m for names in METRICS.values() for m in names))
    default_backbone: ClassVar[str] = "minilm"
    request_options: ClassVar[tuple[str, ...]] = ("top_k", "threshold")
    # The generic 5e-5 leaves a pretrained encoder under-trained in a short run, and the new, randomly
    # initialised head (classifier + pooler) needs ten times the backbone's rate again: on the Debian sections
    # with minilm, 300 steps of 32, one rate 3e-4 gave 58.6% accuracy / 23.4 macro-F1, head 3e-3 gave
    # 69.8 / 48.7 (benchmarks/text_classification.py, docs/text-classification.md).
    train_defaults: ClassVar[dict[str, Any]] = {"learning_rate": 3e-4, "head_learning_rate": 3e-3, "warmup_ratio": 0.1}

    def __init__(self, options: TextClassificationOptions | None = None) -> None:
        options = options or TextClassificationOptions()
        self.problem = options.problem_type or (MULTI if options.label_separator else SINGLE)
        if options.label_separator is not None and self.problem != MULTI:
            raise ConfigError(f"option 'label_separator' splits multi-label text, but problem_type is {self.problem!r}")
        self.metric_names = self.METRICS[self.problem]
        self.main_metric = self.metric_names[0]
        self.label_option = parse_label_list(options.label_list) if options.label_list else None
        self.labels: list[str] = list(self.label_option or [])  # id order
        self.separator = options.label_separator
        self.settings = options  # (self.options is the class's options dataclass)
        self.max_length = options.max_length
        self.top_k = options.top_k
        self.thresholds: list[float] | None = None  # multi-label, one per label: tuned, or --threshold
        self.weights: list[float] | None = None  # --class-weights balanced, from the training rows
        self.pairs = False  # trained on text pairs: predict needs both
        self.input_keys = ("text",)  # what predict reads: the pair too once trained on pairs
        self.majority: Any = None
        self.tokenizer: Any = None
        self.saved = False  # a saved model: evaluations use its thresholds instead of tuning new ones
        self._file_labels: list[str] | None = None
        self._train: tuple[list[str], list[Any]] | None = None  # for the TF-IDF baseline

    # -- reading the data ---------------------------------------------------------
    def _reader(self, rows: Any) -> LabelReader:
        from datasets import ClassLabel

        feature = rows.features.get("label")
        names = self.label_option or (list(feature.names) if isinstance(feature, ClassLabel) else None)
        return LabelReader(self.problem, separator=self.separator, names=names)

    def _read(self, rows: Any, locate: Any = None) -> list[Any]:
        return self._reader(rows).read(list(rows["label"]), locate or (lambda i: f"row {i + 1}"))

    def check_table(self, table: Any, *, training: bool) -> None:
        """Check every label while rows still map to file lines; training data fixes the label set from the whole file."""
        read = self._read(table.rows, table.locate)
        if training:
            check_training_labels(read, self.problem, name=table.name)
        known = self.label_option or (None if training else (self.labels or self._file_labels))
        if known is not None:
            source = "in --label-list" if self.label_option else "in the training data"
            check_known(read, self.problem, known, locate=table.locate, source=source)
        if training and self.label_option is None and self.problem != REGRESSION:
            self._file_labels = self._class_names(table.rows) or sort_labels(label_set(read, self.problem))

    def _class_names(self, rows: Any) -> list[str] | None:
        names = self._reader(rows).names
        return list(names) if names is not None else None

    def _usable(self, rows: Any) -> Any:
        """Rows to train and score on: with --drop-unlabelled, multi-label rows without labels are left out."""
        if not (self.problem == MULTI and self.settings.drop_unlabelled):
            return rows
        keep = [i for i, labels in enumerate(self._read(rows)) if labels]
        return rows.select(keep) if len(keep) < len(rows) else rows

    def _texts(self, rows: Any) -> tuple[list[str], list[str] | None]:
        pairs = list(rows["text_pair"]) if "text_pair" in rows.column_names else None
        return list(rows["text"]), pairs

    # -- the Task protocol ------------------------------------------------------
    def parse_input(self, value: Any, index: int) -> dict[str, Any]:
        """A string, or a dict with text (and text_pair for a model trained on pairs)."""
        row = {"text": value} if isinstance(value, str) else value
        if not isinstance(row, dict):
            raise DataError(f"input {index}: expected a string or a dict with 'text', got {type(value).__name__}")
        keys = ("text", "text_pair") if self.pairs else ("text",)
        for key in keys:
            if not isinstance(row.get(key), str) or not row[key].strip():
                need = "a dict with 'text' and 'text_pair' (the model was trained on pairs)" if self.pairs else "non-empty 'text'"
                raise DataError(f"input {index}: needs {need}, got {str(value)[:60]!r}")
        return {k: row[k] for k in keys}

    def auto_class(self, family: str) -> str:
        return "AutoModelForSequenceClassification"

    def bind(self, backbone: Backbone, config: RunConfig) -> None:
        from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

        remote = "AutoModelForSequenceClassification" in (getattr(backbone.config, "auto_map", None) or {})
        if backbone.model_type not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES and not remote:
            raise BackboneError(f"backbone {backbone.name!r} ({backbone.model_type}) has no sequence-classification head in "
                                "transformers; use an encoder (--backbone minilm) or a decoder such as smollm2-135m")
        limit = getattr(backbone.config, "max_position_embeddings", None)
        if isinstance(limit, int) and self.max_length > limit:
            raise ConfigError(f"option 'max_length' is {self.max_length} but backbone {backbone.name!r} reads at most {limit} tokens")
        self._attach(backbone.tokenizer)

    def _attach(self, tokenizer: Any) -> None:
        if tokenizer.pad_token is None:  # decoder-only tokenizers (Llama, GPT-2) come without one
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        self.tokenizer = tokenizer

    def check_data(self, rows: Any) -> dict[str, Any]:
        """The data checks' task findings (tasks/data_checks.py): labels seen once, class balance."""
        return label_checks(rows["label"])

    def learn(self, train_rows: Any) -> dict[str, Any]:
        rows = self._usable(train_rows)
        read = self._read(rows)
        self.pairs = "text_pair" in rows.column_names
        self.input_keys = ("text", "text_pair") if self.pairs else ("text",)
        if self.problem != REGRESSION and self.label_option is None:
            self.labels = self._class_names(rows) or self._file_labels or sort_labels(label_set(read, self.problem))
        counts = Counter(label_set(read, self.problem))
        stats: dict[str, Any] = {"problem_type": self.problem, "text_pairs": self.pairs}
        if self.problem == REGRESSION:
            self.majority = sum(read) / len(read)  # the mean: the constant that minimises squared error
            return {**stats, "target_mean": self.majority, "target_min": min(read), "target_max": max(read)}
        self.majority = counts.most_common(1)[0][0] if self.problem == SINGLE else sorted(
            label for label, n in counts.items() if n > len(read) / 2)  # multi-label: the labels most rows have
        balanced = self.settings.class_weights == "balanced"
        self.weights = balanced_weights(counts, len(read), labels=self.labels, multi_label=self.problem == MULTI) if balanced else None
        if self.problem == MULTI and self.settings.threshold is not None:
            self.thresholds = [self.settings.threshold] * len(self.labels)
        self._train = (self._joined(rows), read)
        stats |= {"labels": len(self.labels), "label_list": self.labels, "label_counts": dict(counts.most_common()),
                  "majority": self.majority}
        if self.problem == MULTI:
            empty = sum(1 for labels in self._read(train_rows) if not labels)
            dropped = self.settings.drop_unlabelled
            if empty:
                log.info("%d of %d training rows have no label: %s", empty, len(train_rows),
                         "dropped (--drop-unlabelled)" if dropped else "kept, they teach that no label applies")
            stats |= {"rows_without_labels": empty, "rows_without_labels_action": "dropped" if dropped else "kept"}
        return stats

    def model_kwargs(self) -> dict[str, Any]:
        if self.problem == REGRESSION:
            return {"num_labels": 1, "problem_type": "regression", "ignore_mismatched_sizes": True,
                    "pad_token_id": self.tokenizer.pad_token_id}
        if not self.labels:
            raise ConfigError("text classification needs its labels before the model exists: train first, or pass label_list")
        return {
            "num_labels": len(self.labels),
            "id2label": dict(enumerate(self.labels)),
            "label2id": {label: i for i, label in enumerate(self.labels)},
            "problem_type": HF_PROBLEM_TYPES[self.problem],
            "pad_token_id": self.tokenizer.pad_token_id,  # decoders classify at the last non-pad token
            "ignore_mismatched_sizes": True,  # a backbone trained for other labels gets a new head, not a size error
        }

    def encode(self, rows: Any) -> tuple[Any, dict[str, Any]]:
        from datasets import Dataset

        rows = self._usable(rows)
        read = self._read(rows)
        texts, pairs = self._texts(rows)
        enc = self.tokenizer(texts, pairs, truncation=True, max_length=self.max_length)
        index = {label: i for i, label in enumerate(self.labels)}
        if self.problem == SINGLE:
            targets: list[Any] = [index[label] for label in read]
        elif self.problem == MULTI:
            targets = [[index[label] for label in labels] for labels in read]
        else:
            targets = list(read)
        lengths = [len(ids) for ids in enc["input_ids"]]
        stats = {"rows": len(texts), "inputs_truncated": sum(bool(e.overflowing) for e in enc.encodings),
                 "input_tokens_mean": round(sum(lengths) / len(lengths), 1), "input_tokens_max": max(lengths)}
        if self.problem != REGRESSION:
            stats["label_counts"] = dict(Counter(label_set(read, self.problem)).most_common())
        if self.problem == MULTI:
            stats["rows_without_labels"] = sum(1 for labels in read if not labels)
        columns = {"input_ids": enc["input_ids"], "target": targets}
        if pairs is not None and "token_type_ids" in enc:
            columns["token_type_ids"] = enc["token_type_ids"]
        return Dataset.from_dict(columns), stats

    def _inputs(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Padded ``input_ids`` and ``attention_mask`` (B, T), and for pairs on BERT-like models the
        ``token_type_ids`` that mark the second text (its segment embedding is what plain
        ``transformers.pipeline`` feeds too, so training, evaluation and the saved model agree)."""
        import torch

        batch = pad_batch([{"input_ids": f["input_ids"]} for f in features], pad_token_id=self.tokenizer.pad_token_id)
        if "token_type_ids" in features[0]:
            types = torch.zeros_like(batch["input_ids"])  # (B, T); padding is segment 0
            for row, f in enumerate(features):
                types[row, : len(f["token_type_ids"])] = torch.tensor(f["token_type_ids"])
            batch["token_type_ids"] = types
        return batch

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = self._inputs(features)
        targets = [f["target"] for f in features]
        if self.problem == SINGLE:
            batch["labels"] = torch.tensor(targets, dtype=torch.long)  # (B,)
        elif self.problem == MULTI:
            hot = torch.zeros((len(targets), len(self.labels)))  # (B, labels) multi-hot
            for row, ids in enumerate(targets):
                hot[row, ids] = 1.0
            batch["labels"] = hot
        else:
            batch["labels"] = torch.tensor(targets, dtype=torch.float)  # (B,)
        return batch

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        import torch.nn.functional as F  # noqa: N812

        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits  # (B, labels)
        labels = batch["labels"]
        weights = None if self.weights is None else logits.new_tensor(self.weights)
        if self.problem == SINGLE:
            return F.cross_entropy(logits.float(), labels, weight=weights)
        if self.problem == MULTI:
            return F.binary_cross_entropy_with_logits(logits.float(), labels, pos_weight=weights)
        return F.mse_loss(logits.float().squeeze(-1), labels)

    def _scores(self, model: Any, texts: list[str], pairs: list[str] | None, *, batch_size: int) -> Any:
        """(rows, labels) probabilities (softmax; sigmoid for multi-label), or (rows,) values for regression."""
        import numpy as np
        import torch

        out = np.zeros((len(texts), max(1, len(self.labels))), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]) + len(pairs[i] if pairs else ""))  # less padding
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(order), batch_size):
                    chunk = order[start:start + batch_size]
                    enc = self.tokenizer([texts[i] for i in chunk], [pairs[i] for i in chunk] if pairs else None,
                                         truncation=True, max_length=self.max_length)
                    keys = [k for k in ("input_ids", "token_type_ids") if k in enc and (pairs or k == "input_ids")]
                    batch = self._inputs([{k: enc[k][i] for k in keys} for i in range(len(chunk))])
                    logits = model(**{k: v.to(model.device) for k, v in batch.items()}).logits.float()  # (B, labels)
                    if self.problem == SINGLE:
                        logits = logits.softmax(-1)
                    elif self.problem == MULTI:
                        logits = logits.sigmoid()
                    out[chunk] = logits.cpu().numpy()
        finally:
            model.train(was_training)
        return out[:, 0] if self.problem == REGRESSION else out

    def _decide(self, probabilities: Any, threshold: float | None = None) -> list[Any]:
        """Labels from probabilities: the best one, or (multi-label) those at or over their threshold."""
        if self.problem == SINGLE:
            return [self.labels[i] for i in probabilities.argmax(-1)]
        if self.problem == REGRESSION:
            return [float(v) for v in probabilities]
        limits = [threshold] * len(self.labels) if threshold is not None else (self.thresholds or [0.5] * len(self.labels))
        return [[self.labels[j] for j, p in enumerate(row) if p >= limits[j]] for row in probabilities]

    def _score(self, predictions: list[Any], references: list[Any]) -> dict[str, float]:
        if self.problem == SINGLE:
            return label_scores(predictions, references, labels=self.labels)
        if self.problem == MULTI:
            return multilabel_scores(predictions, references, labels=self.labels)
        return regression_scores(predictions, references)

    def evaluate(self, model: Any, rows: Any, *, generation: GenerationConfig) -> tuple[dict[str, float], list[dict[str, Any]]]:
        rows = self._usable(rows)
        references = self._read(rows)
        texts, pairs = self._texts(rows)
        probabilities = self._scores(model, texts, pairs, batch_size=generation.generation_batch_size)
        extra: dict[str, float] = {}
        if self.problem == MULTI and not self.saved and self.settings.threshold is None:
            # Tuned on the rows it is scored on, as run_glue-style tools do; the saved model keeps it.
            import numpy as np

            truth = np.array([[label in set(refs) for label in self.labels] for refs in references])
            self.thresholds = tune_thresholds(probabilities, truth, per_label=self.settings.threshold_tuning == "per-label")
        if self.problem == MULTI:  # the mean of the per-label thresholds (all equal unless tuned per label)
            limits = self.thresholds or [0.5]
            extra["threshold"] = float(sum(limits) / len(limits))
        predictions = self._decide(probabilities)
        records = [self._record(texts[i], pairs[i] if pairs else None, references[i], predictions[i], probabilities[i])
                   for i in range(len(texts))]
        return {**self._score(predictions, references), **extra}, records

    def _record(self, text: str, pair: str | None, reference: Any, prediction: Any, scores: Any) -> dict[str, Any]:
        record: dict[str, Any] = {"text": text, **({"text_pair": pair} if pair is not None else {}),
                                  "reference": reference, "prediction": prediction}
        if self.problem != REGRESSION:
            record["scores"] = self._top(scores, 5)
        return record

    def _top(self, scores: Any, k: int) -> list[dict[str, Any]]:
        best = sorted(range(len(self.labels)), key=lambda j: -float(scores[j]))[:k]
        return [{"label": self.labels[j], "score": round(float(scores[j]), 6)} for j in best]

    def score_records(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """Metrics from evaluate's records (a distributed evaluation gathers them from every process)."""
        return self._score([r["prediction"] for r in records], [r["reference"] for r in records])

    def row_statistics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Single-label: the confusion cell of each row, for the fast bootstrap; multi-label and regression are rescored."""
        if self.problem != SINGLE:
            return {}
        return label_statistics([r["prediction"] for r in records], [r["reference"] for r in records], labels=self.labels)

    def baselines(self, rows: Any) -> dict[str, tuple[dict[str, float], list[dict[str, Any]]]]:
        rows = self._usable(rows)
        references = self._read(rows)

        def records(predictions: list[Any]) -> list[dict[str, Any]]:
            return [{"reference": r, "prediction": p} for r, p in zip(references, predictions)]

        constant = [self.majority] * len(references)
        name = "mean" if self.problem == REGRESSION else "majority"
        out = {name: (self._score(constant, references), records(constant))}
        if self._train is not None:
            started = time.perf_counter()
            train_texts, train_labels = self._train
            predictions = tfidf_linear(train_texts, train_labels, self._joined(rows), labels=self.labels,
                                       multi_label=self.problem == MULTI)
            fitted = {**self._score(predictions, references), "fit_s": round(time.perf_counter() - started, 2)}
            out["tfidf_linear"] = (fitted, records(predictions))
        return out

    def _joined(self, rows: Any) -> list[str]:
        texts, pairs = self._texts(rows)
        return [f"{t} || {p}" for t, p in zip(texts, pairs)] if pairs else texts

    def predict(self, model: Any, inputs: list[dict[str, Any]], *, generation: GenerationConfig,
                top_k: int | None = None, threshold: float | None = None) -> list[dict[str, Any]]:
        """Label and score per input (multi-label: every label over the threshold); ``top_k`` best labels with scores."""
        texts = [row["text"] for row in inputs]
        pairs = [row["text_pair"] for row in inputs] if self.pairs else None
        probabilities = self._scores(model, texts, pairs, batch_size=generation.generation_batch_size)
        if self.problem == REGRESSION:
            return [{"value": float(v)} for v in probabilities]
        k = min(top_k or self.top_k, len(self.labels))
        chosen = self._decide(probabilities, threshold)
        out = []
        for row, labels in zip(probabilities, chosen):
            if self.problem == SINGLE:
                result: dict[str, Any] = {"label": labels, "score": round(float(row[self.labels.index(labels)]), 6)}
            else:
                result = {"labels": [{"label": lb, "score": round(float(row[self.labels.index(lb)]), 6)} for lb in labels]}
            if k > 1 or self.problem == MULTI:
                result["top_k"] = self._top(row, k)
            out.append(result)
        return out

    def finalize_model(self, model: Any) -> None:
        """id2label, label2id and problem_type went into the config with the new head; a decoder also needs its pad id.

        From here on the thresholds are the saved model's: evaluating it on other data (a test file) must not retune them.
        """
        model.config.pad_token_id = self.tokenizer.pad_token_id
        self.saved = True

    def metadata(self) -> dict[str, Any]:
        return {"problem_type": self.problem, "labels": self.labels, "max_length": self.max_length, "pairs": self.pairs,
                "thresholds": self.thresholds, "majority": self.majority, "top_k": self.top_k,
                "label_separator": self.separator, "drop_unlabelled": self.settings.drop_unlabelled}

    def restore(self, metadata: dict[str, Any], *, tokenizer: Any = None, model: Any = None) -> None:
        self.problem = metadata["problem_type"]
        self.metric_names = self.METRICS[self.problem]
        self.main_metric = self.metric_names[0]
        self.labels = list(metadata["labels"])
        self.label_option = list(self.labels) or None  # integer labels in new data are ids into these
        self.max_length, self.pairs = metadata["max_length"], metadata.get("pairs", False)
        self.input_keys = ("text", "text_pair") if self.pairs else ("text",)
        self.thresholds, self.majority = metadata.get("thresholds"), metadata.get("majority")
        self.top_k, self.separator = metadata.get("top_k", 1), metadata.get("label_separator")
        self.settings = TextClassificationOptions(drop_unlabelled=metadata.get("drop_unlabelled", False))
        self.saved = True
        if tokenizer is not None:
            self._attach(tokenizer)
