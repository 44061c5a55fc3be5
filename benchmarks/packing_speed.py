#!/usr/bin/env python3
"""Packed vs padded training steps on CPU: is padding-free packing (tasks/packing.py) faster here?

The batches are texttune's own: the chat slow test's conversations and the Debian summaries of the demo,
encoded by the chat and summarization tasks with the SmolLM2 tokenizer, batched the way training batches
them (length-grouped mega-batches, ``--group-by-length``, the default; and in plain random order). Each
batch runs forward + backward on a SmolLM2-135M-shaped model with random weights (speed does not depend on
the values), once padded and once packed into rows of ``--max-length`` tokens, alternating, one torch
thread. Both sides see the same examples and tokens, so tokens/s compares equal work.

    OMP_NUM_THREADS=1 python benchmarks/packing_speed.py --batches 6
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"


def features(data: str, *, rows: int) -> tuple[list[dict[str, Any]], int]:
    """Training examples of ``data`` (chat or debian) encoded by the task with SmolLM2's tokenizer, and the
    longest an example may be (the packing capacity)."""
    sys.path.insert(0, str(ROOT / "tests" / "slow"))
    from datasets import Dataset

    from texttune.backbones import load_backbone
    from texttune.tasks import task_class
    from texttune.tasks.registry import run_config

    if data == "chat":
        from test_chat_real import DEBIAN, FAQ, debian_conversations, faq_conversations

        name, options = "chat", {"max_length": 320}
        table = debian_conversations(DEBIAN / "train.jsonl", rows) + faq_conversations(FAQ, rows // 3)
    else:
        name, options = "summarization", {"max_source_length": 192, "max_target_length": 40}
        lines = (SHARED / "summarization" / "debian-descriptions" / "train.jsonl").read_text(encoding="utf-8").splitlines()
        table = [{"input": r["document"], "target": r["summary"]} for r in map(json.loads, lines[:rows])]
    config = run_config(name, options)
    task = task_class(name)(config.task_options)
    task.bind(load_backbone("smollm2-135m"), config)
    encoded, _ = task.encode(Dataset.from_list(table))  # rows by role (input/target, messages)
    return [encoded[i] for i in range(len(encoded))], task.packing_capacity()


def batches(lengths: list[int], *, batch_size: int, grouped: bool, seed: int = 0) -> list[list[int]]:
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    if grouped:  # as engine/loader.py: mega-batches of 50 batches, sorted by length
        mega = batch_size * 50
        order = [i for s in range(0, len(order), mega) for i in sorted(order[s:s + mega], key=lambda i: -lengths[i])]
    cut = [order[s:s + batch_size] for s in range(0, len(order) - batch_size + 1, batch_size)]
    random.Random(seed + 1).shuffle(cut)
    return cut


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["chat", "debian"], default="chat")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--rows", type=int, default=240)
    args = parser.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from texttune.backbones.aliases import resolve_alias
    from texttune.tasks.base import pad_batch
    from texttune.tasks.causal_loss import target_only_loss
    from texttune.tasks.packing import pack_batch

    torch.set_num_threads(1)
    source = resolve_alias("smollm2-135m")
    feats, max_length = features(args.data, rows=args.rows)
    config = LlamaConfig.from_pretrained(source)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.float32)
    lengths = [len(f["input_ids"]) for f in feats]
    results: dict[str, Any] = {"data": args.data, "examples": len(feats), "max_length": max_length,
                               "length_median": statistics.median(lengths), "length_max": max(lengths)}
    for grouped in (True, False):
        times: dict[str, list[float]] = {"padded": [], "packed": []}
        cells: dict[str, int] = {"padded": 0, "packed": 0}
        tokens = 0
        for batch_ids in batches(lengths, batch_size=args.batch_size, grouped=grouped)[:args.batches]:
            padded = pad_batch([{"input_ids": feats[i]["input_ids"], "labels": feats[i]["labels"]} for i in batch_ids],
                               pad_token_id=0)
            packed = pack_batch(padded, capacity=max_length, pad_token_id=0)
            tokens += int(padded["attention_mask"].sum())
            for side, batch in (("padded", padded), ("packed", packed)) if len(times["packed"]) % 2 else \
                    (("packed", packed), ("padded", padded)):
                model.zero_grad()
                started = time.perf_counter()
                target_only_loss(model, batch).backward()
                times[side].append(time.perf_counter() - started)
                cells[side] += batch["input_ids"].numel()
        key = "grouped" if grouped else "random order"
        results[key] = {side: {"tokens_per_s": round(tokens / sum(t), 1), "seconds": round(sum(t), 2),
                               "cells": cells[side], "padding": round(1 - tokens / cells[side], 3)}
                        for side, t in times.items()}
        results[key]["packed_over_padded"] = round(sum(times["padded"]) / sum(times["packed"]), 3)
        print(json.dumps({key: results[key]}), flush=True)
    out = ROOT / "benchmarks" / "results" / f"packing-speed-{args.data}-{time.strftime('%Y-%m-%d')}.json"
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
