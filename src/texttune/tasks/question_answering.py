"""Extractive question answering (SQuAD v1.1, optionally v2): find the answer span in a context.

An encoder with a start/end head reads ``[CLS] question [SEP] context [SEP]``.
Contexts longer than ``max_length`` tokens are cut into overlapping windows
(``stride`` tokens shared) by the fast tokenizer; each window is labelled with
the answer's start/end tokens, or with CLS (index 0) when the answer is not in
it. Predictions take the best span over all windows of a question
(:mod:`texttune.tasks.qa_postprocess`) and are scored with the official SQuAD
exact match and F1.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from texttune.backbones import Backbone
from texttune.config import GenerationConfig, RunConfig, option
from texttune.data import ColumnRole, Table
from texttune.data.squad import parse_answers, span_mismatch
from texttune.errors import BackboneError, ConfigError, DataError
from texttune.metrics.rowwise import squad_statistics
from texttune.tasks.data_checks import answer_offset_errors
from texttune.tasks.qa_postprocess import BASELINES, Answer, Window, best_answer, score_answers

log = logging.getLogger("texttune")
DEFAULT_STRIDE = 128  # tokens shared by neighbouring windows, when it fits (see default_stride)


@dataclass
class QuestionAnsweringOptions:
    """How contexts are cut into windows and how answers are chosen."""

    max_length: int = option(384, "Tokens per window (question and context together).", ge=8)
    stride: int | None = option(None, f"Tokens of overlap between windows of a long context. Default: {DEFAULT_STRIDE}, or "
                                "less when --max-length leaves too little room for it.", ge=0)
    max_answer_length: int = option(30, "Longest answer, in tokens.", ge=1)
    n_best: int = option(20, "Start/end candidates considered per window.", ge=1)
    version_2: bool = option(False, "Allow 'no answer' (SQuAD v2).")
    null_threshold: float = option(0.0, "With --version-2: answer only when the best span beats no-answer by this score margin.")


def default_stride(max_length: int) -> int:
    """128 tokens of overlap, or half the room a window leaves for context when 128 does not fit."""
    room = max_length - max_length // 2 - 3  # the question may take half the window, plus 3 special tokens
    return DEFAULT_STRIDE if DEFAULT_STRIDE < room else max(room // 2, 0)


class QuestionAnsweringTask:
    """(question, context) -> answer span; SQuAD exact match and F1."""

    name: ClassVar[str] = "question-answering"
    pipeline_tag: ClassVar[str] = "question-answering"  # the Hugging Face pipeline and hub tag (model card)
    api_name: ClassVar[str] = "QuestionAnswering"
    options: ClassVar[type] = QuestionAnsweringOptions
    generates: ClassVar[bool] = False
    heads: ClassVar[tuple[str, ...]] = ("qa_outputs",)  # the new start/end head, trained in full under LoRA
    description: ClassVar[str] = "extractive QA: (question, context) -> answer span (SQuAD EM/F1; window-overlap baseline)"
    # Measured (benchmarks/recipes.py --case squad-minilm, docs/recipes.md): SQuAD split by article, minilm, 240 x 8,
    # seeds 0-2: F1 14.9 (10.6-18.8) at the generic 5e-5 without warmup, 48.3 (43.8-52.3) at 2e-4, 45.6 (42.3-47.7)
    # at 3e-4 (warmup 0.1); 5e-4 diverged (14.4, seed 0), so the lower rate also keeps a margin. A head rate of
    # 3e-3 changed nothing (42.9 vs 42.3, seed 0), so none is set.
    train_defaults: ClassVar[dict[str, Any]] = {"learning_rate": 2e-4, "warmup_ratio": 0.1}
    roles: ClassVar[tuple[ColumnRole, ...]] = (
        ColumnRole("question", ("question",), help="question"),
        ColumnRole("context", ("context",), help="context the answer is taken from"),
        ColumnRole("answers", ("answers",), kind="any", help='answers {"text": [...], "answer_start": [...]}'),
        ColumnRole("id", ("id",), kind="any", required=False, help="question id (optional)"),
    )
    input_keys: ClassVar[tuple[str, ...]] = ("question", "context")
    main_metric: ClassVar[str] = "f1"
    metric_names: ClassVar[tuple[str, ...]] = ("exact_match", "f1")
    default_backbone: ClassVar[str] = "minilm"
    request_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: QuestionAnsweringOptions | None = None) -> None:
        o = options or QuestionAnsweringOptions()
        self.max_length = o.max_length
        self.stride = default_stride(o.max_length) if o.stride is None else o.stride
        self.max_answer_length, self.n_best = o.max_answer_length, o.n_best
        self.version_2, self.null_threshold = o.version_2, o.null_threshold
        self.question_cap = self.max_length // 2  # longer questions are cut so the context keeps room
        if not 0 <= self.stride < self.max_length - self.question_cap - 3:
            raise ConfigError(f"option 'stride' must be in [0, {self.max_length - self.question_cap - 3}) for max_length "
                              f"{self.max_length} (windows need room for the question), got {self.stride!r}")
        self.tokenizer: Any = None

    # -- checks ---------------------------------------------------------------------------------
    def check_table(self, table: Table, *, training: bool) -> None:
        """Check every answers cell against its context, naming file rows (called by the API)."""
        self._check_rows(table.rows, table.locate, training=training)

    def _check_rows(self, rows: Any, locate: Any, *, training: bool) -> list[tuple[list[str], list[int]]]:
        """Parsed answers per row; bad layouts raise, span mismatches raise for training data, else warn."""
        ids = rows["id"] if "id" in rows.column_names else [None] * len(rows)
        where = lambda i: locate(i) + ("" if ids[i] is None or str(ids[i]) in locate(i) else f" (id {ids[i]})")  # noqa: E731
        parsed, mismatches = [], []
        for i, (cell, context) in enumerate(zip(rows["answers"], rows["context"])):
            try:
                texts, starts = parse_answers(cell)
            except ValueError as exc:
                raise DataError(f"{where(i)}: column 'answers': {exc}") from None
            if not texts and not self.version_2:
                raise DataError(f"{where(i)}: no answers; every question needs one (pass --version-2 for unanswerable questions)")
            if (bad := span_mismatch(context, texts, starts)) is not None:
                mismatches.append((i, bad))
            parsed.append((texts, starts))
        if mismatches:
            i, (text, start, found) = mismatches[0]
            message = (f"{len(mismatches)} of {len(rows)} rows have answer spans that do not match the context; first: "
                       f"{where(i)}: answer {text!r} at character {start}, but the context there reads {found!r}")
            if training:
                raise DataError(message + " (answer_start must be the 0-based character offset of the answer text)")
            log.warning("%s (scored on the answer texts anyway)", message)
        return parsed

    def _parsed(self, rows: Any) -> list[tuple[list[str], list[int]]]:
        """Parsed answers cells (already checked by check_table/learn; a bad one still gets a clear error)."""
        try:
            return [parse_answers(cell) for cell in rows["answers"]]
        except ValueError as exc:
            raise DataError(f"column 'answers': {exc}") from None

    # -- the Task protocol ----------------------------------------------------------------------
    def auto_class(self, family: str) -> str:
        if family != "encoder":
            raise BackboneError(f"task {self.name!r} needs an encoder-only backbone (BERT, MiniLM, RoBERTa...), "
                                f"got a {family} model; try --backbone minilm")
        return "AutoModelForQuestionAnswering"

    def bind(self, backbone: Backbone, config: RunConfig) -> None:
        self._attach(backbone.tokenizer, backbone.config)

    def _attach(self, tokenizer: Any, model_config: Any) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise BackboneError(f"task {self.name!r} needs a fast (Rust) tokenizer for character offsets; this backbone has "
                                f"{type(tokenizer).__name__}")
        limit = getattr(model_config, "max_position_embeddings", None)
        if limit is not None and self.max_length > limit:
            raise ConfigError(f"option 'max_length' ({self.max_length}) exceeds this backbone's {limit} positions; use <= {limit}")
        self.tokenizer = tokenizer

    def check_data(self, rows: Any) -> dict[str, Any]:
        """The data checks' task findings (tasks/data_checks.py): answers not found at their offsets."""
        return answer_offset_errors(rows["context"], rows["answers"])

    def learn(self, train_rows: Any) -> dict[str, Any]:
        answers = self._check_rows(train_rows, lambda i: f"training row {i + 1}", training=True)
        firsts = [texts[0] for texts, _ in answers if texts]
        lengths = [len(ids) for ids in self.tokenizer(firsts, add_special_tokens=False)["input_ids"]] if firsts else [0]
        too_long = sum(n > self.max_answer_length for n in lengths)
        if too_long:
            log.warning("%d training answers are longer than --max-answer-length %d tokens", too_long, self.max_answer_length)
        return {"questions": len(train_rows), "unanswerable": len(answers) - len(firsts), "answer_tokens_max": max(lengths),
                "answers_longer_than_max_answer_length": too_long}

    def model_kwargs(self) -> dict[str, Any]:
        return {}  # AutoModelForQuestionAnswering adds a fresh 2-unit start/end head

    def _windows(self, questions: list[str], contexts: list[str]) -> tuple[Any, int]:
        """Tokenized windows (with overflow_to_sample_mapping and offsets) and how many questions were cut."""
        questions = [q.strip() for q in questions]
        pieces = self.tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        cut = [i for i, offsets in enumerate(pieces) if len(offsets) > self.question_cap]
        for i in cut:
            questions[i] = questions[i][: pieces[i][self.question_cap - 1][1]]
        encoded = self.tokenizer(questions, contexts, truncation="only_second", max_length=self.max_length, stride=self.stride,
                                 return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)
        return encoded, len(cut)

    def encode(self, rows: Any) -> tuple[Any, dict[str, Any]]:
        from datasets import Dataset

        answers = self._parsed(rows)
        enc, cut = self._windows(list(rows["question"]), list(rows["context"]))
        starts, ends, found = [], [], set()
        for w, offsets in enumerate(enc["offset_mapping"]):
            row, sequence = enc["overflow_to_sample_mapping"][w], enc.sequence_ids(w)
            context = [t for t, s in enumerate(sequence) if s == 1]  # token ids of the context part
            texts, char_starts = answers[row]
            start = end = 0  # CLS: the answer is not (wholly) in this window, or there is none
            if texts and context:
                a, b = char_starts[0], char_starts[0] + len(texts[0])
                if offsets[context[0]][0] <= a and offsets[context[-1]][1] >= b:
                    start = max(t for t in context if offsets[t][0] <= a)
                    end = min(t for t in context if t >= start and offsets[t][1] >= b)
                    found.add(row)
            starts.append(start)
            ends.append(end)
        columns = {k: enc[k] for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc}
        features = Dataset.from_dict({**columns, "start_positions": starts, "end_positions": ends})
        windows_per_row = Counter(enc["overflow_to_sample_mapping"])
        stats = {"rows": len(rows), "windows": len(starts),
                 "contexts_split": sum(1 for n in windows_per_row.values() if n > 1),  # into several windows
                 "questions_truncated": cut,
                 "answers_truncated": sum(1 for r, (t, _) in enumerate(answers) if t and r not in found)}
        return features, stats

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        from transformers import DataCollatorWithPadding

        # Pads input_ids/attention_mask/token_type_ids; start/end positions become (B,) tensors.
        return DataCollatorWithPadding(self.tokenizer)(features)

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        return model(**batch).loss  # mean of the start and end cross-entropies

    def _answers(self, model: Any, questions: list[str], contexts: list[str], batch_size: int) -> list[Answer]:
        """The best answer per (question, context): windows -> logits -> spans."""
        import numpy as np
        import torch

        enc, _ = self._windows(questions, contexts)
        keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
        device, was_training = next(model.parameters()).device, model.training
        model.eval()
        windows: list[list[Window]] = [[] for _ in questions]
        order = sorted(range(len(enc["input_ids"])), key=lambda w: len(enc["input_ids"][w]))  # similar lengths together
        with torch.inference_mode():
            for first in range(0, len(order), batch_size):
                chunk = order[first : first + batch_size]
                batch = self.tokenizer.pad({k: [enc[k][w] for w in chunk] for k in keys}, return_tensors="pt")
                out = model(**{k: v.to(device) for k, v in batch.items()})
                start_logits = out.start_logits.float().cpu().numpy()  # (B, T)
                end_logits = out.end_logits.float().cpu().numpy()  # (B, T)
                for j, w in enumerate(chunk):
                    n = len(enc["input_ids"][w])
                    in_context = np.array([s == 1 for s in enc.sequence_ids(w)])  # (n,)
                    windows[enc["overflow_to_sample_mapping"][w]].append(
                        Window(start_logits[j, :n], end_logits[j, :n], enc["offset_mapping"][w], in_context))
        model.train(was_training)
        return [best_answer(ws, c, n_best=self.n_best, max_answer_length=self.max_answer_length,
                            version_2=self.version_2, null_threshold=self.null_threshold) for ws, c in zip(windows, contexts)]

    def evaluate(self, model: Any, rows: Any, *, generation: GenerationConfig) -> tuple[dict[str, float], list[dict[str, Any]]]:
        references = [texts for texts, _ in self._parsed(rows)]
        answers = self._answers(model, list(rows["question"]), list(rows["context"]), generation.generation_batch_size)
        ids = rows["id"] if "id" in rows.column_names else list(range(len(rows)))
        records = [{"id": i, "question": q, "reference": r, "prediction": a.text, "score": round(a.score, 6)}
                   for i, q, r, a in zip(ids, rows["question"], references, answers)]
        return score_answers([a.text for a in answers], references), records

    def score_records(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """Metrics from evaluate's records (a distributed evaluation gathers them from every process)."""
        return score_answers([r["prediction"] for r in records], [r["reference"] for r in records])

    def row_statistics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Per-row exact match and F1, for the fast bootstrap (metrics/rowwise.py); the rest is rescored."""
        return squad_statistics([r["prediction"] for r in records], [r["reference"] for r in records])

    def baselines(self, rows: Any) -> dict[str, tuple[dict[str, float], list[dict[str, Any]]]]:
        references = [texts for texts, _ in self._parsed(rows)]
        out = {}
        for name, f in BASELINES.items():
            answers = [f(q, c) for q, c in zip(rows["question"], rows["context"])]
            out[name] = (score_answers(answers, references),
                         [{"reference": r, "prediction": a} for r, a in zip(references, answers)])
        return out

    def predict(self, model: Any, inputs: list[dict[str, Any]], *, generation: GenerationConfig) -> list[dict[str, Any]]:
        for i, row in enumerate(inputs):
            for key in self.input_keys:
                if not isinstance(row.get(key), str) or not row[key].strip():
                    raise DataError(f"input {i}: {key!r} must be non-empty text")
        answers = self._answers(model, [r["question"] for r in inputs], [r["context"] for r in inputs],
                                generation.generation_batch_size)
        return [a.as_dict() for a in answers]

    def finalize_model(self, model: Any) -> None:
        """Nothing to adjust: the saved model is a plain *ForQuestionAnswering checkpoint."""

    def metadata(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "stride": self.stride, "max_answer_length": self.max_answer_length,
                "n_best": self.n_best, "version_2": self.version_2, "null_threshold": self.null_threshold}

    def restore(self, metadata: dict[str, Any], *, tokenizer: Any = None, model: Any = None) -> None:
        for key, value in metadata.items():
            setattr(self, key, value)
        self.question_cap = self.max_length // 2
        if tokenizer is not None and model is not None:
            self._attach(tokenizer, model.config)
