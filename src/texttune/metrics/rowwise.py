"""Per-row statistics of the metrics whose value is a function of sums over rows, for the fast bootstrap path.

Each function returns ``{metric: Additive}`` (metrics/bootstrap.py) whose ``finish`` on the sums over all rows
gives exactly what the metric's own function returns: means of per-row scores (ROUGE, SQuAD EM/F1, generation
length), corpus BLEU and chrF (sacreBLEU's per-sentence n-gram statistics, summed as sacreBLEU sums them), and
perplexity (summed token losses over summed token counts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sacrebleu.metrics import BLEU, CHRF

from texttune.metrics.bootstrap import Additive, mean_of
from texttune.metrics.qa import _exact_match, _f1, normalize_answer
from texttune.metrics.text import rouge_rows
from texttune.metrics.tokenize import bleu_tokenizer_for


def rouge_statistics(predictions: Sequence[str], references: Sequence[str], *, tokenizer: str = "auto",
                     language: str | None = None) -> dict[str, Additive]:
    """ROUGE-1/2/L/Lsum as 100 x the mean of each row's F-measure (metrics.text.rouge)."""
    rows = rouge_rows(predictions, references, tokenizer=tokenizer, language=language)
    return {key: mean_of(values, scale=100) for key, values in rows.items()}


def length_statistics(predictions: Sequence[str]) -> dict[str, Additive]:
    """gen_len: the mean whitespace word count (metrics.text.generation_length without a tokenizer)."""
    return {"gen_len": mean_of([len(p.split()) for p in predictions])}


def bleu_chrf_statistics(predictions: Sequence[str], references: Sequence[str], *,
                         language: str | None = None) -> dict[str, Additive]:
    """Corpus BLEU and chrF (metrics.text.bleu_chrf) from sacreBLEU's per-sentence statistics, which it sums itself."""
    hypotheses, refs = list(predictions), [list(references)]
    out = {}
    for name, metric in (("bleu", BLEU(tokenize=bleu_tokenizer_for(language))), ("chrf", CHRF())):
        stats = np.asarray(metric._extract_corpus_statistics(hypotheses, refs), dtype=np.float64)  # (rows, k)

        def finish(sums: np.ndarray, metric: object = metric) -> np.ndarray:
            return np.array([round(float(metric._compute_score_from_stats(_counts(row)).score), 4) for row in sums])

        out[name] = Additive(stats, finish)
    return out


def squad_statistics(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, Additive]:
    """SQuAD exact match and F1 as 100 x the mean of each row's best match (metrics.qa.squad_scores); a row without
    reference answers (SQuAD v2, unanswerable) scores 1 when the prediction is empty after normalisation."""
    exact = [max(_exact_match(p, a) for a in answers) if answers else float(not normalize_answer(p))
             for p, answers in zip(predictions, references)]
    f1 = [max(_f1(p, a) for a in answers) if answers else float(not normalize_answer(p))
          for p, answers in zip(predictions, references)]
    return {"exact_match": mean_of(exact, scale=100), "f1": mean_of(f1, scale=100)}


def perplexity_statistics(loss_sums: Sequence[float], counts: Sequence[int]) -> dict[str, Additive]:
    """``loss`` (summed token losses / tokens) and ``perplexity`` (its exp), as tasks.chunking.perplexity computes them."""
    stats = np.column_stack([np.asarray(loss_sums, dtype=np.float64), np.asarray(counts, dtype=np.float64)])

    def loss(sums: np.ndarray) -> np.ndarray:
        return np.where(sums[:, 1] > 0, sums[:, 0] / np.maximum(sums[:, 1], 1), np.nan)

    def perplexity(sums: np.ndarray) -> np.ndarray:
        return np.round(np.exp(np.minimum(loss(sums), 700.0)), 4)

    return {"loss": Additive(stats, lambda s: np.round(loss(s), 6)), "perplexity": Additive(stats, perplexity)}


def _counts(row: np.ndarray) -> list[int]:
    """Summed sacreBLEU statistics as the integers sacreBLEU expects (they are counts)."""
    return [int(math.floor(v + 0.5)) for v in row]
