"""Speed of the data checks' exact and near-duplicate passes (texttune/data/duplicates.py), single-threaded.

Rows: the ``text`` column (long package descriptions) of ../shared/datasets/classification/debian-packages/train.jsonl,
repeated up to ``--rows`` (every repeat gets one word changed, so repeats are near-duplicates, not exact ones). The
last ``--queries`` rows play the evaluation split, the others the training split. Timed passes:

- exact: normalise every row into its key, duplicates inside the split, leaks of the queries into the reference;
- near: word shingles, MinHash (128 permutations) of every row, LSH index of the reference, a query per evaluation
  row with each candidate confirmed by its exact Jaccard similarity.

Prints rows/s per pass and the seconds one million rows would take at that rate (the passes are linear in rows,
bar the candidates of very duplicated data). The target (issue 18): under 60 s per million rows per pass.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/data_checks.py --rows 100000
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core: numpy/scipy must not spread the MinHash arithmetic

from texttune.data.duplicates import (  # noqa: E402
    NUM_PERM,
    SEED,
    exact_duplicates,
    first_rows,
    leaks,
    near_duplicates,
    row_keys,
    shingles,
    signatures,
)

DATA = Path(__file__).resolve().parents[2] / "shared/datasets/classification/debian-packages/train.jsonl"


def texts(rows: int) -> list[str]:
    base = [json.loads(line)["text"] for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = list(base)
    copy = 1
    while len(out) < rows:
        out.extend(f"{t} repeat{copy}" for t in base[: rows - len(out)])
        copy += 1
    return out[:rows]


def minhash_against_datasketch(keys: list[str]) -> dict[str, float]:
    """The signature pass alone: texttune's blocks of sets against datasketch's ``MinHash.bulk`` (the same
    arithmetic, one set at a time), on the same shingle sets, in the same run; the values must agree."""
    import zlib

    import numpy as np
    from datasketch import MinHash

    sets = [shingles(k) for k in keys]
    started = time.perf_counter()
    ours = list(signatures(sets))
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    encoded = ([w.encode("utf-8") for w in x] for x in sets)
    theirs = MinHash.bulk(encoded, num_perm=NUM_PERM, seed=SEED, hashfunc=zlib.crc32, )
    theirs_s = time.perf_counter() - started
    if not all(np.array_equal(o, t.hashvalues) for o, t in zip(ours, theirs)):
        raise SystemExit("texttune's signatures differ from datasketch's")
    return {"texttune_s": round(ours_s, 2), "datasketch_bulk_s": round(theirs_s, 2),
            "speedup": round(theirs_s / ours_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=10_000, help="rows of the evaluation split (the last ones)")
    parser.add_argument("--out", type=Path, help="write the numbers here as JSON")
    args = parser.parse_args()
    rows = texts(args.rows)
    words = sum(len(t.split()) for t in rows) / len(rows)
    reference_rows, query_rows = rows[: -args.queries], rows[-args.queries:]

    started = time.perf_counter()
    reference, queries = row_keys([reference_rows]), row_keys([query_rows])
    duplicates = len(exact_duplicates(reference)) + len(exact_duplicates(queries))
    leaked = len(leaks(first_rows(reference), queries))
    exact_s = time.perf_counter() - started

    started = time.perf_counter()
    near = len(near_duplicates(reference, queries))
    near_s = time.perf_counter() - started

    result = {"rows": len(rows), "mean_words": round(words, 1), "queries": len(queries),
              "exact_s": round(exact_s, 2), "exact_rows_per_s": round(len(rows) / exact_s),
              "exact_s_per_million": round(exact_s * 1e6 / len(rows), 1),
              "near_s": round(near_s, 2), "near_rows_per_s": round(len(rows) / near_s),
              "near_s_per_million": round(near_s * 1e6 / len(rows), 1),
              "found": {"duplicates": duplicates, "leaks": leaked, "near_duplicates": near}}
    result["minhash"] = minhash_against_datasketch(reference + queries)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
