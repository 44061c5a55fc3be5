"""Offline sentence splitting for ROUGE-Lsum and lead-k baselines.

We do not use ``nltk.sent_tokenize``: its punkt model is a data package that
has to be downloaded at run time, and texttune must work with no network.
This regex splitter stands in for punkt (what the Hugging Face summarization
scripts split with before joining sentences with newlines for rouge-score's
``rougeLsum``): it is deterministic, has no dependencies, and handles the cases
that matter for summary-length English text: abbreviations, initials, decimal
numbers, quotes and paragraphs.

With a ``language`` other than English it also ends sentences at the
punctuation of other scripts, with or without a space after it (CJK 。！？,
Devanagari danda । ॥, Arabic ؟, Urdu ۔, Ethiopic ።, Myanmar ။, Armenian ։),
and at ``.``, ``!``, ``?`` or ``…`` followed by whitespace and a letter that
is not lower-case, in any script (a capital, or a letter of a script without
case such as Arabic or Hindi). English, or no language, keeps the rules below
exactly.
"""

from __future__ import annotations

import re

__all__ = ["split_sentences"]

# Words that end in a period without ending a sentence (compared lower-cased,
# without the period). "no" is left out on purpose: "He said no. Then ..." is
# far more common in running text than "No. 5" followed by a capital.
_ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft",
        "gen", "col", "capt", "lt", "sgt", "gov", "sen", "rep", "rev", "hon",
        "etc", "vs", "cf", "al", "approx", "dept", "est", "fig", "vol",
        "inc", "ltd", "co", "corp", "jan", "feb", "aug", "sept", "oct", "nov", "dec",
    }
)

# A candidate boundary: terminal punctuation, optional closing quotes or
# brackets, whitespace, then something that can start a sentence.
_BOUNDARY = re.compile(r"""[.!?]+["'\u201d\u2019)\]]*\s+(?=["'\u201c\u2018(\[]?[A-Z0-9])""")
# Dotted abbreviations such as "e.g", "i.e", "U.S", "a.m" (final period removed).
_DOTTED = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")
# Other languages: punctuation that always ends a sentence, and the Latin kind, checked in code (see _starts_sentence).
_CLOSERS = "\"'\u201d\u2019\u00bb)\\]\u300d\u300f\uff09"
_OPENERS = "\"'\u201c\u2018\u00ab(\u300c\u300e\uff08\u00bf\u00a1["
_BOUNDARY_INTL = re.compile(
    rf"(?P<strong>[\u3002\uff01\uff1f\uff61\u0964\u0965\u061f\u06d4\u1362\u104b\u0589]+[{_CLOSERS}]*\s*)"
    rf"|(?P<weak>(?:[.!?\u2026])+[{_CLOSERS}]*\s+)"
)
# A single capital initial such as the "J" in "J. Smith".
_INITIAL = re.compile(r"[A-Z]")
# One or more blank lines separate paragraphs.
_PARAGRAPH = re.compile(r"\n\s*\n")


def _is_abbreviation(before: str) -> bool:
    """Whether the word just before a single ``.`` is an abbreviation."""
    words = before.split()
    if not words:
        return False
    word = words[-1].lstrip("\"'([{\u201c\u2018")
    return (
        word.lower() in _ABBREVIATIONS
        or _DOTTED.fullmatch(word) is not None
        or _INITIAL.fullmatch(word) is not None
    )


def _split_paragraph(paragraph: str) -> list[str]:
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(paragraph):
        punctuation = match.group().rstrip()
        if punctuation == "." and _is_abbreviation(paragraph[start : match.start()]):
            continue
        sentences.append(paragraph[start : match.end()])
        start = match.end()
    sentences.append(paragraph[start:])
    return sentences


def _starts_sentence(rest: str) -> bool:
    """Whether text after ``.``/``!``/``?`` and whitespace can start a sentence: after an optional opening quote or
    bracket, a digit or a letter that is not lower-case (a capital in any cased script, or a letter of a caseless one)."""
    head = rest.lstrip(_OPENERS + " \u00a0\u202f")[:1]  # French: « Bon
    return bool(head) and (head.isdigit() or (head.isalpha() and not head.islower()))


def _split_paragraph_intl(paragraph: str) -> list[str]:
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY_INTL.finditer(paragraph):
        if match.group("weak") is not None:
            punctuation = match.group().rstrip()
            if not _starts_sentence(paragraph[match.end():]):
                continue
            if punctuation == "." and _is_abbreviation(paragraph[start : match.start()]):
                continue
        sentences.append(paragraph[start : match.end()])
        start = match.end()
    sentences.append(paragraph[start:])
    return sentences


def split_sentences(text: str, *, language: str | None = None) -> list[str]:
    """Split ``text`` into sentences (``language``: a code such as "fr" or "zh"; None or "en" for English).

    A sentence ends at ``.``, ``!`` or ``?`` (possibly followed by closing
    quotes or brackets) when whitespace and an uppercase letter, digit,
    opening quote or bracket follow. A period does not end a sentence after a
    common abbreviation ("Mr.", "Dr.", "etc.", "vs."), a dotted abbreviation
    ("e.g.", "i.e.", "U.S.") or a single capital initial ("J. Smith");
    decimals like "3.5" never split because no whitespace follows the point.
    Blank lines (paragraph breaks) always split. Whitespace inside a sentence,
    single newlines included, is collapsed to one space, so that joining the
    result with ``"\\n"`` gives exactly one sentence per line.

    Another ``language`` adds the boundaries of the module doc.

    Returns an empty list for empty or whitespace-only text.
    """
    english = language is None or re.split(r"[-_]", language.lower(), maxsplit=1)[0] in {"en", "eng", ""}
    split = _split_paragraph if english else _split_paragraph_intl
    sentences: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        for sentence in split(paragraph):
            collapsed = " ".join(sentence.split())
            if collapsed:
                sentences.append(collapsed)
    return sentences
