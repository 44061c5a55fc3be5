#!/usr/bin/env python3
"""Training-recipe sweeps: which learning rate, warmup and head rate win for a task, backbone and budget.

Each case is a task on real data from ``../shared/datasets`` with an offline backbone at a fixed budget
(steps x batch); each variant is a set of training options; each (variant, seed) is one run, in its own
process (one at a time, so runs do not share the cores), scored on the validation rows with the task's
main metric. Results go to ``benchmarks/results/recipes-<case>-<date>.json`` and a Markdown table
(mean and spread over seeds) to stdout; docs/recipes.md keeps the tables that set the defaults.

Usage (from the repository root)::

    python benchmarks/recipes.py --case conll-minilm                      # every variant, seed 0
    python benchmarks/recipes.py --case conll-minilm --variants old,task --seeds 0,1,2
    python benchmarks/recipes.py --list                                   # cases and their variants

``old`` is always the generic defaults before issue 17 (AdamW 5e-5, no warmup); ``task`` is what the task
defaults to now (no option given), so the table shows what a user gets from the defaults.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
WORK = ROOT / "benchmarks" / ".cache" / "recipes"
OLD = {"learning_rate": 5e-5, "warmup_ratio": 0.0}


@dataclass(frozen=True)
class Case:
    """One task on one data set with one backbone at one budget."""

    task: str  # registry name
    backbone: str
    steps: int
    batch_size: int
    metric: str  # the validation metric the table reports (the task's main one)
    options: dict[str, Any] = field(default_factory=dict)  # fixed for every variant (lengths, columns...)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)


def _lr_grid(rates: tuple[float, ...], warmup: float = 0.1, **extra: Any) -> dict[str, dict[str, Any]]:
    return {f"lr{rate:g}-w{warmup:g}": {"learning_rate": rate, "warmup_ratio": warmup, **extra} for rate in rates}


BROWN_VARIANTS = {"old": OLD, "task": {}, **_lr_grid((1e-4, 3e-4, 1e-3)),
                  # LoRA (rank 8, alpha 16), as debian-smollm2: 3e-4 is what the full fine-tune's default gives a
                  # LoRA run when the task has no LoRA default of its own
                  "lora-old": {**OLD, "peft": "lora"},
                  **{f"lora-{k}": {**v, "peft": "lora"} for k, v in _lr_grid((3e-4, 1e-3, 2e-3, 5e-3, 1e-2)).items()}}
CASES = {
    # CoNLL-2003 NER: 14k training sentences, the first 1,000 validation sentences.
    "conll-minilm": Case("token-classification", "minilm", 300, 32, "f1",
                         variants={"old": OLD, "task": {}, **_lr_grid((1e-4, 2e-4, 3e-4, 5e-4, 8e-4)),
                                   "lr0.0003-w0.1-h0.003": {"learning_rate": 3e-4, "warmup_ratio": 0.1,
                                                            "head_learning_rate": 3e-3}}),
    # SQuAD v1.1 (the shared half), split by article as tests/slow/test_question_answering_real.py does.
    "squad-minilm": Case("question-answering", "minilm", 240, 8, "f1",
                         variants={"old": OLD, "task": {}, **_lr_grid((1e-4, 2e-4, 3e-4, 5e-4)),
                                   "lr0.0003-w0.1-h0.003": {"learning_rate": 3e-4, "warmup_ratio": 0.1,
                                                            "head_learning_rate": 3e-3}}),
    # The same 100 validation questions, trained on every short-paragraph question of the other 23 articles
    # (1,685, so 240 x 8 sees each about once) instead of the slow test's first 36 per article (773).
    "squad-minilm-all": Case("question-answering", "minilm", 240, 8, "f1",
                             variants={"old": OLD, "task": {}, **_lr_grid((1e-4, 2e-4, 3e-4))}),
    # Debian package descriptions -> summaries, the demo's budget.
    "debian-smollm2": Case("summarization", "smollm2-135m", 24, 8, "rougeL",
                           options={"max_source_length": 192, "max_target_length": 40, "generation_batch_size": 20},
                           variants={"old": OLD, "task": {}, **_lr_grid((1e-4, 2e-4, 5e-4)),
                                     # LoRA (rank 8, alpha 16): adapters start at zero and want larger rates
                                     "lora-old": {**OLD, "peft": "lora"},
                                     **{f"lora-{k}": {**v, "peft": "lora"} for k, v in _lr_grid((5e-4, 1e-3, 2e-3)).items()}}),
    # Masked-LM adaptation of minilm on IMDb reviews (its MLM head starts random): the slow test's budget.
    "imdb-minilm": Case("masked-lm", "minilm", 30, 8, "perplexity", options={"max_length": 64},
                        variants={"old": OLD, "task": {}, **_lr_grid((1e-4, 3e-4, 1e-3))}),
    # Causal-LM fine-tuning of SmolLM2 on the Brown corpus: the slow test's budget, and four times its steps.
    "brown-smollm2": Case("causal-lm", "smollm2-135m", 12, 4, "perplexity", options={"max_length": 64},
                          variants=BROWN_VARIANTS),
    "brown-smollm2-48": Case("causal-lm", "smollm2-135m", 48, 4, "perplexity", options={"max_length": 64},
                             variants=BROWN_VARIANTS),
    # Chat fine-tuning of SmolLM2-Instruct on the conversations of tests/slow/test_chat_real.py (Debian two-turn
    # exchanges and Python FAQ answers), the slow test's budget; scored on the last reply of 48 held-out ones.
    "chat-smollm2": Case("chat", "smollm2-135m", 40, 8, "rougeL", options={"max_length": 320, "max_new_tokens": 32},
                         variants={"old": OLD, "task": {}, **_lr_grid((1e-4, 2e-4, 3e-4)),
                                   "lora-old": {**OLD, "peft": "lora"},
                                   **{f"lora-{k}": {**v, "peft": "lora"} for k, v in _lr_grid((2e-3, 5e-3)).items()}}),
    # Debian package sections (58 classes), 8,000 random training rows and 500 random validation rows.
    "sections-minilm": Case("text-classification", "minilm", 150, 32, "accuracy",
                            options={"label_column": "section", "max_length": 128},
                            # the old generic defaults trained the new classifier at the backbone's rate too (None would
                            # mean the task's default head rate today, so the rate is given)
                            variants={"old": {**OLD, "head_learning_rate": OLD["learning_rate"]}, "task": {},
                                      **_lr_grid((1e-4, 3e-4)),
                                      "lr0.0003-w0.1-h0.003": {"learning_rate": 3e-4, "warmup_ratio": 0.1,
                                                               "head_learning_rate": 3e-3},
                                      "lr5e-05-h0.003": {**OLD, "head_learning_rate": 3e-3}}),
}
#: Single-file data sets (masked-LM, causal-LM cases): the file, and how many lines at its end validate.
SINGLE_FILE = {"imdb-minilm": (SHARED / "language-modeling" / "imdb-sample" / "sample.jsonl", 40),
               "brown-smollm2": (SHARED / "language-modeling" / "brown" / "train.jsonl", 200),
               "brown-smollm2-48": (SHARED / "language-modeling" / "brown" / "train.jsonl", 200)}


def data_files(name: str) -> tuple[Path, Path]:
    """(train, validation) files of a case, written once under benchmarks/.cache/recipes/."""
    out = WORK / name
    out.mkdir(parents=True, exist_ok=True)
    train, val = out / "train.jsonl", out / "validation.jsonl"
    if train.is_file() and val.is_file():
        return train, val
    if name == "conll-minilm":
        shutil.copy(SHARED / "ner" / "conll2003" / "train.jsonl", train)
        lines = (SHARED / "ner" / "conll2003" / "validation.jsonl").read_text(encoding="utf-8").splitlines()[:1000]
        val.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif name in SINGLE_FILE:  # the last lines validate, the rest (up to 2,000 lines) trains
        path, held_out = SINGLE_FILE[name]
        lines = path.read_text(encoding="utf-8").rstrip("\n").split("\n")  # not splitlines(): reviews hold U+2028
        train.write_text("\n".join(lines[:-held_out][:2000]) + "\n", encoding="utf-8")
        val.write_text("\n".join(lines[-held_out:]) + "\n", encoding="utf-8")
    elif name == "chat-smollm2":
        sys.path.insert(0, str(ROOT / "tests" / "slow"))
        from test_chat_real import DEBIAN, FAQ, debian_conversations, faq_conversations

        rows = debian_conversations(DEBIAN / "train.jsonl", 240) + faq_conversations(FAQ, 80)
        random.Random(1).shuffle(rows)
        _write_jsonl(train, rows)
        _write_jsonl(val, debian_conversations(DEBIAN / "validation.jsonl", 48))
    elif name == "sections-minilm":
        source = SHARED / "classification" / "debian-packages"
        for path, rows in ((train, 8000), (val, 500)):
            lines = (source / path.name).read_text(encoding="utf-8").splitlines()
            path.write_text("\n".join(random.Random(0).sample(lines, rows)) + "\n", encoding="utf-8")
    elif name == "squad-minilm":
        sys.path.insert(0, str(ROOT / "tests" / "slow"))
        from test_question_answering_real import SQUAD, split_by_article

        split_by_article(SQUAD, train, val)
    elif name == "squad-minilm-all":
        sys.path.insert(0, str(ROOT / "tests" / "slow"))
        from test_question_answering_real import SQUAD, split_by_article

        split_by_article(SQUAD, train, val, per_article=10**6)
    else:
        source = SHARED / "summarization" / "debian-descriptions"
        shutil.copy(source / "train.jsonl", train)
        lines = (source / "validation.jsonl").read_text(encoding="utf-8").splitlines()[:200]
        val.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return train, val


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def run_one(name: str, variant: str, seed: int) -> dict[str, Any]:
    """One training run, in this process; the validation metric of the final weights."""
    from texttune.api import api_class

    case = CASES[name]
    train, val = data_files(name)
    out = WORK / name / f"run-{variant}-{seed}"
    shutil.rmtree(out, ignore_errors=True)
    options = {**case.options, **case.variants[variant], "seed": seed, "progress_bar": False, "tensorboard": False,
               "baselines": False, "samples_per_eval": 0}
    model = api_class(case.task)(backbone=case.backbone, options=options)
    started = time.perf_counter()
    result = model.fit(train=str(train), validation=str(val), max_steps=case.steps, batch_size=case.batch_size, output_dir=out)
    config = model.config.train
    return {"variant": variant, "seed": seed, "value": result.metrics["fine_tuned"][case.metric],
            "learning_rate": config.learning_rate, "head_learning_rate": config.head_learning_rate,
            "warmup_ratio": config.warmup_ratio, "peft": model.config.peft.peft,
            "wall_s": round(time.perf_counter() - started, 1)}


def table(name: str, results: list[dict[str, Any]]) -> str:
    case = CASES[name]
    by_variant: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        by_variant[r["variant"]].append(r)
    lines = [f"{case.task}, {case.backbone}, {case.steps} x {case.batch_size}: validation {case.metric}",
             "", "| variant | learning rate (head) | warmup | seeds | mean | spread (min-max) |", "|---|---|---|---|---|---|"]
    for variant, runs in by_variant.items():
        values = [r["value"] for r in runs]
        head = f" ({runs[0]['head_learning_rate']:g})" if runs[0].get("head_learning_rate") else ""
        head += " LoRA" if runs[0].get("peft") else ""
        lines.append(f"| {variant} | {runs[0]['learning_rate']:g}{head} | {runs[0]['warmup_ratio']:g} | {len(runs)} | "
                     f"{statistics.fmean(values):.2f} | {min(values):.2f}-{max(values):.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=sorted(CASES))
    parser.add_argument("--variants", help="comma-separated variant names (default: all of the case)")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child: "variant|seed"
    args = parser.parse_args()
    if args.list:
        for name, case in CASES.items():
            print(f"{name}: {case.task}, {case.backbone}, {case.steps} x {case.batch_size}; variants: {', '.join(case.variants)}")
        return 0
    if args.case is None:
        parser.error("--case is required")
    if args.one:
        variant, seed = args.one.rsplit("|", 1)
        print("RECIPE " + json.dumps(run_one(args.case, variant, int(seed))), flush=True)
        return 0
    variants = args.variants.split(",") if args.variants else list(CASES[args.case].variants)
    unknown = [v for v in variants if v not in CASES[args.case].variants]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; valid: {', '.join(CASES[args.case].variants)}")
    data_files(args.case)
    results, out = [], ROOT / "benchmarks" / "results" / f"recipes-{args.case}-{datetime.date.today()}.json"
    for seed in (int(s) for s in args.seeds.split(",")):
        for variant in variants:
            done = subprocess.run([sys.executable, __file__, "--case", args.case, "--one", f"{variant}|{seed}"],
                                  capture_output=True, text=True, check=False)
            marked = [line for line in done.stdout.splitlines() if line.startswith("RECIPE ")]
            if not marked:
                print(f"{variant} seed {seed}: FAILED\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            results.append(json.loads(marked[-1].removeprefix("RECIPE ")))
            print(json.dumps(results[-1]), flush=True)
            previous = json.loads(out.read_text()) if out.is_file() else {"case": args.case, "runs": []}
            previous["runs"] = [r for r in previous["runs"] if (r["variant"], r["seed"]) != (variant, seed)] + [results[-1]]
            out.write_text(json.dumps(previous, indent=1) + "\n", encoding="utf-8")
    print(table(args.case, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
