"""Metrics for generated text: ROUGE, BLEU/chrF, generation length, lead-k.

All functions are pure: they take model outputs and references as strings
and return plain ``float`` scores on a 0-100 scale (lengths excepted).
``rouge_score`` pulls in nltk and takes seconds to import, so it is imported
inside :func:`rouge` rather than when this module is imported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import sacrebleu

from texttune.metrics.sentences import split_sentences

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "bleu_chrf",
    "generation_length",
    "lead_sentences",
    "mean_sentence_count",
    "rouge",
]

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def _check_pairs(predictions: Sequence[str], references: Sequence[object]) -> None:
    """Raise ``ValueError`` unless there are as many references as predictions (>0)."""
    if isinstance(predictions, str) or isinstance(references, str):
        raise TypeError(
            "predictions and references must be sequences of strings, not a single string"
        )
    if len(predictions) != len(references):
        raise ValueError(
            f"got {len(predictions)} predictions but {len(references)} references; "
            "there must be exactly one reference per prediction"
        )
    if not predictions:
        raise ValueError("no predictions to score")


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L/Lsum F-measures (x100) with Porter stemming.

    ``rougeLsum`` is summary-level LCS: rouge_score splits its inputs on
    ``"\\n"``, so both sides are first split with :func:`split_sentences` and
    re-joined one sentence per line (without this it equals ``rougeL``).
    """
    _check_pairs(predictions, references)
    from rouge_score import rouge_scorer

    plain = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    summary = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, reference in zip(predictions, references):
        scores = plain.score(reference, prediction)
        reference_lines = "\n".join(split_sentences(reference))
        scores.update(summary.score(reference_lines, "\n".join(split_sentences(prediction))))
        for key in ROUGE_TYPES:
            totals[key] += scores[key].fmeasure
    return {key: round(100 * total / len(predictions), 4) for key, total in totals.items()}


def bleu_chrf(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus-level sacreBLEU (13a tokenizer) and chrF, one reference per prediction."""
    _check_pairs(predictions, references)
    hypotheses, refs = list(predictions), [list(references)]
    return {
        "bleu": round(float(sacrebleu.corpus_bleu(hypotheses, refs).score), 4),
        "chrf": round(float(sacrebleu.corpus_chrf(hypotheses, refs).score), 4),
    }


def generation_length(
    predictions: Sequence[str], *, tokenizer: PreTrainedTokenizerBase | None = None
) -> dict[str, float]:
    """Mean prediction length as ``{"gen_len": ...}``.

    Counts whitespace-separated words when ``tokenizer`` is None, otherwise
    tokens as the tokenizer sees them, without special tokens.
    """
    if isinstance(predictions, str):
        raise TypeError("predictions must be a sequence of strings, not a single string")
    if not predictions:
        raise ValueError("no predictions to score")
    if tokenizer is None:
        lengths = [len(p.split()) for p in predictions]
    else:
        lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in predictions]
    return {"gen_len": round(sum(lengths) / len(lengths), 4)}


def lead_sentences(text: str, n: int) -> str:
    """The first ``n`` sentences of ``text`` joined by spaces (the lead-n baseline).

    Returns the whole text (whitespace-normalised) when it has fewer sentences.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return " ".join(split_sentences(text)[:n])


def mean_sentence_count(texts: Sequence[str]) -> int:
    """Mean number of sentences per text, rounded half up, and at least 1.

    Used to pick k for the lead-k baseline so that its output is about as
    long as the references usually are.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not a single string")
    if not texts:
        raise ValueError("no texts to count sentences in")
    mean = sum(len(split_sentences(t)) for t in texts) / len(texts)
    return max(1, math.floor(mean + 0.5))
