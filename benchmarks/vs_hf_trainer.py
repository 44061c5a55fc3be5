"""texttune vs. a plain Hugging Face Trainer on the same work: training, evaluation with generation, prediction.

Why: texttune claims to be faster than what users run today with the same quality.
This script measures it in one session on one machine: for each case (a backbone
on a dataset) it runs, each in its own fresh process, one after the other:

* ``texttune``: ``texttune.<Task>(backbone=...).fit(...)`` with its defaults
  (length-grouped batches, target-only loss for decoder-only backbones, sorted
  batched generation with its own batch size), no zero-shot pass (the baseline has none);
* ``hf-default``: ``Seq2SeqTrainer`` / ``Trainer`` with their documented defaults:
  ``DataCollatorForSeq2Seq`` dynamic padding, random batches, ``predict_with_generate``;
* ``hf-grouped``: the same with ``train_sampling_strategy="group_by_length"``
  (``group_by_length=True`` before transformers 5);
* ``ct2-int8`` / ``ct2-float32``: prediction with texttune's CTranslate2 backend from
  texttune's fine-tuned model (decoder-only and T5/BART/Marian backbones only);
* ``flops``: the model FLOPs of the training set (see flops.py) and the matmul peak.

Same backbone weights, same token ids (every side gets texttune's tokenization of
the same rows, so the work is identical by construction), same max lengths, batch
size, one epoch, learning rate, seed, ``max_new_tokens`` and greedy decoding. Each
side scores its own predictions with the same metric code (texttune.metrics).

Usage: python benchmarks/vs_hf_trainer.py [--cases smollm2-debian,bert2bert-enfr] [--quick] [--out F]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
WORK = REPO / "benchmarks" / ".cache" / "vs_hf_trainer"


@dataclass(frozen=True)
class Case:
    name: str
    task: str  # texttune task name
    backbone: str  # texttune alias (resolved to a local directory for the baseline)
    data: str  # directory under ../shared/datasets with train.jsonl and validation.jsonl
    input_column: str
    target_column: str
    train_rows: int
    eval_rows: int
    predict_rows: int
    batch_size: int
    learning_rate: float
    max_source_length: int
    max_target_length: int
    max_input_chars: int  # rows with longer inputs are skipped (keeps the CPU run bounded)


CASES = {
    "smollm2-debian": Case("smollm2-debian", "summarization", "smollm2-135m", "summarization/debian-descriptions",
                           "document", "summary", train_rows=160, eval_rows=48, predict_rows=48, batch_size=8,
                           learning_rate=1e-4, max_source_length=256, max_target_length=32, max_input_chars=1200),
    "bert2bert-enfr": Case("bert2bert-enfr", "translation", "minilm-bert2bert", "translation/en-fr",
                           "en", "fr", train_rows=800, eval_rows=160, predict_rows=160, batch_size=16,
                           learning_rate=1e-4, max_source_length=128, max_target_length=64, max_input_chars=400),
}
QUICK = {"train_rows": 32, "eval_rows": 8, "predict_rows": 8}
SEED = 42


# -- data: every side reads the same files -----------------------------------
def _read(path: Path, case: Case, limit: int, *, stride_seed: int) -> list[dict[str, str]]:
    """``limit`` rows spread over the file (every k-th usable row), so the sample is not one alphabetical slice."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    usable = [r for r in rows if r.get(case.input_column) and r.get(case.target_column)
              and len(r[case.input_column]) <= case.max_input_chars]
    step = max(1, len(usable) // (limit * 2))
    picked = usable[stride_seed % step :: step][:limit]
    return [{"input": r[case.input_column], "target": r[case.target_column]} for r in picked]


def prepare_data(case: Case, quick: bool, directory: Path) -> dict[str, Path]:
    sizes = QUICK if quick else {"train_rows": case.train_rows, "eval_rows": case.eval_rows, "predict_rows": case.predict_rows}
    root = SHARED / case.data
    validation = _read(root / "validation.jsonl", case, sizes["eval_rows"] + sizes["predict_rows"], stride_seed=1)
    splits = {"train": _read(root / "train.jsonl", case, sizes["train_rows"], stride_seed=0),
              "validation": validation[: sizes["eval_rows"]], "test": validation[sizes["eval_rows"] :]}
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, rows in splits.items():
        paths[split] = directory / f"{split}.jsonl"
        paths[split].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return paths


# -- the parent: run every side in its own process ------------------------------
def run_side(case: Case, side: str, *, quick: bool, directory: Path, threads: int) -> dict[str, Any]:
    out = directory / f"{side}.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, str(Path(__file__).resolve().parent / "bench_sides.py"), "--case", case.name, "--side", side,
               "--dir", str(directory), "--out", str(out), "--threads", str(threads)] + (["--quick"] if quick else [])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    (directory / f"{side}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        print(f"  {side}: FAILED (exit {proc.returncode}): {' | '.join(tail)}", flush=True)
        return {"side": side, "error": " | ".join(tail)}
    result = json.loads(out.read_text())
    result["process_s"] = round(time.perf_counter() - started, 1)
    print(f"  {side}: {json.dumps({k: v for k, v in result.items() if not isinstance(v, (dict, list))})}", flush=True)
    return result


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _fmt(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(case: Case, results: dict[str, dict[str, Any]]) -> str:
    """Markdown table of one case: every side, with texttune / baseline ratios."""
    tt, base, grouped = results.get("texttune", {}), results.get("hf-default", {}), results.get("hf-grouped", {})
    metric = tt.get("metric_name") or base.get("metric_name") or "metric"
    lines = [f"### {case.name}: {case.backbone} on {case.data} ({case.task})", "",
             f"| side | train ex/s | eval+generate ex/s | predict ex/s | peak RSS MiB | {metric} (eval) | {metric} (predict) | MFU |",
             "|---|---|---|---|---|---|---|---|"]
    for side in ("texttune", "hf-default", "hf-grouped", "ct2-int8", "ct2-float32"):
        r = results.get(side)
        if not r:
            continue
        if "error" in r:
            lines.append(f"| {side} | failed: {r['error'][:120]} |||||||")
            continue
        mfu = r.get("mfu")
        lines.append(f"| {side} | {_fmt(r.get('train_examples_per_s'))} | {_fmt(r.get('eval_examples_per_s'))} | "
                     f"{_fmt(r.get('predict_examples_per_s'))} | {_fmt(r.get('peak_rss_mib'), 0)} | {_fmt(r.get('eval_metric'))} | "
                     f"{_fmt(r.get('predict_metric'))} | {'-' if mfu is None else f'{100 * mfu:.1f}%'} |")
    lines += ["", "eval+generate: texttune and hf-*: the validation loss pass, generation and the metric, as in training; "
                  "ct2-*: generation and the metric (`texttune evaluate --backend ctranslate2`) with texttune's fine-tuned model.",
              "", "| ratio texttune / baseline | train | eval+generate | predict | peak RSS |", "|---|---|---|---|---|"]
    for name, other in (("hf-default", base), ("hf-grouped", grouped)):
        if other and "error" not in other and "error" not in tt:
            lines.append(f"| vs {name} | {_ratio(tt.get('train_examples_per_s'), other.get('train_examples_per_s'))} | "
                         f"{_ratio(tt.get('eval_examples_per_s'), other.get('eval_examples_per_s'))} | "
                         f"{_ratio(tt.get('predict_examples_per_s'), other.get('predict_examples_per_s'))} | "
                         f"{_ratio(tt.get('peak_rss_mib'), other.get('peak_rss_mib'))} |")
    for side in ("ct2-int8", "ct2-float32"):
        r = results.get(side)
        if r and "error" not in r and "error" not in tt:
            lines.append(f"| {side} / texttune (transformers) | | | "
                         f"{_ratio(r.get('predict_examples_per_s'), tt.get('predict_examples_per_s'))} | |")
            lines.append(f"| {side} / hf-default | | {_ratio(r.get('eval_examples_per_s'), base.get('eval_examples_per_s'))} | "
                         f"{_ratio(r.get('predict_examples_per_s'), base.get('predict_examples_per_s'))} | |")
    flops = results.get("flops", {})
    if flops and "error" not in flops:
        lines += ["", f"Model FLOPs of one epoch: {flops['train_flops'] / 1e12:.2f} TFLOP "
                      f"(fit error {100 * flops['fit_error']:.3f}% on an unseen length); matmul peak "
                      f"{flops['peak_flops'] / 1e9:.1f} GFLOP/s (fp32, {flops['threads']} threads)."]
    return "\n".join(lines)


def add_mfu(results: dict[str, dict[str, Any]]) -> None:
    """Achieved model FLOP/s of each training side and its ratio to the measured matmul peak."""
    flops = results.get("flops")
    if not flops or "error" in flops:
        return
    for side in ("texttune", "hf-default", "hf-grouped"):
        r = results.get(side)
        if r and "error" not in r and r.get("train_s"):
            r["train_flops_per_s"] = flops["train_flops"] / r["train_s"]
            r["mfu"] = r["train_flops_per_s"] / flops["peak_flops"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--sides", default="flops,texttune,hf-default,hf-grouped,ct2-int8,ct2-float32")
    parser.add_argument("--quick", action="store_true", help="a few rows per split: checks the script in minutes")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=WORK / "results.json")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"machine": _machine(args.threads), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "command": " ".join(["python", *sys.argv]), "cases": {}}
    markdown = []
    for name in args.cases.split(","):
        case = CASES[name]
        directory = WORK / (name + ("-quick" if args.quick else ""))
        prepare_data(case, args.quick, directory)
        print(f"{name}:", flush=True)
        results = {side: run_side(case, side, quick=args.quick, directory=directory, threads=args.threads)
                   for side in args.sides.split(",")}
        add_mfu(results)
        report["cases"][name] = {"case": asdict(case), "results": results}
        markdown.append(table(case, results))
    report["markdown"] = "\n\n".join(markdown)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print("\n" + report["markdown"])
    print(f"\nmachine: {report['machine']}\nresults: {args.out}")
    return 0


def _machine(threads: int) -> str:
    import platform

    import torch
    import transformers

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return (f"{cpu}, {os.cpu_count()} cores, {threads} torch threads; Python {platform.python_version()}, "
            f"torch {torch.__version__}, transformers {transformers.__version__}")


if __name__ == "__main__":
    sys.exit(main())
