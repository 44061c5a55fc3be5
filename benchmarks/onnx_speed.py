#!/usr/bin/env python3
"""Time ONNX Runtime against texttune's transformers path on a MiniLM-L6 encoder's forward pass.

What it measures: the forward call of a saved texttune model, the one ``predict`` and ``evaluate``
make per batch (tokenization and post-processing are the same on both sides and left out), for
text classification and token classification on the offline ``minilm`` backbone (MiniLM-L6, 22M
parameters; an untrained head: the speed does not depend on the weights). Sides:

- ``transformers``: the model as ``texttune.load`` gives it (float32, SDPA attention), under
  ``torch.inference_mode`` with ``torch.set_num_threads(threads)``;
- ``onnx-float32`` / ``onnx-int8``: ``texttune export --format onnx`` of the same directory, one
  ONNX Runtime CPU session per thread count (``intra_op_num_threads``).

Inputs: Debian package descriptions of the shared validation split (or, without ../shared, the
packaged demo data) of 64-128 tokens, in padded batches of 1, 16 and 64. The sides alternate, one
block each (a warm-up call, then ``--calls`` timed calls), ``--repeats`` times, because the 2
cores are shared with other work; the table gives the median ms per batch and the ratio of the
medians. Also reported: the largest |ONNX - transformers| of each side's outputs on those batches
and, for int8, how often the per-row (or per-token) arg-max agrees with float32.

Usage (repository root)::

    .venv/bin/python benchmarks/onnx_speed.py                       # both tasks, threads 1 and 2, batches 1/16/64
    .venv/bin/python benchmarks/onnx_speed.py --tasks text-classification --batches 16 --repeats 3

``--out FILE`` writes the JSON results (benchmarks/results/onnx-speed-DATE.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets" / "classification" / "debian-packages" / "validation.jsonl"
LABELS = {"text-classification": ["admin", "devel", "libs", "utils"],
          "token-classification": ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]}


def texts_between(tokenizer: object, low: int, high: int, count: int) -> list[str]:
    """``count`` texts of ``low``-``high`` tokens (descriptions, or runs of them joined when short)."""
    source = SHARED if SHARED.is_file() else next((ROOT / "src" / "texttune" / "demo_data").rglob("*.jsonl"))
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    pool = [str(r.get("text") or r.get("document") or "") for r in rows]
    chosen, buffer = [], ""
    for text in pool:
        buffer = f"{buffer} {text}".strip()
        n = len(tokenizer(buffer)["input_ids"])  # type: ignore[operator]
        if n > high:
            buffer = text
            continue
        if n >= low:
            chosen.append(buffer)
            buffer = ""
        if len(chosen) == count:
            return chosen
    raise SystemExit(f"only {len(chosen)} texts of {low}-{high} tokens in {source}")


def prepare(work: Path, task: str) -> tuple[Path, dict[str, Path]]:
    """The saved minilm model of ``task`` and its float32/int8 ONNX exports (built once under ``work``)."""
    import texttune
    from texttune import TextClassification, TokenClassification

    model_dir = work / task
    if not (model_dir / "texttune.json").is_file():
        cls = TextClassification if task == "text-classification" else TokenClassification
        cls(backbone="minilm", label_list=",".join(LABELS[task]), max_length=128).save(model_dir)
    exports = {}
    for quantization in ("float32", "int8"):
        out = work / f"{task}-onnx-{quantization}"
        if not (out / "model.onnx").is_file():
            t0 = time.perf_counter()
            texttune.export(model_dir, output=out, format="onnx", quantization=quantization)
            print(f"exported {out.name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        exports[quantization] = out
    return model_dir, exports


def time_block(call: object, calls: int) -> float:
    """Median ms of ``calls`` calls after one warm-up call."""
    call()  # type: ignore[operator]
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        call()  # type: ignore[operator]
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def bench_task(task: str, args: argparse.Namespace) -> list[dict[str, object]]:
    """Every (threads, batch) row of one task: the median ms of each side and the outputs' agreement."""
    import numpy as np
    import torch

    import texttune
    from texttune.inference.onnx_export import open_session

    model_dir, exports = prepare(Path(args.work), task)
    model = texttune.load(model_dir, backend="transformers", device="cpu", dtype="float32")
    torch_model, tokenizer = model.backbone.model.eval(), model.backbone.tokenizer
    texts = texts_between(tokenizer, 64, 128, max(args.batches))
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        sessions = {q: open_session(path / "model.onnx", threads=threads) for q, path in exports.items()}
        names = [i.name for i in sessions["float32"].get_inputs()]
        for size in args.batches:
            batch = tokenizer(texts[:size], padding=True, truncation=True, max_length=128, return_tensors="pt")
            feed = {n: batch[n].numpy() for n in names}
            with torch.inference_mode():
                reference = torch_model(**{n: batch[n] for n in names}).logits.numpy()
            outputs = {q: s.run(["logits"], feed)[0] for q, s in sessions.items()}

            def hf(inputs: dict[str, object] = {n: batch[n] for n in names}) -> None:  # noqa: B006 (bound now, read-only)
                with torch.inference_mode():
                    torch_model(**inputs)

            sides = {"transformers": hf,
                     **{f"onnx-{q}": (lambda s=s, feed=feed: s.run(["logits"], feed)) for q, s in sessions.items()}}
            ms: dict[str, list[float]] = {side: [] for side in sides}
            for _ in range(args.repeats):
                for side, call in sides.items():
                    ms[side].append(time_block(call, args.calls))
            keep = batch["attention_mask"].numpy().astype(bool) if task == "token-classification" else slice(None)
            rows.append({"task": task, "threads": threads, "batch": size, "tokens": int(batch["input_ids"].shape[1]),
                         **{f"{side}_ms": round(statistics.median(v), 2) for side, v in ms.items()},
                         "samples_ms": {side: [round(x, 2) for x in v] for side, v in ms.items()},
                         "max_abs_diff_float32": float(np.abs(outputs["float32"] - reference).max()),
                         "max_abs_diff_int8": float(np.abs(outputs["int8"] - reference).max()),
                         "argmax_agreement_int8": float((outputs["int8"].argmax(-1) == reference.argmax(-1))[keep].mean())})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "samples_ms"}), flush=True)
    return rows


