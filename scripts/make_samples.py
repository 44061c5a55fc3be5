#!/usr/bin/env python3
"""Regenerate the small real-data samples shipped in the repository.

Why this script exists: the test fixtures under ``tests/data/`` and the package
demo data under ``src/texttune/demo_data/`` are *copied* from the shared real
datasets (never invented), and anyone must be able to check or rebuild them.
Every selection below is deterministic (fixed filters plus ``random.Random(0)``),
so running the script twice gives byte-identical files.

Usage::

    python scripts/make_samples.py                      # source: ../shared/datasets
    python scripts/make_samples.py --source /path/to/datasets

Only the standard library is used, so it runs without the project venv.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "datasets"
TEST_DATA = REPO_ROOT / "tests" / "data"
DEMO_DATA = REPO_ROOT / "src" / "texttune" / "demo_data"

Row = dict[str, Any]

# Marks of interface strings that a user would clean or filter out: keyboard
# accelerators (&), printf/Qt placeholders (%1, %s), format fields ({0}),
# HTML markup (<b>), entities and KDE context markers (_:).
_UI_MARKS = ("&", "%", "{", "}", "<", ">", "\\", "_:", "\n", "\t", "|", "[", "]", "~", "$")


def read_jsonl(path: Path) -> list[Row]:
    """Read a JSONL file: the shared datasets are all one JSON object per line."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_jsonl(path: Path, rows: Iterable[Row]) -> int:
    """Write rows as UTF-8 JSONL (non-ASCII kept readable) and return the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_csv(path: Path, rows: Sequence[Row], columns: Sequence[str]) -> int:
    """Write rows as RFC-4180 CSV with a header, so CSV loaders can be tested."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: row[column] for column in columns})
    return len(rows)


def seeded_sample(rows: Sequence[Row], keep: Callable[[Row], bool], k: int, seed: int = 0) -> list[Row]:
    """Pick ``k`` rows passing ``keep`` with ``random.Random(seed)``, in source order.

    Sampling (rather than taking the first rows) avoids near-duplicates: the
    Debian file is sorted by package name, so its first rows are all "0 A.D.".
    Returning them in source order keeps diffs of the sample files readable.
    """
    eligible = [index for index, row in enumerate(rows) if keep(row)]
    if len(eligible) < k:
        raise ValueError(f"only {len(eligible)} eligible rows, need {k}")
    chosen = sorted(random.Random(seed).sample(eligible, k))
    return [rows[index] for index in chosen]


def project(rows: Iterable[Row], fields: Sequence[str]) -> list[Row]:
    """Keep only ``fields`` (in that order), dropping provenance columns."""
    return [{field: row[field] for field in fields} for row in rows]


def is_clean_sentence(text: str) -> bool:
    """True for a short plain sentence: no UI marks, starts upper-case, ends in . ! or ?."""
    text = text.strip()
    return (
        0 < len(text) < 120
        and text == text.strip()
        and not any(mark in text for mark in _UI_MARKS)
        and text[0].isupper()
        and text[-1] in ".!?"
        and len(text.split()) >= 3
    )


def make_test_samples(source: Path) -> dict[str, int]:
    """Write the tiny fixtures in ``tests/data`` used by fast unit/integration tests."""
    counts: dict[str, int] = {}
    debian = source / "summarization" / "debian-descriptions"

    train = read_jsonl(debian / "train.jsonl")
    summ = project(seeded_sample(train, lambda r: len(r["document"]) < 600, 40), ["document", "summary"])
    counts["tests/data/summarization.jsonl"] = write_jsonl(TEST_DATA / "summarization.jsonl", summ)
    counts["tests/data/summarization.csv"] = write_csv(TEST_DATA / "summarization.csv", summ[:20], ["document", "summary"])

    validation = read_jsonl(debian / "validation.jsonl")
    summ_val = project(seeded_sample(validation, lambda r: len(r["document"]) < 600, 12), ["document", "summary"])
    counts["tests/data/summarization-val.jsonl"] = write_jsonl(TEST_DATA / "summarization-val.jsonl", summ_val)

    en_fr = read_jsonl(source / "translation" / "en-fr" / "train.jsonl")
    trans = project(
        seeded_sample(en_fr, lambda r: is_clean_sentence(r["en"]) and is_clean_sentence(r["fr"]), 40),
        ["en", "fr"],
    )
    counts["tests/data/translation.jsonl"] = write_jsonl(TEST_DATA / "translation.jsonl", trans)
    nested = [{"translation": {"en": row["en"], "fr": row["fr"]}} for row in trans[:10]]
    counts["tests/data/translation-nested.jsonl"] = write_jsonl(TEST_DATA / "translation-nested.jsonl", nested)

    faq = read_jsonl(source / "question-generation" / "python-faq" / "all.jsonl")
    qg = project(seeded_sample(faq, lambda r: len(r["answer_context"]) <= 350, 30), ["question", "answer_context"])
    counts["tests/data/qg.jsonl"] = write_jsonl(TEST_DATA / "qg.jsonl", qg)

    squad = read_jsonl(source / "qa" / "squad-v1.1" / "dev-half.jsonl")
    qa = project(seeded_sample(squad, lambda r: len(r["context"]) <= 600, 30), ["id", "title", "context", "question", "answers"])
    counts["tests/data/squad.jsonl"] = write_jsonl(TEST_DATA / "squad.jsonl", qa)
    counts.update(make_ner_samples(source))
    counts.update(make_classification_samples(source))
    return counts


