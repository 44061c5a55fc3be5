"""The cost of serving several LoRA adapters on one SmolLM2-135M (``texttune serve BASE --adapter NAME=DIR``).

Measures, on the offline ``smollm2-135m`` alias with adapters of random weights (speed does not depend on
the values):

- switch time: :meth:`AdapterSet.activate` between two adapters, and between an adapter and the base
  (median and max over ``--switches`` switches), what the server pays once per batch that changes adapter;
- the price of keeping adapters unmerged: greedy generation tokens/s with an adapter active (unmerged)
  against the same adapter merged into the weights, one prompt, ``--new-tokens`` tokens, best of 3.

Issue 20's target: a switch well under 100 ms for SmolLM2-sized adapters on CPU.

    .venv/bin/python benchmarks/adapter_switch.py --rank 8 --targets q_proj,v_proj
    .venv/bin/python benchmarks/adapter_switch.py --rank 16 --targets all-linear
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch


def _lora_model(rank: int, targets: str) -> tuple[Any, Any, Any]:
    """SmolLM2-135M with two LoRA adapters ("a", "b") of random weights, and its tokenizer."""
    from peft import LoraConfig, get_peft_model

    from texttune.api import CausalLM

    backbone = CausalLM(backbone="smollm2-135m").backbone
    model, tokenizer = backbone.model.eval(), backbone.tokenizer
    modules: Any = "all-linear" if targets == "all-linear" else targets.split(",")
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=modules, lora_dropout=0.0, init_lora_weights=False)
    peft = get_peft_model(model, config, adapter_name="a")
    peft.add_adapter("b", config)
    return peft, model, tokenizer


def _switches(adapters: Any, pairs: list[tuple[str, str]], count: int) -> dict[str, float]:
    times = []
    for i in range(count):
        first, second = pairs[i % len(pairs)]
        adapters.activate(first)
        start = time.perf_counter()
        adapters.activate(second)
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": round(statistics.median(times), 3), "max_ms": round(max(times), 3)}


def _tokens_per_s(model: Any, tokenizer: Any, new_tokens: int) -> float:
    ids = tokenizer("A library for parsing and writing JSON files, with a command line tool", return_tensors="pt")
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        with torch.inference_mode():
            model.generate(**ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                           pad_token_id=tokenizer.eos_token_id)
        best = max(best, new_tokens / (time.perf_counter() - start))
    return round(best, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--targets", default="q_proj,v_proj", help="comma-separated module names, or all-linear")
    parser.add_argument("--switches", type=int, default=200)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from texttune.backbones.adapter_set import AdapterSet

    peft, model, tokenizer = _lora_model(args.rank, args.targets)
    adapters = AdapterSet(peft, {"a": "a", "b": "b", "base": None}, active="a")
    adapted = sum(1 for name, _ in model.named_modules() if name.endswith("lora_A"))
    results: dict[str, Any] = {
        "date": date.today().isoformat(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "rank": args.rank, "targets": args.targets, "adapted_layers": adapted,
        "switch_adapter_to_adapter": _switches(adapters, [("a", "b"), ("b", "a")], args.switches),
        "switch_adapter_to_base": _switches(adapters, [("a", "base"), ("base", "a")], args.switches),
    }
    adapters.activate("a")
    results["tokens_per_s_unmerged"] = _tokens_per_s(model, tokenizer, args.new_tokens)
    adapters.activate("base")
    results["tokens_per_s_base"] = _tokens_per_s(model, tokenizer, args.new_tokens)
    peft.set_adapter("a")
    peft.base_model.enable_adapter_layers()
    merged = peft.merge_and_unload(adapter_names=["a"])
    results["tokens_per_s_merged"] = _tokens_per_s(merged, tokenizer, args.new_tokens)
    print(json.dumps(results, indent=1))
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
