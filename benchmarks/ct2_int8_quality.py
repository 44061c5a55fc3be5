#!/usr/bin/env python3
"""What int8 costs: a fine-tuned model's predictions on CTranslate2 int8 against float32, on the same rows.

Both conversions are texttune's own (``texttune.load(..., backend="ctranslate2", compute_type=...)``: int8 with
SmoothQuant for Llama-style models, inference/ct2_smooth.py). Each system predicts every row; the report gives each
metric, the paired difference int8 - float32 with its 95% percentile-bootstrap interval over rows (the same paired
test ``metrics.json`` "paired" uses, metrics/bootstrap.py), the rows whose outputs are identical, and each side's
seconds. Enough rows (``--rows``, at least 200) that the interval says whether the difference is noise.

Usage (from the repository root; MODEL is a texttune model directory, e.g. the fine-tuned model
benchmarks/vs_hf_trainer.py leaves in benchmarks/.cache/vs_hf_trainer/smollm2-debian/texttune-run/model)::

    OMP_NUM_THREADS=1 python benchmarks/ct2_int8_quality.py --model MODEL \\
        --data ../shared/datasets/summarization/debian-descriptions/validation.jsonl --input-column document \\
        --target-column summary --rows 512 --max-input-chars 1200
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="JSONL rows; the last --rows are used")
    parser.add_argument("--input-column", default="input")
    parser.add_argument("--target-column", default="target")
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--max-input-chars", type=int, default=None, help="cut inputs as the training data was")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                        f"ct2-int8-quality-{datetime.date.today()}.json")
    args = parser.parse_args()
    import texttune
    from texttune.metrics.bootstrap import paired, resample
    from texttune.metrics.registry import higher_is_better

    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()][-args.rows:]
    inputs = [str(r[args.input_column])[: args.max_input_chars] for r in rows]
    references = [str(r[args.target_column]) for r in rows]
    systems: dict[str, Any] = {}
    for compute_type in ("float32", "int8"):
        model = texttune.load(args.model, backend="ctranslate2", compute_type=compute_type)
        model.predict([inputs[0]])  # converts (once, cached) and loads: not timed
        started = time.perf_counter()
        predictions = [p["prediction"] if isinstance(p, dict) else p for p in model.predict(inputs)]
        seconds = time.perf_counter() - started
        records = [{"input": i, "reference": r, "prediction": p} for i, r, p in zip(inputs, references, predictions)]
        task = model._task  # the loaded model's task scores its own records (and their per-row statistics)
        found = resample(records, score=task.score_records, row_stats=getattr(task, "row_statistics", None),
                         resamples=args.resamples, seed=0)
        systems[compute_type] = {"records": records, "resampled": found, "seconds": round(seconds, 1)}
        print(f"{compute_type}: {seconds:.1f} s, " + ", ".join(f"{k} {v:.2f}" for k, v in found.point.items()), flush=True)
    difference = paired(systems["int8"]["resampled"], systems["float32"]["resampled"], direction=higher_is_better)
    same = sum(a["prediction"] == b["prediction"] for a, b in zip(systems["int8"]["records"], systems["float32"]["records"]))
    result = {"model": str(args.model), "data": str(args.data), "rows": len(rows), "resamples": args.resamples,
              "metrics": {k: v["resampled"].point for k, v in systems.items()},
              "seconds": {k: v["seconds"] for k, v in systems.items()},
              "int8_minus_float32": difference, "identical_outputs": same}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for name, entry in difference.items():
        print(f"int8 - float32 {name}: {entry['difference']:+.2f} (95% interval {entry['low']:+.2f} to {entry['high']:+.2f})")
    print(f"identical outputs: {same} of {len(rows)}; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