#: Four real Debian archive sections, so a tiny test model sees each class several times.
CLASSIFICATION_SECTIONS = ("games", "python", "science", "sound")


def make_classification_samples(source: Path) -> dict[str, int]:
    """Debian package descriptions with their section (single-label) and debtags (multi-label)."""
    debian = source / "classification" / "debian-packages"
    keep = lambda r: len(r["text"]) <= 500 and r["section"] in CLASSIFICATION_SECTIONS  # noqa: E731
    fields = ["package", "text", "section", "tags"]
    train = project(seeded_sample(read_jsonl(debian / "train.jsonl"), keep, 60), fields)
    counts = {"tests/data/classification.jsonl": write_jsonl(TEST_DATA / "classification.jsonl", train)}
    val = project(seeded_sample(read_jsonl(debian / "validation.jsonl"), keep, 20), fields)
    counts["tests/data/classification-val.jsonl"] = write_jsonl(TEST_DATA / "classification-val.jsonl", val)
    # The first 30 training rows as CSV, tags joined by "|" (how multi-label labels look in a CSV).
    flat = [{**row, "tags": "|".join(row["tags"])} for row in train[:30]]
    counts["tests/data/classification.csv"] = write_csv(TEST_DATA / "classification.csv", flat, fields)
    return counts


def make_ner_samples(source: Path) -> dict[str, int]:
    """CoNLL-2003 sentences with at least one entity, as JSONL and as a CoNLL column file."""
    conll = read_jsonl(source / "ner" / "conll2003" / "train.jsonl")
    keep = lambda r: 5 <= len(r["tokens"]) <= 25 and any(t != "O" for t in r["ner_tags"])  # noqa: E731
    ner = project(seeded_sample(conll, keep, 40), ["tokens", "pos_tags", "ner_tags"])
    counts = {"tests/data/ner.jsonl": write_jsonl(TEST_DATA / "ner.jsonl", ner)}
    # The first 20 rows in the shared task's own layout: "token POS tag" lines, blank line between sentences.
    blocks = ["-DOCSTART- -X- "
              "O\n"] + ["".join(f"{w} {p} {t}\n" for w, p, t in zip(r["tokens"], r["pos_tags"], r["ner_tags"])) for r in ner[:20]]
    (TEST_DATA / "ner.conll").write_text("\n".join(blocks), encoding="utf-8", newline="\n")
    counts["tests/data/ner.conll"] = 20
    return counts


def _demo_keep(row: Row) -> bool:
    """Demo rule: document 80-700 characters and summary 10-80 characters (inclusive)."""
    return 80 <= len(row["document"]) <= 700 and 10 <= len(row["summary"]) <= 80


def make_demo_data(source: Path) -> dict[str, int]:
    """Write the Debian demo set shipped inside the package (``texttune`` demo)."""
    counts: dict[str, int] = {}
    debian = source / "summarization" / "debian-descriptions"
    for split, size in (("train", 1000), ("validation", 200)):
        rows = project(seeded_sample(read_jsonl(debian / f"{split}.jsonl"), _demo_keep, size), ["document", "summary"])
        name = f"src/texttune/demo_data/debian/{split}.jsonl"
        counts[name] = write_jsonl(DEMO_DATA / "debian" / f"{split}.jsonl", rows)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints what was written so a rerun is auditable."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="root of the shared datasets")
    args = parser.parse_args(argv)
    source: Path = args.source.resolve()
    if not (source / "README.md").is_file():
        parser.error(f"{source} does not look like the shared datasets folder")
    counts = {**make_test_samples(source), **make_demo_data(source)}
    for name, count in counts.items():
        print(f"{count:5d}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
