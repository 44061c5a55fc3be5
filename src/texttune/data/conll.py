"""CoNLL-style column files: one token per line, sentences separated by blank lines.

The layout of the CoNLL-2000/2002/2003 shared tasks and of most NER corpora
(``.conll``, ``.iob``, ``.iob2``, ``.bio``)::

    -DOCSTART- -X- -X- O

    EU NNP B-NP B-ORG
    rejects VBZ B-VP O

Columns are separated by whitespace; the first is the token and the last the
tag. Columns in between (CoNLL-2003's POS and chunk tags) become ``col2``,
``col3``... so ``--tags-column col2`` trains a POS tagger on the same file.
``-DOCSTART-`` lines are document separators, not sentences, and are skipped.
This module only parses text; :mod:`texttune.data.sources` turns the result
into a table.
"""

from __future__ import annotations

from texttune.errors import DataError

DOCSTART = "-DOCSTART-"


def parse_conll(text: str, name: str) -> tuple[dict[str, list[list[str]]], list[int]]:
    """Columns ``tokens``, ``tags`` (and ``col2``... for middle columns), one row per sentence.

    Returns the columns and, for each sentence, the line number it starts on
    (so errors can point at the file). Every line of the file must have the same
    number of columns (at least two); a line that does not is reported with its
    number, because a token containing a space or a missing tag silently shifts
    every later tag otherwise.
    """
    sentences: list[list[list[str]]] = []  # sentence -> line -> fields
    starts: list[int] = []
    width: tuple[int, int] | None = None  # (number of columns, line that set it)
    current: list[list[str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] == DOCSTART:
            if current:
                sentences.append(current)
                current = []
            continue
        if len(fields) < 2:
            raise DataError(
                f"{name} line {number}: expected a token and a tag separated by whitespace, got {line.strip()!r}"
            )
        if width is None:
            width = (len(fields), number)
        elif len(fields) != width[0]:
            raise DataError(
                f"{name} line {number}: {len(fields)} columns ({line.strip()!r}) but line {width[1]} has {width[0]}; "
                "every token line needs the same columns (a token with a space in it, or a missing tag?)"
            )
        if not current:
            starts.append(number)
        current.append(fields)
    if current:
        sentences.append(current)
    if not sentences or width is None:
        raise DataError(f"{name}: no sentences (expected 'token ... tag' lines with blank lines between sentences)")
    columns: dict[str, list[list[str]]] = {
        "tokens": [[f[0] for f in s] for s in sentences],
        "tags": [[f[-1] for f in s] for s in sentences],
    }
    for index in range(1, width[0] - 1):
        columns[f"col{index + 1}"] = [[f[index] for f in s] for s in sentences]
    return columns, starts
