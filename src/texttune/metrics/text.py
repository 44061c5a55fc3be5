"""Metrics for generated text: ROUGE, BLEU/chrF, generation length, lead-k.

All functions are pure: they take model outputs and references as strings
and return plain ``float`` scores on a 0-100 scale (lengths excepted).
``rouge_score`` pulls in nltk and takes seconds to import, so it is imported
inside :func:`rouge` rather than when this module is imported.

Both metrics take the language of the texts they score (metrics/tokenize.py:
ROUGE's tokenizer, ROUGE-Lsum's sentences, sacreBLEU's tokenizer);
:func:`scoring_settings` says what a run used, for metrics.json.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sacrebleu.metrics import BLEU, CHRF

from texttune.metrics.sentences import split_sentences
from texttune.metrics.tokenize import bleu_tokenizer_for, resolve_rouge_tokenizer, rouge_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "bleu_chrf",
    "generation_length",
    "lead_sentences",
    "mean_sentence_count",
    "rouge",
    "scoring_settings",
    "summary_lines",
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


def summary_lines(text: str, *, language: str | None = None) -> str:
    """``text`` one sentence per line, as rouge-score's ``rougeLsum`` wants it.

    A line break ends a sentence, then each line is split with :func:`split_sentences`: the
    Hugging Face summarization scripts do the same (``"\\n".join(nltk.sent_tokenize(text))``,
    whose sentences keep the text's own line breaks, which rouge-score splits on too), so
    references such as CNN/DailyMail's highlights, one per line without final periods, are
    scored as the published numbers score them.
    """
    return "\n".join(s for line in text.split("\n") for s in split_sentences(line, language=language))


def rouge(predictions: Sequence[str], references: Sequence[str], *, tokenizer: str = "auto",
          language: str | None = None) -> dict[str, float]:
    """Mean ROUGE-1/2/L/Lsum F-measures (x100).

    ``tokenizer``: "default" (rouge-score's own, with Porter stemming: English), "unicode", "cjk", or "auto"
    (from ``language``; no language is English): see metrics/tokenize.py. ``rougeLsum`` is summary-level LCS
    over the sentences of :func:`summary_lines` (without them it equals ``rougeL``).
    """
    rows = rouge_rows(predictions, references, tokenizer=tokenizer, language=language)
    return {key: round(100 * sum(values) / len(predictions), 4) for key, values in rows.items()}


def rouge_rows(predictions: Sequence[str], references: Sequence[str], *, tokenizer: str = "auto",
               language: str | None = None) -> dict[str, list[float]]:
    """Each row's ROUGE-1/2/L/Lsum F-measure (0-1): :func:`rouge` is 100 x their mean; the bootstrap resamples them."""
    _check_pairs(predictions, references)
    from rouge_score import rouge_scorer

    own = rouge_tokenizer(resolve_rouge_tokenizer(tokenizer, language=language))
    plain = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True, tokenizer=own)
    summary = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True, tokenizer=own)
    rows: dict[str, list[float]] = {key: [] for key in ROUGE_TYPES}
    for prediction, reference in zip(predictions, references):
        scores = plain.score(reference, prediction)
        scores.update(summary.score(summary_lines(reference, language=language),
                                    summary_lines(prediction, language=language)))
        for key in ROUGE_TYPES:
            rows[key].append(scores[key].fmeasure)
    return rows


def bleu_chrf(predictions: Sequence[str], references: Sequence[str], *,
              language: str | None = None) -> dict[str, float]:
    """Corpus-level sacreBLEU and chrF, one reference per prediction.

    BLEU's tokenizer follows the target ``language`` (:func:`~texttune.metrics.tokenize.bleu_tokenizer_for`:
    "13a" for English, no language and other space-separated languages; "zh"; "ja-mecab"/"ko-mecab" or
    "char"); chrF works on characters and is the same for every language.
    """
    _check_pairs(predictions, references)
    hypotheses, refs = list(predictions), [list(references)]
    bleu = BLEU(tokenize=bleu_tokenizer_for(language))
    return {
        "bleu": round(float(bleu.corpus_score(hypotheses, refs).score), 4),
        "chrf": round(float(CHRF().corpus_score(hypotheses, refs).score), 4),
    }


def scoring_settings(*, language: str | None, rouge_tokenizer: str | None = None,
                     bleu: bool = False) -> dict[str, str]:
    """How the text metrics were computed, for metrics.json "scoring": the language, ROUGE's tokenizer and
    sentence splitting (when ``rouge_tokenizer`` is given: the option's value), and sacreBLEU's signatures
    (``bleu``) such as ``nrefs:1|case:mixed|eff:no|tok:zh|smooth:exp|version:2.6.0``."""
    settings = {"language": language or "en (default)"}
    if rouge_tokenizer is not None:
        name = resolve_rouge_tokenizer(rouge_tokenizer, language=language)
        settings["rouge_tokenizer"] = name + (" (rouge-score's, Porter stemmer)" if name == "default" else "")
        settings["rouge_lsum_sentences"] = (f"line breaks, then texttune's splitter ({language or 'en'}), "
                                            "joined with newlines as the Hugging Face scripts do")
    if bleu:
        metrics = {"bleu_signature": BLEU(tokenize=bleu_tokenizer_for(language)), "chrf_signature": CHRF()}
        for key, metric in metrics.items():
            metric.corpus_score(["x"], [["x"]])  # sacreBLEU knows its signature once it has scored
            settings[key] = str(metric.get_signature())
    return settings


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


def lead_sentences(text: str, n: int, *, language: str | None = None) -> str:
    """The first ``n`` sentences of ``text`` (in ``language``) joined by spaces (the lead-n baseline).

    Returns the whole text (whitespace-normalised) when it has fewer sentences.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return " ".join(split_sentences(text, language=language)[:n])


def mean_sentence_count(texts: Sequence[str], *, language: str | None = None) -> int:
    """Mean number of sentences per text, rounded half up, and at least 1.

    Used to pick k for the lead-k baseline so that its output is about as
    long as the references usually are.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not a single string")
    if not texts:
        raise ValueError("no texts to count sentences in")
    mean = sum(len(split_sentences(t, language=language)) for t in texts) / len(texts)
    return max(1, math.floor(mean + 0.5))
