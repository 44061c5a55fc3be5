"""What LoRA and gradient checkpointing cost and save: trainable parameters, peak memory, step time.

Why: ``--peft lora`` and ``--gradient-checkpointing`` exist to fit bigger backbones in
the same memory. This script measures, on one backbone (SmolLM2-135M by default),
for each setting, in its own fresh process (so one setting's peak cannot hide
another's), one after the other:

* ``full``: every weight trains (AdamW keeps two extra copies of each);
* ``full+gc``: the same with gradient checkpointing (activations recomputed in backward);
* ``lora``: ``--peft lora`` with texttune's defaults (rank 8 on q_proj, v_proj);
* ``lora+gc``: both.

Each process loads the backbone through texttune (``load_backbone`` + the same
``prepare_model`` the recipe calls), then runs ``--steps`` optimizer steps (AdamW,
forward + backward + step) on fixed batches of real text: Debian package
descriptions from the bundled demo data, tokenized and cut to ``--seq-len`` tokens,
``--batch-size`` rows per step, causal-LM loss on every token. The first step is a
warm-up and is not timed; the table shows the fastest timed step (the least disturbed by
other processes on a shared machine; the ratio to full fine-tuning uses it) and the mean.

Memory: on a GPU ``torch.cuda.max_memory_allocated`` (tensors only); on CPU the
process's peak resident set (``ru_maxrss``), reported in full and as the growth over
the resident set once the model is loaded and its weights paged in (one small forward
pass without gradients): what training itself added (gradients, optimizer state,
activations).

Usage: python benchmarks/lora.py [--backbone smollm2-135m] [--steps 6] [--batch-size 4] [--seq-len 128]
       [--settings full,full+gc,lora,lora+gc] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "src" / "texttune" / "demo_data" / "debian" / "train.jsonl"
SETTINGS = {"full": {}, "full+gc": {"gradient_checkpointing": True}, "lora": {"peft": "lora"},
            "lora+gc": {"peft": "lora", "gradient_checkpointing": True}}


def _rss_mb() -> float:
    """Current resident set of this process in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _batches(tokenizer: Any, *, batch_size: int, seq_len: int, count: int) -> list[dict[str, Any]]:
    """``count`` batches of ``batch_size`` rows, each exactly ``seq_len`` tokens of concatenated descriptions."""
    import torch

    texts = [json.loads(line)["document"] for line in DEMO.read_text(encoding="utf-8").splitlines()]
    ids = [t for text in texts for t in tokenizer(text + tokenizer.eos_token)["input_ids"]]
    need = batch_size * seq_len * count
    if len(ids) < need:
        raise SystemExit(f"the demo data has {len(ids)} tokens; {need} needed: lower --steps, --batch-size or --seq-len")
    rows = torch.tensor(ids[:need]).view(count, batch_size, seq_len)
    return [{"input_ids": r, "attention_mask": torch.ones_like(r), "labels": r.clone()} for r in rows]


def run_one(setting: str, args: argparse.Namespace) -> dict[str, Any]:
    """One setting, in this process: load, adapt, train ``args.steps`` steps, measure."""
    import torch

    from texttune.backbones import load_backbone
    from texttune.backbones.adapters import parameter_counts, prepare_model
    from texttune.peft_config import PeftOptions

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backbone = load_backbone(args.backbone, auto_class="AutoModelForCausalLM")
    model = backbone.model.to(device)
    prepare_model(backbone, heads=(), options=PeftOptions(**SETTINGS[setting]))
    counts = parameter_counts(model)
    batches = _batches(backbone.tokenizer, batch_size=args.batch_size, seq_len=args.seq_len, count=args.steps)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    with torch.no_grad():  # page the (memory-mapped) weights in, so the baseline holds the whole model
        model.eval()
        model(**{k: v[:1, :8].to(device) for k, v in batches[0].items()})
    loaded_rss = _rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    times, losses = [], []
    for batch in batches:
        started = time.perf_counter()
        loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss))  # a host sync: the step is finished when timed
        times.append(time.perf_counter() - started)
    timed = times[1:] or times
    result = {"setting": setting, "device": device.type, "dtype": str(next(model.parameters()).dtype),
              "trainable": counts["trainable"], "total": counts["total"],
              "trainable_percent": counts["trainable_percent"], "step_s": min(timed), "step_mean_s": sum(timed) / len(timed),
              "first_loss": losses[0], "last_loss": losses[-1]}
    if device.type == "cuda":
        result["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_mb"] = _peak_rss_mb()
        result["growth_mb"] = result["peak_mb"] - loaded_rss
    return result


def table(results: list[dict[str, Any]]) -> str:
    """Markdown table, with step time and memory relative to full fine-tuning when it was measured."""
    base = next((r for r in results if r["setting"] == "full"), None)
    gpu = results and results[0]["device"] == "cuda"
    memory = "peak GPU memory MiB" if gpu else "peak RSS MiB | training growth MiB"
    lines = [f"| setting | trainable params | trainable % | {memory} | step s (fastest) | step s (mean) | step vs full "
             "| loss first -> last |", "|---|---|---|---|---|---|---|---|" + ("" if gpu else "---|")]
    for r in results:
        mem = f"{r['peak_mb']:.0f}" if gpu else f"{r['peak_mb']:.0f} | {r['growth_mb']:.0f}"
        ratio = f"{r['step_s'] / base['step_s']:.2f}x" if base else "-"
        lines.append(f"| {r['setting']} | {r['trainable']:,} | {r['trainable_percent']:.2f} | {mem} | {r['step_s']:.2f} | "
                     f"{r['step_mean_s']:.2f} | "
                     f"{ratio} | {r['first_loss']:.3f} -> {r['last_loss']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per setting (the first is not timed)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--one", choices=list(SETTINGS), help=argparse.SUPPRESS)  # child process: one setting
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown setting {unknown[0]!r}; valid: {', '.join(SETTINGS)}")
    results = []
    load_before = os.getloadavg()[0]
    started = time.time()
    for setting in settings:
        child = [sys.executable, __file__, "--one", setting, "--backbone", args.backbone, "--steps", str(args.steps),
                 "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len)]
        out = subprocess.run(child, check=True, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"{setting}: {results[-1]}", file=sys.stderr)
    print(f"{args.backbone}, batch {args.batch_size} x {args.seq_len} tokens, {args.steps} AdamW steps (first not timed), "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after, {time.time() - started:.0f} s in all\n")
    print(table(results))
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2))


if __name__ == "__main__":
    main()
