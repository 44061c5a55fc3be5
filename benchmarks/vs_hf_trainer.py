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
* ``texttune-packed``: texttune with ``--packing`` (decoder-only cases);
* ``trl-packed``: TRL's ``SFTTrainer`` with ``packing=True`` (best-fit, padding-free), training only, on
  texttune's token ids and target-only labels (decoder-only cases; ``pip install trl``);
* ``hf-same-weights``: the hf evaluation (loss pass + ``predict_with_generate`` or a ``generate`` loop)
  and prediction on texttune's fine-tuned model, so greedy decoding generates the same tokens as texttune;
* ``ct2-int8`` / ``ct2-float32``: prediction with texttune's CTranslate2 backend from
  texttune's fine-tuned model (decoder-only and T5/BART/Marian backbones only);
* ``flops``: the model FLOPs of the training set (see flops.py) and the matmul peak.

Same backbone weights, same token ids (every side gets texttune's tokenization of
the same rows, so the work is identical by construction), same max lengths, batch
size, one epoch, learning rate, seed, ``max_new_tokens`` and greedy decoding. Each
side scores its own predictions with the same metric code (texttune.metrics). Generation
speed is in generated tokens per second (each output re-encoded by the tokenizer, plus its
end-of-sequence token): the models each side trained stop at different lengths, so rows per
second of different models is not equal work; the same-weights sides are.

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
    decoder_only: bool = False  # the packed sides (texttune --packing, TRL) run only then


CASES = {
    "smollm2-debian": Case("smollm2-debian", "summarization", "smollm2-135m", "summarization/debian-descriptions",
                           "document", "summary", train_rows=160, eval_rows=48, predict_rows=48, batch_size=8,
                           learning_rate=1e-4, max_source_length=256, max_target_length=32, max_input_chars=1200,
                           decoder_only=True),
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
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]  # the exception and its message
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


SIDES = ("texttune", "texttune-packed", "trl-packed", "hf-default", "hf-grouped", "hf-same-weights", "ct2-int8", "ct2-float32")
PACKED_SIDES = ("texttune-packed", "trl-packed")


def _row(side: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"| {side} | failed: {r['error'][:120]} ||||||||||"
    mfu = r.get("mfu")
    per_row = f"{_fmt(r.get('eval_generated_tokens_per_row'), 1)} / {_fmt(r.get('predict_generated_tokens_per_row'), 1)}"
    return (f"| {side} | {_fmt(r.get('train_examples_per_s'))} | {_fmt(r.get('train_tokens_per_s'), 1)} | "
            f"{_fmt(r.get('eval_examples_per_s'))} | "
            f"{_fmt(r.get('eval_generated_tokens_per_s'), 1)} | {_fmt(r.get('predict_examples_per_s'))} | "
            f"{_fmt(r.get('predict_generated_tokens_per_s'), 1)} | {per_row} | {_fmt(r.get('peak_rss_mib'), 0)} | "
            f"{_fmt(r.get('eval_metric'))} | {_fmt(r.get('predict_metric'))} | {'-' if mfu is None else f'{100 * mfu:.1f}%'} |")


def table(case: Case, results: dict[str, dict[str, Any]]) -> str:
    """Markdown table of one case: every side, then the ratios: training per example against the baselines'
    training, and generation per generated token, on the same weights where the work is the same."""
    ok = {side: r for side, r in results.items() if r and "error" not in r}
    tt = ok.get("texttune", {})
    metric = next((r["metric_name"] for r in ok.values() if r.get("metric_name")), "metric")
    lines = [f"### {case.name}: {case.backbone} on {case.data} ({case.task})", "",
             f"| side | train ex/s | train tok/s | eval ex/s | eval gen tok/s | predict ex/s | predict gen tok/s | gen tok/row "
             f"(eval / predict) | peak RSS MiB | {metric} (eval) | {metric} (predict) | MFU |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [_row(side, results[side]) for side in SIDES if results.get(side)]
    lines += ["", "eval: the validation loss pass, generation and the metric, as in training (ct2-*: generation and the "
                  "metric, `texttune evaluate --backend ctranslate2`). texttune and hf-default/hf-grouped generate from the "
                  "model each trained, which stop at different lengths: compare their generation in tokens/s. "
                  "hf-same-weights and ct2-* generate from texttune's fine-tuned model: the same work as texttune's rows.",
              "", "| ratio | train ex/s | train tok/s | eval gen tok/s | predict gen tok/s | peak RSS |", "|---|---|---|---|---|---|"]

    def ratio_row(label: str, a: dict[str, Any], b: dict[str, Any], *, train: bool = True) -> None:
        lines.append(f"| {label} | {_ratio(a.get('train_examples_per_s'), b.get('train_examples_per_s')) if train else ''} | "
                     f"{_ratio(a.get('train_tokens_per_s'), b.get('train_tokens_per_s')) if train else ''} | "
                     f"{_ratio(a.get('eval_generated_tokens_per_s'), b.get('eval_generated_tokens_per_s'))} | "
                     f"{_ratio(a.get('predict_generated_tokens_per_s'), b.get('predict_generated_tokens_per_s'))} | "
                     f"{_ratio(a.get('peak_rss_mib'), b.get('peak_rss_mib')) if train else ''} |")

    packed = ok.get("texttune-packed", {})
    if packed and tt:
        ratio_row("texttune-packed / texttune (grouped, padded)", packed, tt)
    for name in ("hf-default", "hf-grouped", "trl-packed"):
        if packed and name in ok:
            ratio_row(f"texttune-packed / {name}", packed, ok[name])
    if tt and "trl-packed" in ok:
        ratio_row("texttune / trl-packed", tt, ok["trl-packed"])
    if tt:
        for name in ("hf-default", "hf-grouped"):
            if name in ok:
                ratio_row(f"texttune / {name} (own models)", tt, ok[name])
        if "hf-same-weights" in ok:
            ratio_row("texttune / hf-same-weights (same weights)", tt, ok["hf-same-weights"], train=False)
        for side in ("ct2-int8", "ct2-float32"):
            if side in ok:
                ratio_row(f"{side} / texttune (same weights)", ok[side], tt, train=False)
                if "hf-same-weights" in ok:
                    ratio_row(f"{side} / hf-same-weights (same weights)", ok[side], ok["hf-same-weights"], train=False)
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
    for side in ("texttune", "texttune-packed", "trl-packed", "hf-default", "hf-grouped"):
        r = results.get(side)
        if r and "error" not in r and r.get("train_s"):
            r["train_flops_per_s"] = flops["train_flops"] / r["train_s"]
            r["mfu"] = r["train_flops_per_s"] / flops["peak_flops"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--sides", default="flops,texttune,texttune-packed,trl-packed,hf-default,hf-grouped,hf-same-weights,"
                                           "ct2-int8,ct2-float32",
                        help="texttune-packed and trl-packed (pip install trl) run on decoder-only cases only")
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
                   for side in args.sides.split(",") if case.decoder_only or side not in PACKED_SIDES}
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
