"""Text classification on the Debian archive sections: baselines vs fine-tuned transformers, same validation rows.

Sides, each in its own process (so peak memory and threads are its own), one after the other:

- ``baselines``: the majority class and TF-IDF + linear SVM (texttune's own baselines, fitted on all
  training rows), through a texttune run with ``--max-steps 0``-like cost: the task's ``baselines()``.
- ``minilm-default``: the offline MiniLM-L6 encoder with the generic defaults of texttune 0.1.0
  (AdamW 5e-5, no warmup), ``--budget-short`` steps of 32.
- ``minilm``: the same backbone with the task's defaults (learning rates and warmup from this benchmark),
  one run of ``--budget-long`` steps of 32, evaluated every ``--eval-every`` steps: the validation scores
  at each of those budgets come from one run (the learning rate decays over the whole run).
- ``smollm2-lora``: SmolLM2-135M with LoRA (rank 16), ``--budget-lora`` steps of 16.

Every side scores the same validation rows (``--val-rows``, the first ones of the validation split).
Prints a table (accuracy, macro-F1, wall time) and writes ``--out`` JSON.

    python benchmarks/text_classification.py                      # the published run (about an hour on 2 cores)
    python benchmarks/text_classification.py --quick              # a 3-minute check of the script
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "classification" / "debian-packages"
CACHE = ROOT / "benchmarks" / ".cache" / "text-classification"


def _slice(source: Path, target: Path, rows: int | None) -> Path:
    """The first ``rows`` lines of ``source`` (all when None) as ``target``."""
    if rows is None:
        return source
    with source.open(encoding="utf-8") as handle:
        target.write_text("".join(line for _, line in zip(range(rows), handle)), encoding="utf-8")
    return target


def side(name: str, args: argparse.Namespace, train: Path, val: Path) -> dict[str, Any]:
    """Run one side in this process; returns its scores."""
    import texttune

    run = CACHE / name
    import shutil

    shutil.rmtree(run, ignore_errors=True)
    common = {"label_column": "section", "progress_bar": False, "tensorboard": False, "samples_per_eval": 0,
              "max_length": args.max_length, "seed": 0}
    started = time.perf_counter()
    if name == "baselines":
        model = texttune.TextClassification(backbone="minilm", options=common)
        result = model.fit(train=str(train), validation=str(val), output_dir=run, max_steps=1, batch_size=2)
        out = {k: {m: v[m] for m in ("accuracy", "macro_f1") if m in v} | ({"fit_s": v["fit_s"]} if "fit_s" in v else {})
               for k, v in result.metrics["baselines"].items()}
        return {"baselines": out, "wall_s": round(time.perf_counter() - started, 1)}
    if name == "minilm-default":
        options = {**common, "learning_rate": 5e-5, "warmup_ratio": 0.0, "head_learning_rate": None, "baselines": False}
        steps, batch, backbone = args.budget_short, 32, "minilm"
    elif name == "minilm":
        options = {**common, "baselines": False, "eval_every_steps": args.eval_every}
        steps, batch, backbone = args.budget_long, 32, "minilm"
    else:
        options = {**common, "baselines": False, "peft": "lora", "lora_rank": 16, "learning_rate": 2e-4, "warmup_ratio": 0.1}
        steps, batch, backbone = args.budget_lora, 16, "smollm2-135m"
    model = texttune.TextClassification(backbone=backbone, options=options)
    result = model.fit(train=str(train), validation=str(val), output_dir=run, max_steps=steps, batch_size=batch)
    log = run / "evals.jsonl"  # evaluations inside fit; a run shorter than its evaluation period has none
    evals = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    if not evals or evals[-1]["step"] != result.metrics["steps"]:
        evals.append({"step": result.metrics["steps"], **result.metrics["fine_tuned"]})
    timing = result.metrics["timing"]
    return {
        "backbone": backbone, "steps": steps, "batch_size": batch, "config": {k: v for k, v in options.items() if k in (
            "learning_rate", "warmup_ratio", "peft", "lora_rank")},
        "learning_rate": model.config.train.learning_rate, "warmup_ratio": model.config.train.warmup_ratio,
        "head_learning_rate": model.config.train.head_learning_rate,
        "evals": [{"step": e["step"], "accuracy": e["accuracy"], "macro_f1": e["macro_f1"]} for e in evals],
        "final": {m: result.metrics["fine_tuned"][m] for m in ("accuracy", "macro_f1")},
        "train_s": timing["train_s"], "eval_s": timing["eval_s"], "wall_s": round(time.perf_counter() - started, 1),
    }


def table(results: dict[str, Any]) -> str:
    lines = ["| side | steps x batch | accuracy | macro-F1 | wall time |", "|---|---|---|---|---|"]
    for name, values in results.get("baselines", {}).get("baselines", {}).items():
        fit = f"{values['fit_s']:.0f} s (fit + predict)" if "fit_s" in values else "-"
        lines.append(f"| {name} | - | {values['accuracy']:.2f} | {values['macro_f1']:.2f} | {fit} |")
    for name in ("minilm-default", "minilm", "smollm2-lora"):
        r = results.get(name)
        if not r:
            continue
        per_step = r["train_s"] / r["steps"]
        for e in r["evals"]:
            head = f", head {r['head_learning_rate']:g}" if r.get("head_learning_rate") else ""
            label = f"{name} (lr {r['learning_rate']:g}{head}, warmup {r['warmup_ratio']:g})"
            lines.append(f"| {label} | {e['step']} x {r['batch_size']} | {e['accuracy']:.2f} | {e['macro_f1']:.2f} | "
                         f"{e['step'] * per_step / 60:.1f} min training |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", default="baselines,minilm-default,minilm,smollm2-lora")
    parser.add_argument("--train-rows", type=int, default=None, help="first N training rows (default: all 54,266)")
    parser.add_argument("--val-rows", type=int, default=1000)
    parser.add_argument("--budget-short", type=int, default=200)
    parser.add_argument("--budget-long", type=int, default=800)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--budget-lora", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="a few steps on a few rows: checks the script")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / f"text_classification-{time.strftime('%Y-%m-%d')}.json")
    parser.add_argument("--side", help=argparse.SUPPRESS)  # internal: run one side in this process
    args = parser.parse_args()
    if args.quick:
        args.train_rows, args.val_rows, args.budget_short, args.budget_long, args.eval_every, args.budget_lora = 2000, 100, 4, 8, 4, 2
        args.out = CACHE / "quick.json"
    CACHE.mkdir(parents=True, exist_ok=True)
    train = _slice(DATA / "train.jsonl", CACHE / "train.jsonl", args.train_rows)
    val = _slice(DATA / "validation.jsonl", CACHE / "validation.jsonl", args.val_rows)
    if args.side:
        print(json.dumps(side(args.side, args, train, val)))
        return 0
    results: dict[str, Any] = {"train_rows": args.train_rows or 54266, "val_rows": args.val_rows, "cores": os.cpu_count()}
    for name in args.sides.split(","):
        cmd = [sys.executable, __file__, "--side", name, *sys.argv[1:]]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if done.returncode != 0:
            print(f"{name} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            return 1
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name}: done in {results[name]['wall_s']} s", file=sys.stderr)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")  # what is done so far survives a later failure
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
