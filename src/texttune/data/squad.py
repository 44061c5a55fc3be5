"""SQuAD-style extractive QA data: the official nested JSON layout and the ``answers`` cell.

Two layouts reach the question-answering task:

- the official SQuAD file, ``{"data": [{"title", "paragraphs": [{"context", "qas":
  [{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}``, which
  :func:`flatten_squad` turns into one row per question (``_read_json`` calls it);
- flat rows (JSONL, CSV, Parquet, the Hugging Face ``squad`` dataset) with an
  ``answers`` cell ``{"text": [...], "answer_start": [...]}``; in CSV that cell is
  a JSON string. :func:`parse_answers` reads every variant into two lists.

Both stay here because this package is the only one that knows file formats.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from texttune.errors import DataError

ANSWERS_LAYOUT = '{"text": ["..."], "answer_start": [0]} (or a JSON string of it, or a list of {"text", "answer_start"} objects)'


def is_squad_layout(records: list[Any]) -> bool:
    """True when ``records`` are SQuAD articles (objects with a ``paragraphs`` list)."""
    return bool(records) and all(isinstance(r, dict) and "paragraphs" in r for r in records)


def _answer_objects(value: Any, where: str) -> dict[str, list[Any]]:
    """``[{"text", "answer_start"}, ...]`` -> ``{"text": [...], "answer_start": [...]}``; DataError otherwise."""
    try:
        texts, starts = parse_answers(value)
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None
    return {"text": texts, "answer_start": starts}


def flatten_squad(articles: list[dict[str, Any]], path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """One record per question (id, title, context, question, answers) and where each came from.

    SQuAD v2 questions marked ``is_impossible`` keep their (empty) ``answers``;
    ``plausible_answers`` are not answers and are dropped, as in the official scorer.
    """
    records: list[dict[str, Any]] = []
    where: list[str] = []
    for a, article in enumerate(articles, start=1):
        title = article.get("title")
        paragraphs = article["paragraphs"]
        here = f"{path} article {a}" + (f" ({title!r})" if isinstance(title, str) else "")
        if not isinstance(paragraphs, list):
            raise DataError(f"{here}: 'paragraphs' must be a list, got {type(paragraphs).__name__}")
        for p, paragraph in enumerate(paragraphs, start=1):
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
                raise DataError(f"{here} paragraph {p}: expected an object with 'context' and a 'qas' list")
            for q, qa in enumerate(paragraph["qas"], start=1):
                spot = f"{here} paragraph {p} question {q}"
                if not isinstance(qa, dict):
                    raise DataError(f"{spot}: expected an object with 'id', 'question' and 'answers'")
                answers = [] if qa.get("is_impossible") and not qa.get("answers") else qa.get("answers")
                records.append({
                    "id": None if qa.get("id") is None else str(qa["id"]),
                    "title": title if isinstance(title, str) else None,
                    "context": paragraph.get("context"),
                    "question": qa.get("question"),
                    "answers": _answer_objects(answers, spot),
                })
                where.append(spot + (f" (id {qa['id']})" if qa.get("id") is not None else ""))
    if not records:
        raise DataError(f"{path}: the SQuAD file has no questions")
    return records, where


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def parse_answers(cell: Any) -> tuple[list[str], list[int]]:
    """Answer texts and character starts from one ``answers`` cell.

    Raises ``ValueError`` saying what is wrong and which layout is expected;
    the caller adds the row. An empty list means "no answer" (SQuAD v2).
    """
    if isinstance(cell, str):
        try:
            cell = json.loads(cell)
        except json.JSONDecodeError:
            raise ValueError(f"answers cell {cell[:60]!r} is not JSON; expected {ANSWERS_LAYOUT}") from None
        if isinstance(cell, str):
            raise ValueError(f"answers cell is a JSON string, not an object; expected {ANSWERS_LAYOUT}")
    if isinstance(cell, list) and all(isinstance(x, dict) for x in cell):
        texts: Any = [x.get("text") for x in cell]
        starts: Any = [x.get("answer_start") for x in cell]
    elif isinstance(cell, dict) and "text" in cell and "answer_start" in cell:
        texts, starts = cell["text"], cell["answer_start"]
        if isinstance(texts, str) and not isinstance(starts, list):  # one answer, not wrapped in lists
            texts, starts = [texts], [starts]
    else:
        shown = "empty (missing)" if cell is None else f"{type(cell).__name__} {str(cell)[:60]!r}"
        raise ValueError(f"answers cell is {shown}; expected {ANSWERS_LAYOUT}")
    if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
        raise ValueError(f"answers cell needs equal-length 'text' and 'answer_start' lists, got {str(cell)[:80]!r}")
    int_starts = [_int(s) for s in starts]
    for text, start in zip(texts, int_starts):
        if not isinstance(text, str) or not text.strip() or start is None or start < 0:
            raise ValueError(f"answer {text!r} at {start!r}: each answer needs non-empty text and a character offset >= 0")
    return list(texts), [s for s in int_starts if s is not None]


def span_mismatch(context: str, texts: list[str], starts: list[int]) -> tuple[str, int, str] | None:
    """The first answer whose ``context[start:start + len(text)]`` is not ``text``: (text, start, found)."""
    for text, start in zip(texts, starts):
        found = context[start : start + len(text)]
        if found != text:
            return text, start, found
    return None
