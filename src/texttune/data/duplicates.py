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
from collections.abc import Iterator, Sequence
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
    if words == 1:
        return set(tokens)
    if len(tokens) <= words:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i:i + words]) for i in range(len(tokens) - words + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _fmix32(values: Any) -> Any:
    """MurmurHash3's 32-bit finaliser (uint32 arrays; products wrap): spreads CRC-32's structure over all bits."""
    import numpy as np

    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


def signatures(sets: Sequence[set[str]], *, num_perm: int = NUM_PERM, seed: int = SEED,
               block: int = 1024) -> Iterator[Any]:
    """One MinHash signature ((num_perm,) uint32) per shingle set, in order: the values of datasketch's
    ``MinHash.bulk(..., hashfunc=zlib.crc32)`` (its "affine32" scheme and seeded permutations; a unit test
    compares them), computed for many sets at once.

    Each shingle's CRC-32 is mixed (fmix32) and mapped through ``num_perm`` affine functions a*h + b mod 2^32;
    a set's signature is the minimum over its shingles. ``block`` shingles make one (shingles, num_perm) array,
    small enough to stay in cache (1024 measured fastest), and ``np.minimum.reduceat`` takes every set's minimum:
    datasketch makes several numpy calls per set. An empty set gets the all-maximum signature, as in datasketch.
    """
    import numpy as np
    from datasketch import MinHash

    a, b = (np.asarray(p, dtype=np.uint32) for p in MinHash(num_perm=num_perm, seed=seed).permutations)
    empty = np.full(num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
    start = 0
    while start < len(sets):
        end, size = start, 0
        while end < len(sets) and (size == 0 or size + len(sets[end]) <= block):
            size += len(sets[end])
            end += 1
        part = sets[start:end]
        lengths = np.fromiter((len(x) for x in part), dtype=np.int64, count=len(part))
        hashes = np.fromiter((zlib.crc32(w.encode("utf-8")) for x in part for w in x), dtype=np.uint32, count=size)
        out = np.tile(empty, (len(part), 1))  # (sets, num_perm)
        if size:
            permuted = _fmix32(hashes)[:, None] * a + b  # (shingles, num_perm), mod 2^32 by wrapping
            filled = lengths > 0
            offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))[filled]
            out[filled] = np.minimum.reduceat(permuted, offsets, axis=0)
        yield from out
        start = end


def near_duplicates(reference: Sequence[str], keys: Sequence[str], *, threshold: float = 0.9, words: int = 1,
                    num_perm: int = NUM_PERM, seed: int = SEED) -> list[tuple[int, int, float]]:
    """Rows of ``keys`` with a near-duplicate in ``reference`` (Jaccard of word shingles >= ``threshold``, the two
    keys not identical: exact matches are counted as leaks): (row, reference row, similarity), one per row, the
    most similar (then the first) reference row."""
    ref_sets = [shingles(k, words=words) for k in reference]
    query_sets = [shingles(k, words=words) for k in keys]
    # LSH candidates are symmetric (a band in common), so the smaller side is indexed and the larger queries it:
    # an insertion costs more than a query.
    small_is_query = len(query_sets) <= len(ref_sets)
    pairs = _candidates(query_sets if small_is_query else ref_sets, ref_sets if small_is_query else query_sets,
                        threshold=threshold, num_perm=num_perm, seed=seed)
    best: dict[int, tuple[float, int]] = {}
    for indexed, queried in pairs:
        i, j = (indexed, queried) if small_is_query else (queried, indexed)
        if reference[j] == keys[i]:
            continue
        similarity = jaccard(query_sets[i], ref_sets[j])
        if similarity >= threshold and (i not in best or (similarity, -j) > (best[i][0], -best[i][1])):
            best[i] = (similarity, j)
    return [(i, j, round(similarity, 4)) for i, (similarity, j) in sorted(best.items())]


def _candidates(indexed: Sequence[set[str]], queried: Sequence[set[str]], *, threshold: float, num_perm: int,
                seed: int) -> list[tuple[int, int]]:
    """(indexed row, queried row) pairs sharing an LSH band (datasketch MinHashLSH)."""
    from datasketch import LeanMinHash, MinHashLSH

    # The band threshold sits a little below the asked one (recall: every candidate is confirmed exactly by the
    # caller); datasketch cannot band above about 0.95 with 128 permutations.
    lsh = MinHashLSH(threshold=min(max(threshold - LSH_MARGIN, 0.05), 0.9), num_perm=num_perm)
    with lsh.insertion_session() as session:
        for j, values in enumerate(signatures(indexed, num_perm=num_perm, seed=seed)):
            session.insert(j, LeanMinHash(seed=seed, hashvalues=values, scheme="affine32"), check_duplication=False)
    return [(j, i) for i, values in enumerate(signatures(queried, num_perm=num_perm, seed=seed))
            for j in lsh.query(LeanMinHash(seed=seed, hashvalues=values, scheme="affine32"))]


def leaked_reference_rows(reference: Sequence[str], others: Sequence[Sequence[str]]) -> set[int]:
    """Rows of the reference (train) split whose key occurs in any of the other (evaluation) splits: what
    ``--dedupe`` removes (every such train row, repeats included)."""
    seen = {key for keys in others for key in keys}
    return {i for i, key in enumerate(reference) if key in seen}
