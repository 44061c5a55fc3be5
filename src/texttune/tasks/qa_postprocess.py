"""Extractive QA post-processing, scoring and model-free baselines.

From start/end logits over the windows of one example to one answer in the
context text. The algorithm is the one of the Hugging Face SQuAD examples
(``utils_qa.postprocess_qa_predictions``): the ``n_best`` start and end tokens
of each window, pairs no longer than ``max_answer_length`` tokens, a span
scored by ``start_logit + end_logit``, the best span over all windows, mapped
to characters through the tokenizer's offsets. It is written out here because
that code is an example script, not part of the ``transformers`` package, and
transformers 5 removed the text question-answering pipeline; the document-QA
pipeline's ``decode_spans`` normalises each window separately (softmax), so its
scores are not comparable across windows and it has no logit-margin "no answer".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from texttune.metrics import lead_sentences, normalize_answer, squad_scores

if TYPE_CHECKING:  # numpy is imported where it is used: the CLI imports every task to build its help
    import numpy as np


@dataclass(frozen=True)
class Window:
    """Model outputs for one window of one example."""

    start_logits: np.ndarray  # (T,)
    end_logits: np.ndarray  # (T,)
    offsets: Sequence[tuple[int, int]]  # (T,) character span of each token in the context
    in_context: np.ndarray  # (T,) bool: the token belongs to the context (not question/special/padding)


@dataclass(frozen=True)
class Answer:
    """One prediction: the answer text, its character span (None for "no answer") and probability."""

    text: str
    start: int | None
    end: int | None
    score: float  # softmax over the example's n-best span scores (and the no-answer score in v2)

    def as_dict(self) -> dict[str, object]:
        return {"answer": self.text, "score": round(self.score, 6), "start": self.start, "end": self.end}


def window_spans(window: Window, *, n_best: int, max_answer_length: int) -> dict[tuple[int, int], float]:
    """Character span -> logit score for the valid pairs of the window's n-best starts and ends."""
    import numpy as np

    in_context = window.in_context
    k = min(n_best, int(in_context.sum()))
    if k == 0:
        return {}
    starts = np.argsort(np.where(in_context, window.start_logits, -np.inf))[::-1][:k]  # (k,) token ids
    ends = np.argsort(np.where(in_context, window.end_logits, -np.inf))[::-1][:k]  # (k,)
    scores = window.start_logits[starts][:, None] + window.end_logits[ends][None, :]  # (k, k)
    length = ends[None, :] - starts[:, None] + 1  # (k, k) tokens
    valid = (length >= 1) & (length <= max_answer_length)
    out: dict[tuple[int, int], float] = {}
    for a, b in zip(*np.nonzero(valid)):
        span = (int(window.offsets[starts[a]][0]), int(window.offsets[ends[b]][1]))
        out[span] = max(float(scores[a, b]), out.get(span, -np.inf))
    return out


def best_answer(
    windows: Sequence[Window], context: str, *, n_best: int, max_answer_length: int,
    version_2: bool = False, null_threshold: float = 0.0,
) -> Answer:
    """The best span over all windows of one example; with ``version_2``, possibly "no answer".

    "No answer" scores ``start_logit + end_logit`` at CLS (index 0), the lowest
    over the windows as in the SQuAD v2 examples; the best span is kept only when
    it beats that score by more than ``null_threshold``.
    """
    import numpy as np

    spans: dict[tuple[int, int], float] = {}
    for window in windows:
        for span, score in window_spans(window, n_best=n_best, max_answer_length=max_answer_length).items():
            spans[span] = max(score, spans.get(span, -np.inf))
    ranked = sorted(spans.items(), key=lambda item: -item[1])[:n_best]
    null = min(float(w.start_logits[0] + w.end_logits[0]) for w in windows) if windows else 0.0
    scores = np.array([score for _, score in ranked] + ([null] if version_2 else []), dtype=np.float64)
    probs = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum() if len(scores) else scores
    if not ranked or (version_2 and not ranked[0][1] - null > null_threshold):
        return Answer("", None, None, float(probs[-1]) if version_2 and len(probs) else 0.0)
    (start, end), _ = ranked[0]
    return Answer(context[start:end], start, end, float(probs[0]))


def score_answers(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """SQuAD exact match and F1 (x100); questions without references follow the official v2 rule.

    An unanswerable question (no reference) scores 1 only when the prediction is
    empty after normalisation; answerable ones are scored by the v1.1 script.
    """
    answerable = [i for i, refs in enumerate(references) if refs]
    total = {"exact_match": 0.0, "f1": 0.0}
    if answerable:
        scores = squad_scores([predictions[i] for i in answerable], [list(references[i]) for i in answerable])
        total = {name: value * len(answerable) for name, value in scores.items()}
    empty = sum(1 for i, refs in enumerate(references) if not refs and not normalize_answer(predictions[i]))
    return {name: round((value + 100.0 * empty) / len(predictions), 4) for name, value in total.items()}


# -- model-free baselines ----------------------------------------------------------------------

_STOP = frozenset(
    "a an the of in on at to for from by with as and or is are was were be been did does do what which who whom "
    "whose when where why how that this these those it its his her their there than into about".split()
)


def first_sentence(question: str, context: str) -> str:
    """Baseline: the context's first sentence, whatever the question."""
    return lead_sentences(context, 1)


def window_overlap(question: str, context: str, *, longest: int = 3, radius: int = 5) -> str:
    """Baseline: the sliding-window lexical overlap of the SQuAD paper, simplified.

    Candidates are runs of 1..``longest`` context words that share no word with
    the question and neither start nor end with a stop word; each scores
    ``sum(1 / distance)`` over the question words (stop words aside) among the
    ``radius`` words on either side. The best wins (ties: the earliest, then the longest). It
    finds answers that sit right next to the question's words, nothing more.
    """
    words = list(re.finditer(r"\S+", context))
    norm = [normalize_answer(w.group()) for w in words]
    wanted = set(normalize_answer(question).split()) - _STOP
    hit = [n in wanted for n in norm]
    stop = [not n or n in _STOP for n in norm]
    best: tuple[float, int, int] = (0.0, -1, -1)  # (score, first word, last word)
    for i in range(len(words)):
        for j in range(i, min(i + longest, len(words))):
            if hit[j]:
                break
            if stop[i] or stop[j]:
                continue
            left = sum(1 / (i - k) for k in range(max(0, i - radius), i) if hit[k])
            right = sum(1 / (k - j) for k in range(j + 1, min(len(words), j + 1 + radius)) if hit[k])
            if left + right > best[0] or (left + right == best[0] and i == best[1]):  # ties: the longer run
                best = (left + right, i, j)
    if best[1] < 0:  # no question word in the context at all
        return first_sentence(question, context)
    return context[words[best[1]].start() : words[best[2]].end()].rstrip(",;:")


BASELINES = {"first_sentence": first_sentence, "window_overlap": window_overlap}