def ner_quality(args: argparse.Namespace) -> dict[str, object]:
    """Word-level seqeval F1 of a trained NER model on transformers, ONNX float32 and ONNX int8 (first sub-token per word).

    The model: ``--quality-model DIR`` (a token-classification run or model), else a short CoNLL-2003
    run of minilm trained once under ``--work`` (``--quality-steps`` steps of 16 sentences).
    """
    import numpy as np
    import torch
    from seqeval.metrics import f1_score

    import texttune
    from texttune.cli.main import main as texttune_main
    from texttune.inference.onnx_export import open_session

    work, conll = Path(args.work), ROOT.parent / "shared" / "datasets" / "ner" / "conll2003"
    run = Path(args.quality_model or work / "ner-run")
    if not (run / "model" / "texttune.json").is_file() and not (run / "texttune.json").is_file():
        train = work / "conll-train.jsonl"
        lines = conll.joinpath("train.jsonl").read_text(encoding="utf-8").splitlines()[:4000]
        train.write_text("\n".join(lines) + "\n", encoding="utf-8")
        code = texttune_main(["-q", "train", "token-classification", "--backbone", "minilm", "--train-file", str(train),
                              "--max-steps", str(args.quality_steps), "--batch-size", "16", "--learning-rate", "3e-4",
                              "--warmup-ratio", "0.1", "--no-baselines", "--no-progress-bar", "--max-eval-samples", "64",
                              "--output-dir", str(run)])
        if code:
            raise SystemExit(f"training the NER model failed ({code})")
    model = texttune.load(run, backend="transformers", device="cpu", dtype="float32")
    torch_model, tokenizer = model.backbone.model.eval(), model.backbone.tokenizer
    exports = {q: texttune.export(run, output=work / f"ner-onnx-{q}", format="onnx", quantization=q) for q in ("float32", "int8")}
    sessions = {q: open_session(path / "model.onnx") for q, path in exports.items()}
    labels = torch_model.config.id2label
    rows = [json.loads(line) for line in conll.joinpath("validation.jsonl").read_text(encoding="utf-8").splitlines()[:args.quality_rows]]
    names = [i.name for i in sessions["float32"].get_inputs()]
    predicted: dict[str, list[list[str]]] = {"transformers": [], "onnx-float32": [], "onnx-int8": []}
    for start in range(0, len(rows), 32):
        chunk = rows[start:start + 32]
        batch = tokenizer([r["tokens"] for r in chunk], is_split_into_words=True, truncation=True, max_length=128,
                          padding=True, return_tensors="pt")
        with torch.inference_mode():
            logits = {"transformers": torch_model(**{n: batch[n] for n in names}).logits.numpy()}
        logits.update({f"onnx-{q}": s.run(["logits"], {n: batch[n].numpy() for n in names})[0] for q, s in sessions.items()})
        for i in range(len(chunk)):
            words = batch.word_ids(i)
            firsts = [t for t, w in enumerate(words) if w is not None and (t == 0 or words[t - 1] != w)]
            for side, values in logits.items():
                tags = [labels[int(k)] for k in np.argmax(values[i][firsts], -1)]
                predicted[side].append(tags + ["O"] * (len(chunk[i]["tokens"]) - len(tags)))  # truncated words: O
    references = [r["ner_tags"] for r in rows]
    result = {"rows": len(rows), **{f"f1_{side}": round(100 * f1_score(references, tags), 2) for side, tags in predicted.items()},
              "word_agreement_int8": round(float(np.mean([a == b for x, y in zip(predicted["transformers"], predicted["onnx-int8"])
                                                         for a, b in zip(x, y)])), 4)}
    print(json.dumps(result), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="text-classification,token-classification")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batches", default="1,16,64")
    parser.add_argument("--repeats", type=int, default=5, help="blocks per side, alternating sides")
    parser.add_argument("--calls", type=int, default=3, help="timed calls per block")
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / ".cache" / "onnx-speed"))
    parser.add_argument("--quality", action="store_true", help="also: NER F1 of a trained model on each side (int8's quality)")
    parser.add_argument("--quality-model", default=None, help="a trained token-classification run (default: trained once)")
    parser.add_argument("--quality-steps", type=int, default=200)
    parser.add_argument("--quality-rows", type=int, default=1000, help="CoNLL-2003 validation sentences scored")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    args.batches = [int(b) for b in args.batches.split(",")]
    quality = ner_quality(args) if args.quality else None
    rows = [] if args.skip_speed else [row for task in args.tasks.split(",") for row in bench_task(task, args)]
    print("\n| task | threads | batch | tokens | transformers ms | ONNX float32 ms | speed-up | ONNX int8 ms | speed-up | "
          "int8 arg-max agreement |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        base = float(r["transformers_ms"])  # type: ignore[arg-type]
        f32, i8 = float(r["onnx-float32_ms"]), float(r["onnx-int8_ms"])  # type: ignore[arg-type]
        print(f"| {r['task']} | {r['threads']} | {r['batch']} | {r['tokens']} | {base:.1f} | {f32:.1f} | {base / f32:.2f}x | "
              f"{i8:.1f} | {base / i8:.2f}x | {float(r['argmax_agreement_int8']):.3f} |")  # type: ignore[arg-type]
    if args.out:
        Path(args.out).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv), "rows": rows,
                                             "ner_quality": quality},
                                             indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
