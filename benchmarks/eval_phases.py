"""Where an evaluation's time goes for a saved generation model: loss pass, prefill, decoding; and one pass.

Why: an evaluation during training is a teacher-forced loss pass plus generation,
and generation is a prefill (one forward pass over the prompts) plus one step per
new token. Which of the three dominates says what can be sped up (docs/speed.md).

Usage (repository root)::

    .venv/bin/python benchmarks/eval_phases.py --model RUN_DIR/model --data validation.jsonl \\
        --input-column input --target-column target [--rows 48] [--batch-size 16]

Prints one JSON line: seconds of the loss pass (length-sorted batches), of the
prefill (generation with ``max_new_tokens=1``), of decoding (full generation minus
the prefill), and their shares; then, where the task evaluates on one pass over
each input (inference/scored.py, as training's evaluations do), its seconds, its
speedup over loss pass + generation, how many outputs are identical, and both losses.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a texttune model directory (generation task)")
    parser.add_argument("--data", type=Path, required=True, help="JSONL rows with the input and target columns")
    parser.add_argument("--input-column", default="input")
    parser.add_argument("--target-column", default="target")
    parser.add_argument("--rows", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16, help="generation batch size (texttune's default)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    import torch

    import texttune
    from texttune.data import from_lists
    from texttune.engine.loader import feature_lengths, length_sorted

    if args.threads:
        torch.set_num_threads(args.threads)
    lines = args.data.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()][: args.rows]
    inputs = [r[args.input_column] for r in rows]
    model = texttune.load(args.model)
    model.predict(inputs[:1])  # loads the weights
    task, network = model.task, model._ready().model
    features = task.encode(from_lists({"input": inputs, "target": [r[args.target_column] for r in rows]}).rows)[0]
    order = length_sorted(feature_lengths(features))

    started = time.perf_counter()
    loss_sum, loss_tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(order), args.batch_size):
            batch = task.collate([features[i] for i in order[start : start + args.batch_size]])
            tokens = int((batch["labels"] != -100).sum())
            loss_sum, loss_tokens = loss_sum + float(task.loss(network, batch)) * tokens, loss_tokens + tokens
    loss_s = time.perf_counter() - started
    started = time.perf_counter()
    model.predict(inputs, max_new_tokens=1, batch_size=args.batch_size)
    prefill_s = time.perf_counter() - started
    generation = replace(model.config.generation, generation_batch_size=args.batch_size)
    table = from_lists({"input": inputs, "target": [r[args.target_column] for r in rows]}).rows
    started = time.perf_counter()
    _, records = task.evaluate(network, table, generation=generation)  # what predict runs, as evaluation runs it
    generation_s = time.perf_counter() - started
    total = loss_s + generation_s
    decode_s = generation_s - prefill_s
    found = {"rows": len(rows), "loss_pass_s": round(loss_s, 2), "prefill_s": round(prefill_s, 2),
             "decode_s": round(decode_s, 2), "shares": {"loss_pass": round(loss_s / total, 2),
             "prefill": round(prefill_s / total, 2), "decode": round(decode_s / total, 2)}}
    # The evaluation inside training where it applies (inference/scored.py): one pass over each input gives the loss,
    # the prefill and the outputs, and greedy search drops each row as it ends.
    if getattr(task, "loss_in_evaluation", None) and task.loss_in_evaluation(network, generation=generation):
        started = time.perf_counter()
        _, one_pass_records, one_pass_sum, one_pass_tokens = task.evaluate_with_loss(network, table, generation=generation)
        one_pass_s = time.perf_counter() - started
        same = sum(a["prediction"] == b["prediction"] for a, b in zip(records, one_pass_records))
        found["one_pass"] = {"seconds": round(one_pass_s, 2), "speedup": round(total / one_pass_s, 2),
                             "identical_outputs": same, "loss": round(one_pass_sum / one_pass_tokens, 6),
                             "loss_pass_loss": round(loss_sum / loss_tokens, 6)}
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
