"""Extractive question answering metrics: SQuAD v1.1 exact match and F1.

This reproduces the official ``evaluate-v1.1.py`` script (answer
normalisation, token-level F1, max over the reference answers, mean x100),
written out here so that nothing has to be fetched from the Hugging Face hub.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

__all__ = ["normalize_answer", "squad_scores"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def _f1(prediction: str, reference: str) -> float:
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(reference).split()
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:  # as in v1.1, two empty answers score 0, not 1
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def squad_scores(
    predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> dict[str, float]:
    """SQuAD v1.1 ``exact_match`` and ``f1`` (x100).

    ``references[i]`` holds every accepted answer to question ``i``; each
    prediction scores its best match among them.
    """
    if len(predictions) != len(references):
        raise ValueError(
            f"got {len(predictions)} predictions but {len(references)} reference answer lists"
        )
    if not predictions:
        raise ValueError("no predictions to score")
    exact = f1 = 0.0
    for index, (prediction, answers) in enumerate(zip(predictions, references)):
        if isinstance(answers, str):
            raise TypeError(f"references[{index}] must be a list of answers, not a string")
        if not answers:
            raise ValueError(f"references[{index}] has no reference answers")
        exact += max(_exact_match(prediction, answer) for answer in answers)
        f1 += max(_f1(prediction, answer) for answer in answers)
    return {
        "exact_match": round(100 * exact / len(predictions), 4),
        "f1": round(100 * f1 / len(predictions), 4),
    }
