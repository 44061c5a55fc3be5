#!/usr/bin/env python3
"""Time texttune's transformers backend against CTranslate2 on zero-shot SmolLM2 summarization.

What it measures: ``TaskModel.evaluate`` (generation + ROUGE) of the untrained
``smollm2-135m`` summarizer (or ``--model DIR``, e.g. ``runs/demo``) on the first
``--rows`` Debian package descriptions of
the shared validation split, once per side, each side in its own process (so
thread pools do not share the cores), after a 2-row warm-up. Loading and the
one-off conversion are reported separately and not counted in examples/s.

Usage (from the repository root, machine otherwise idle)::

    .venv/bin/python benchmarks/ctranslate2_speed.py                        # transformers, ct2-int8, ct2-float32
    .venv/bin/python benchmarks/ctranslate2_speed.py --sides ct2-int8 --threads 2 --batch-size 32

Prints one JSON line per side and a Markdown table; ``--out FILE`` also writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "summarization" / "debian-descriptions" / "validation.jsonl"
SIDES = {"transformers": (None, None), "ct2-int8": ("ctranslate2", "int8"), "ct2-float32": ("ctranslate2", "float32"),
         "ct2-int8_float32": ("ctranslate2", "int8_float32")}


def prepare(work: Path, rows: int, model: str | None) -> tuple[Path, Path]:
    """The model directory (the zero-shot one is built once under ``work``) and the data file."""
    from texttune import Summarization

    model_dir, data = Path(model or work / "smollm2-zero-shot"), work / f"debian-{rows}.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    if model is None and not (model_dir / "texttune.json").is_file():
        Summarization(backbone="smollm2-135m").save(model_dir)
    lines = DATA.read_text(encoding="utf-8").split("\n")[:rows]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return model_dir, data


def run_side(args: argparse.Namespace) -> dict[str, object]:
    """One side, in this process."""
    import texttune

    backend, compute_type = SIDES[args.side]
    model_dir, data = Path(args.model_dir), Path(args.data)
    t0 = time.perf_counter()
    model = texttune.load(model_dir, backend=backend, compute_type=compute_type, threads=args.threads)
    load_s = time.perf_counter() - t0
    generation = {"max_new_tokens": args.max_new_tokens, "generation_batch_size": args.batch_size}
    generation = {k: v for k, v in generation.items() if v is not None}  # None: the model's own max_new_tokens
    model.evaluate(str(data), max_samples=2, generation=generation)  # warm-up
    t0 = time.perf_counter()
    metrics = model.evaluate(str(data), generation=generation)
    seconds = time.perf_counter() - t0
    return {"side": args.side, "rows": args.rows, "seconds": round(seconds, 2), "examples_per_s": round(args.rows / seconds, 3),
            "rougeL": round(metrics["rougeL"], 2), "rouge1": round(metrics["rouge1"], 2), "gen_len": metrics["gen_len"],
            "load_s": round(load_s, 2), "threads": args.threads, "batch_size": args.batch_size,
            "max_new_tokens": args.max_new_tokens}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sides", default="transformers,ct2-int8,ct2-float32")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--model", default=None, help="a saved texttune model (default: zero-shot smollm2-135m)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: 64 for the zero-shot model, else the model's own")
    parser.add_argument("--batch-size", type=int, default=16, help="--generation-batch-size for every side")
    parser.add_argument("--threads", type=int, default=None, help="threads for the CTranslate2 sides (default: texttune's)")
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench-ctranslate2"))
    parser.add_argument("--out", default=None)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(run_side(args)), flush=True)
        return 0
    model_dir, data = prepare(Path(args.work), args.rows, args.model)
    if args.max_new_tokens is None and args.model is None:
        args.max_new_tokens = 64
    results = []
    for side in args.sides.split(","):
        command = [sys.executable, __file__, "--side", side, "--model-dir", str(model_dir), "--data", str(data),
                   "--rows", str(args.rows), "--batch-size", str(args.batch_size)]
        if args.max_new_tokens is not None:
            command += ["--max-new-tokens", str(args.max_new_tokens)]
        if args.threads is not None and side != "transformers":
            command += ["--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    base = next((r for r in results if r["side"] == "transformers"), None)
    print("\n| side | examples/s | speed-up | ROUGE-L | ROUGE-1 | gen_len | seconds |\n|---|---|---|---|---|---|---|")
    for r in results:
        speedup = f"{r['examples_per_s'] / base['examples_per_s']:.2f}x" if base else "-"
        print(f"| {r['side']} | {r['examples_per_s']:.2f} | {speedup} | {r['rougeL']:.2f} | {r['rouge1']:.2f} | {r['gen_len']:.1f} | "
              f"{r['seconds']:.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
