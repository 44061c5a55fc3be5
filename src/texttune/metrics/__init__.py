"""Offline evaluation metrics for text tasks.

Everything here runs without network access: no ``evaluate.load`` and no
nltk data downloads.
"""

from __future__ import annotations

from texttune.metrics.qa import normalize_answer, squad_scores
from texttune.metrics.sentences import split_sentences
from texttune.metrics.tagging import seqeval_scores
from texttune.metrics.text import (
    bleu_chrf,
    generation_length,
    lead_sentences,
    mean_sentence_count,
    rouge,
    scoring_settings,
    summary_lines,
)

__all__ = [
    "bleu_chrf",
    "generation_length",
    "lead_sentences",
    "mean_sentence_count",
    "normalize_answer",
    "rouge",
    "scoring_settings",
    "seqeval_scores",
    "split_sentences",
    "squad_scores",
    "summary_lines",
]
