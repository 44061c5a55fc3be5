"""Duplicate rows: exact ones (inside a split, and evaluation rows whose input occurs in train) and near ones.

Pure functions over lists of *keys*: a row's role values normalised by :func:`normalise`
(Unicode NFKC, casefold, runs of whitespace collapsed to one space, ends stripped) and
joined, so "Hello  World" and "hello world" are one input. Near-duplicates are found with
MinHash over word shingles and MinHash LSH (``datasketch``), then confirmed with the exact
Jaccard similarity of the two shingle sets, so a reported pair really is at or above the
threshold and the counts do not depend on the hash seed.

Shingles are single words by default: one changed word in a 30-word text keeps a Jaccard
similarity of 29/31 = 0.94 over word sets, but only 27/31 = 0.87 over word pairs, which the
default threshold of 0.9 would miss.
"""

from __future__ import annotations

import json
import unicodedata
import zlib
from collections.abc import Sequence
from typing import Any

#: Separates the role values of one row inside its key (a control character no normalised text keeps).
KEY_SEPARATOR = "\x1f"
NUM_PERM = 128
SEED = 1
LSH_MARGIN = 0.05


def normalise(value: Any) -> str:
    """A cell as comparable text: NFKC, casefolded, whitespace collapsed. Lists (tokens) are joined by spaces,
    other structured cells (QA answers) written as sorted JSON; a missing cell is the empty string."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        text = " ".join(str(v) for v in value)
    elif isinstance(value, dict):
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    else:
        text = str(value)
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def row_keys(columns: Sequence[Sequence[Any]]) -> list[str]:
    """One key per row from the role columns given (each a list of cells, all of one length)."""
    if not columns:
        return []
    return [KEY_SEPARATOR.join(normalise(v) for v in values) for values in zip(*columns)]


def first_rows(keys: Sequence[str]) -> dict[str, int]:
    """Each distinct key's first row index."""
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    return first


def exact_duplicates(keys: Sequence[str]) -> list[tuple[int, int]]:
    """Rows that repeat an earlier row of the same split: (row, the first row with its key)."""
    first: dict[str, int] = {}
    repeats = []
    for i, key in enumerate(keys):
        earlier = first.setdefault(key, i)
        if earlier != i:
            repeats.append((i, earlier))
    return repeats


def leaks(reference: dict[str, int], keys: Sequence[str]) -> list[tuple[int, int]]:
    """Rows of an evaluation split whose key occurs in the reference (train) split: (row, the train row)."""
    return [(i, reference[key]) for i, key in enumerate(keys) if key in reference]


def shingles(key: str, *, words: int = 1) -> set[str]:
    """The set of ``words``-word shingles of a key (its role values' words together)."""
    tokens = key.replace(KEY_SEPARATOR, " ").split()
    if len(tokens) <= words:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i:i + words]) for i in range(len(tokens) - words + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _hash(shingle: bytes) -> int:
    return zlib.crc32(shingle)  # 32 bits, deterministic and in C: the hash function datasketch expects


def minhashes(sets: Sequence[set[str]], *, num_perm: int = NUM_PERM, seed: int = SEED) -> list[Any]:
    """One MinHash per shingle set (datasketch), seeded so reruns agree."""
    from datasketch import MinHash

    encoded = ([s.encode("utf-8") for s in shingle_set] for shingle_set in sets)
    return MinHash.bulk(encoded, num_perm=num_perm, seed=seed, hashfunc=_hash)


def near_duplicates(reference: Sequence[str], keys: Sequence[str], *, threshold: float = 0.9, words: int = 1,
                    num_perm: int = NUM_PERM, seed: int = SEED) -> list[tuple[int, int, float]]:
    """Rows of ``keys`` with a near-duplicate in ``reference`` (Jaccard of word shingles >= ``threshold``, the two
    keys not identical: exact matches are counted as leaks): (row, reference row, similarity), one per row."""
    from datasketch import MinHashLSH

    ref_sets = [shingles(k, words=words) for k in reference]
    # The LSH band threshold sits a little below the asked one (recall: every candidate is confirmed exactly
    # below); datasketch cannot band above about 0.95 with 128 permutations.
    lsh = MinHashLSH(threshold=min(max(threshold - LSH_MARGIN, 0.05), 0.9), num_perm=num_perm)
    with lsh.insertion_session() as session:
        for j, m in enumerate(minhashes(ref_sets, num_perm=num_perm, seed=seed)):
            session.insert(j, m, check_duplication=False)
    found = []
    query_sets = [shingles(k, words=words) for k in keys]
    for i, m in enumerate(minhashes(query_sets, num_perm=num_perm, seed=seed)):
        best: tuple[float, int] | None = None
        for j in lsh.query(m):
            if reference[j] == keys[i]:
                continue
            similarity = jaccard(query_sets[i], ref_sets[j])
            if similarity >= threshold and (best is None or (similarity, -j) > (best[0], -best[1])):
                best = (similarity, j)
        if best is not None:
            found.append((i, best[1], round(best[0], 4)))
    return found


def leaked_reference_rows(reference: Sequence[str], others: Sequence[Sequence[str]]) -> set[int]:
    """Rows of the reference (train) split whose key occurs in any of the other (evaluation) splits: what
    ``--dedupe`` removes (every such train row, repeats included)."""
    seen = {key for keys in others for key in keys}
    return {i for i, key in enumerate(reference) if key in seen}
