"""One side of vs_hf_trainer.py, run in its own process so peak memory is that side's alone.

Sides: texttune | texttune-packed | trl-packed | hf-default | hf-grouped | hf-same-weights | ct2-int8 | ct2-float32 |
flops. Writes one JSON to --out.

Every generating side reports the tokens it generated (:func:`generated_tokens`) beside its rows: the models of
texttune and hf-* are each side's own fine-tune, and they stop at different lengths, so only tokens/s compares
their generation speed; hf-same-weights and ct2-* generate from texttune's fine-tuned model, the same work.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vs_hf_trainer import CASES, SEED, Case  # noqa: E402


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def read_rows(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def score(case: Case, predictions: list[str], references: list[str]) -> tuple[str, float]:
    from texttune.metrics import bleu_chrf, rouge

    if case.task == "translation":
        return "bleu", round(bleu_chrf(predictions, references)["bleu"], 2)
    return "rougeL", round(rouge(predictions, references)["rougeL"], 2)


def generated_tokens(tokenizer: Any, texts: list[str], *, max_new_tokens: int) -> int:
    """Decoding steps behind ``texts`` (one output per row, as decoded and stripped): each output's tokens
    re-encoded by the model's tokenizer, plus the end-of-sequence token where the output stopped before
    ``max_new_tokens``. Every side's outputs are counted this way, so the same strings count the same work
    whichever path generated them (tests/integration/test_bench_counting.py checks it against generate's ids)."""
    total = 0
    for text in texts:
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0
        total += min(n + 1, max_new_tokens)
    return total


def generation_record(prefix: str, tokenizer: Any, texts: list[str], seconds: float, *, max_new_tokens: int) -> dict[str, Any]:
    """``<prefix>_tokens`` (generated), ``<prefix>_tokens_per_row`` and ``<prefix>_tokens_per_s`` of one generation pass."""
    tokens = generated_tokens(tokenizer, texts, max_new_tokens=max_new_tokens)
    return {f"{prefix}_tokens": tokens, f"{prefix}_tokens_per_row": round(tokens / max(len(texts), 1), 2),
            f"{prefix}_tokens_per_s": tokens / seconds if seconds else None}


def shared_options(case: Case) -> dict[str, Any]:
    return {"max_source_length": case.max_source_length, "max_target_length": case.max_target_length, "seed": SEED}


# -- texttune ----------------------------------------------------------------
def run_texttune(case: Case, directory: Path, *, packing: bool | None = None) -> dict[str, Any]:
    """fit with texttune's defaults (``packing``: --packing / --no-packing, None: the default), then predict."""
    import texttune

    cls = {"summarization": texttune.Summarization, "translation": texttune.Translation}[case.task]
    train, val, test = (read_rows(directory / f"{s}.jsonl") for s in ("train", "validation", "test"))
    steps = math.ceil(len(train) / case.batch_size)
    run_dir = directory / ("texttune-run" if packing is None else f"texttune-run-packing-{packing}")
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    model = cls(backbone=case.backbone)
    result = model.fit(train=str(directory / "train.jsonl"), validation=str(directory / "validation.jsonl"), output_dir=run_dir,
                       max_epochs=1, batch_size=case.batch_size, learning_rate=case.learning_rate,
                       options={**shared_options(case), "baselines": False, "eval_every_steps": steps, "progress_bar": False,
                                "tensorboard": False, "samples_per_eval": 0,
                                **({} if packing is None else {"packing": packing})})
    total_s = time.perf_counter() - started
    peak = peak_rss_mib()
    timing = result.metrics["timing"]
    trained = texttune.load(result.model_dir)
    t0 = time.perf_counter()
    trained.predict([test[0]["input"]])  # loads the weights (lazily, on first use)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    outputs = trained.predict([r["input"] for r in test])
    predict_s = time.perf_counter() - t0
    metric_name, predict_metric = score(case, outputs, [r["target"] for r in test])
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(result.model_dir))
    max_new = trained.task.max_new_tokens
    # The final evaluation's outputs: the validation rows generated during training (eval_s includes them).
    evaluated = [r["prediction"] for r in read_rows(run_dir / "predictions.jsonl")]
    return {
        **generation_record("eval_generated", tokenizer, evaluated, timing["eval_s"], max_new_tokens=max_new),
        **generation_record("predict_generated", tokenizer, outputs, predict_s, max_new_tokens=max_new),
        "train_examples": timing["train_examples"], "train_tokens": timing["train_tokens"], "train_s": timing["train_s"],
        "train_examples_per_s": timing["train_examples"] / timing["train_s"],
        "train_tokens_per_s": timing["train_tokens"] / timing["train_s"], "train_padding": timing.get("train_padding"),
        "packing": json.loads((run_dir / "environment.json").read_text()).get("packing"),
        "eval_rows": len(val), "eval_s": timing["eval_s"], "eval_examples_per_s": len(val) / timing["eval_s"],
        "metric_name": metric_name, "eval_metric": round(result.metrics["fine_tuned"][metric_name], 2),
        "predict_rows": len(test), "predict_s": predict_s, "predict_examples_per_s": len(test) / predict_s,
        "predict_metric": predict_metric, "peak_rss_mib": peak, "fit_total_s": total_s, "load_s": load_s,
        "max_new_tokens": trained.task.max_new_tokens, "model_dir": str(result.model_dir), "timing": timing,
    }


# -- the Hugging Face Trainer baseline --------------------------------------------
def texttune_features(case: Case, directory: Path) -> dict[str, Any]:
    """The task, tokenizer and token ids texttune uses, so the baseline trains on identical sequences."""
    from texttune.backbones import load_backbone
    from texttune.data import from_lists
    from texttune.tasks import task_class
    from texttune.tasks.registry import run_config

    cls = task_class(case.task)
    config = run_config(case.task, shared_options(case))
    task = cls(config.task_options)
    backbone = load_backbone(case.backbone)
    task.bind(backbone, config)
    splits = {s: read_rows(directory / f"{s}.jsonl") for s in ("train", "validation", "test")}
    tables = {s: from_lists({"input": [r["input"] for r in rows], "target": [r["target"] for r in rows]}) for s, rows in splits.items()}
    task.learn(tables["train"].rows)
    features = {s: task.encode(tables[s].rows)[0] for s in ("train", "validation", "test")}
    prompts = {s: [task.format.encode(r["input"], None, max_source_length=case.max_source_length,
                                      max_target_length=case.max_target_length).input_ids for r in splits[s]]
               for s in ("validation", "test")}
    return {"task": task, "backbone": backbone, "splits": splits, "features": features, "prompts": prompts}


def _generate_loop(model: Any, tokenizer: Any, prompts: list[list[int]], *, batch_size: int, max_new_tokens: int) -> list[str]:
    """What users write for decoder-only evaluation: batches in dataset order, left padding, model.generate."""
    import torch

    tokenizer.padding_side = "left"
    texts = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer.pad({"input_ids": prompts[start : start + batch_size]}, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        texts += [t.strip() for t in tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)]
    return texts


def _hf_trainer(case: Case, directory: Path, prepared: dict[str, Any], *, weights: str, name: str,
                grouped: bool = False) -> tuple[Any, Any, Any]:
    """(model from ``weights``, its Trainer with the documented defaults, decode) for one hf side."""
    import numpy as np
    import transformers
    from transformers import DataCollatorForSeq2Seq

    task, tokenizer = prepared["task"], prepared["backbone"].tokenizer
    seq2seq = prepared["backbone"].family == "seq2seq"
    model = getattr(transformers, task.auto_class(prepared["backbone"].family)).from_pretrained(weights)
    model.generation_config.max_new_tokens = task.max_new_tokens
    model.generation_config.max_length = None

    def decode(ids: Any) -> list[str]:
        ids = np.where(ids < 0, tokenizer.pad_token_id, ids)
        return [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]

    common = dict(output_dir=str(directory / f"hf-out-{name}"), per_device_train_batch_size=case.batch_size,
                  learning_rate=case.learning_rate, num_train_epochs=1, seed=SEED, report_to="none", save_strategy="no",
                  eval_strategy="no", logging_steps=5, disable_tqdm=True, use_cpu=True,
                  train_sampling_strategy="group_by_length" if grouped else "random")
    collator = DataCollatorForSeq2Seq(tokenizer, model=model)
    train = prepared["features"]["train"]
    if seq2seq:
        args = transformers.Seq2SeqTrainingArguments(predict_with_generate=True, **common)
        trainer = transformers.Seq2SeqTrainer(model=model, args=args, train_dataset=train, data_collator=collator,
                                              processing_class=tokenizer)
    else:
        trainer = transformers.Trainer(model=model, args=transformers.TrainingArguments(**common), train_dataset=train,
                                       data_collator=collator, processing_class=tokenizer)
    return model, trainer, decode


def run_hf(case: Case, directory: Path, *, grouped: bool) -> dict[str, Any]:
    """Fine-tune the base weights with a Trainer, then evaluate and predict with the model it trained."""
    from texttune.backbones.aliases import resolve_alias

    prepared = texttune_features(case, directory)
    name = "grouped" if grouped else "default"
    model, trainer, decode = _hf_trainer(case, directory, prepared, weights=str(resolve_alias(case.backbone)), name=name,
                                         grouped=grouped)
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    max_new_tokens = prepared["task"].max_new_tokens
    evaluation = _hf_generation_passes(trainer, model, prepared, seq2seq=prepared["backbone"].family == "seq2seq",
                                       decode=decode, max_new_tokens=max_new_tokens, case=case)
    trainer.save_model(str(directory / f"hf-model-{name}"))
    train_features = prepared["features"]["train"]
    tokens = sum(len(ids) for ids in train_features["input_ids"])
    return {
        "train_examples": len(train_features), "train_tokens": tokens, "train_s": train_s,
        "train_examples_per_s": len(train_features) / train_s, "train_tokens_per_s": tokens / train_s, **evaluation,
        "max_new_tokens": max_new_tokens,
        "optimizer": str(trainer.args.optim), "eval_batch_size": trainer.args.per_device_eval_batch_size,
    }


def run_hf_same_weights(case: Case, directory: Path) -> dict[str, Any]:
    """The Hugging Face evaluation and prediction paths on texttune's fine-tuned weights: the same model as the
    texttune side, so with greedy decoding both generate the same tokens and the speed ratio is of equal work."""
    texttune_result = json.loads((directory / "texttune.json").read_text())
    prepared = texttune_features(case, directory)
    model, trainer, decode = _hf_trainer(case, directory, prepared, weights=texttune_result["model_dir"], name="same-weights")
    max_new_tokens = prepared["task"].max_new_tokens
    return {**_hf_generation_passes(trainer, model, prepared, seq2seq=prepared["backbone"].family == "seq2seq",
                                    decode=decode, max_new_tokens=max_new_tokens, case=case),
            "max_new_tokens": max_new_tokens, "weights": texttune_result["model_dir"]}


def _hf_generation_passes(trainer: Any, model: Any, prepared: dict[str, Any], *, seq2seq: bool, decode: Any,
                          max_new_tokens: int, case: Case) -> dict[str, Any]:
    """The Trainer's evaluation (loss pass + generation + metric) on the validation rows, then prediction on the
    test rows, as the Hugging Face examples run them; speeds in rows/s and generated tokens/s."""
    tokenizer = prepared["backbone"].tokenizer
    references = {s: [r["target"] for r in prepared["splits"][s]] for s in ("validation", "test")}
    val_features = prepared["features"]["validation"]
    t0 = time.perf_counter()
    if seq2seq:
        output = trainer.predict(val_features)  # loss + predict_with_generate, as evaluate() runs it
        eval_predictions = decode(output.predictions)
    else:
        trainer.evaluate(val_features)  # the loss pass
        eval_predictions = _generate_loop(model, tokenizer, prepared["prompts"]["validation"],
                                          batch_size=trainer.args.per_device_eval_batch_size, max_new_tokens=max_new_tokens)
    metric_name, eval_metric = score(case, eval_predictions, references["validation"])
    eval_s = time.perf_counter() - t0
    peak = peak_rss_mib()
    t0 = time.perf_counter()
    if seq2seq:
        # With labels, as the HF summarization example does (EncoderDecoderModel cannot predict without them).
        predictions = decode(trainer.predict(prepared["features"]["test"]).predictions)
    else:
        predictions = _generate_loop(model, tokenizer, prepared["prompts"]["test"],
                                     batch_size=trainer.args.per_device_eval_batch_size, max_new_tokens=max_new_tokens)
    predict_s = time.perf_counter() - t0
    return {
        "eval_rows": len(val_features), "eval_s": eval_s, "eval_examples_per_s": len(val_features) / eval_s,
        "metric_name": metric_name, "eval_metric": eval_metric,
        **generation_record("eval_generated", tokenizer, eval_predictions, eval_s, max_new_tokens=max_new_tokens),
        "predict_rows": len(predictions), "predict_s": predict_s, "predict_examples_per_s": len(predictions) / predict_s,
        "predict_metric": score(case, predictions, references["test"])[1], "peak_rss_mib": peak,
        **generation_record("predict_generated", tokenizer, predictions, predict_s, max_new_tokens=max_new_tokens),
    }


# -- TRL's SFTTrainer with its best-fit packing -------------------------------------
def run_trl(case: Case, directory: Path) -> dict[str, Any]:
    """Training only: ``trl.SFTTrainer`` with ``packing=True`` (best-fit decreasing, padding-free rows with
    position ids) on texttune's token ids and labels (the loss on the target only, as texttune's), rows of at
    most max_source + max_target tokens, as many rows a step as hold about ``batch_size`` examples."""
    import trl

    from texttune.backbones.aliases import resolve_alias

    prepared = texttune_features(case, directory)
    if prepared["backbone"].family == "seq2seq":
        raise SystemExit("trl's SFTTrainer trains decoder-only models; this case is encoder-decoder")
    train = prepared["features"]["train"]
    lengths = [len(ids) for ids in train["input_ids"]]
    capacity = case.max_source_length + case.max_target_length
    rows_per_step = max(1, round(case.batch_size * (sum(lengths) / len(lengths)) / capacity))
    columns = [c for c in train.column_names if c not in ("input_ids", "labels")]
    args = trl.SFTConfig(output_dir=str(directory / "trl-out"), per_device_train_batch_size=rows_per_step,
                         learning_rate=case.learning_rate, num_train_epochs=1, seed=SEED, report_to="none",
                         save_strategy="no", eval_strategy="no", logging_steps=5, disable_tqdm=True, use_cpu=True,
                         packing=True, packing_strategy="bfd", max_length=capacity)
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(str(resolve_alias(case.backbone)))
    trainer = trl.SFTTrainer(model=model, args=args, train_dataset=train.remove_columns(columns),
                             processing_class=prepared["backbone"].tokenizer)
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    return {"train_examples": len(lengths), "train_tokens": sum(lengths), "train_s": train_s,
            "train_examples_per_s": len(lengths) / train_s, "train_tokens_per_s": sum(lengths) / train_s,
            "peak_rss_mib": peak_rss_mib(), "trl": trl.__version__, "rows_per_step": rows_per_step,
            "packed_rows": len(trainer.train_dataset), "steps": trainer.state.global_step}


# -- CTranslate2 prediction from texttune's fine-tuned model ------------------------
def run_ct2(case: Case, directory: Path, *, compute_type: str) -> dict[str, Any]:
    import texttune

    texttune_result = json.loads((directory / "texttune.json").read_text())
    test = read_rows(directory / "test.jsonl")
    t0 = time.perf_counter()
    model = texttune.load(texttune_result["model_dir"], backend="ctranslate2", compute_type=compute_type)
    outputs = model.predict([test[0]["input"]])  # converts (once, cached) and loads
    load_s = time.perf_counter() - t0
    # Evaluation as `texttune evaluate --backend ctranslate2` runs it: generation and the metric, no loss pass.
    validation = read_rows(directory / "validation.jsonl")
    t0 = time.perf_counter()
    evaluated = model.predict([r["input"] for r in validation])
    metric_name, eval_metric = score(case, evaluated, [r["target"] for r in validation])
    eval_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    outputs = model.predict([r["input"] for r in test])
    predict_s = time.perf_counter() - t0
    metric_name, metric = score(case, outputs, [r["target"] for r in test])
    from transformers import AutoTokenizer

    tokenizer, max_new = AutoTokenizer.from_pretrained(texttune_result["model_dir"]), texttune_result["max_new_tokens"]
    return {**generation_record("eval_generated", tokenizer, evaluated, eval_s, max_new_tokens=max_new),
            **generation_record("predict_generated", tokenizer, outputs, predict_s, max_new_tokens=max_new),
            "eval_rows": len(validation), "eval_s": eval_s, "eval_examples_per_s": len(validation) / eval_s,
            "eval_metric": eval_metric, "predict_rows": len(test), "predict_s": predict_s,
            "predict_examples_per_s": len(test) / predict_s, "metric_name": metric_name, "predict_metric": metric,
            "convert_and_load_s": load_s, "peak_rss_mib": peak_rss_mib()}


# -- model FLOPs of the training set -------------------------------------------------
def run_flops(case: Case, directory: Path, *, threads: int) -> dict[str, Any]:
    from flops import FlopModel, matmul_peak_flops, probe_model

    from texttune.backbones.aliases import resolve_alias

    prepared = texttune_features(case, directory)
    family = prepared["backbone"].family
    model = probe_model(str(resolve_alias(case.backbone)), auto_class=prepared["task"].auto_class(family))
    counter = FlopModel(model, family=family)
    features = prepared["features"]["train"]
    sources = [len(ids) for ids in features["input_ids"]]
    targets = [len(ids) for ids in features["labels"]]
    return {"train_flops": counter.total(sources, targets), "fit_error": counter.fit_error, "coefficients": counter.coefficients,
            "peak_flops": matmul_peak_flops(threads=threads), "threads": threads, "probe_device": str(counter.device)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", required=True, choices=sorted(CASES))
    parser.add_argument("--side", required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    case = CASES[args.case]
    runners = {
        "texttune": lambda: run_texttune(case, args.dir),
        "texttune-packed": lambda: run_texttune(case, args.dir, packing=True),
        "trl-packed": lambda: run_trl(case, args.dir),
        "hf-default": lambda: run_hf(case, args.dir, grouped=False),
        "hf-grouped": lambda: run_hf(case, args.dir, grouped=True),
        "hf-same-weights": lambda: run_hf_same_weights(case, args.dir),
        "ct2-int8": lambda: run_ct2(case, args.dir, compute_type="int8"),
        "ct2-float32": lambda: run_ct2(case, args.dir, compute_type="float32"),
        "flops": lambda: run_flops(case, args.dir, threads=args.threads),
    }
    result = {"side": args.side, **runners[args.side]()}
    args.out.write_text(json.dumps(result, indent=2, default=str))
    if args.side == "texttune":  # the CTranslate2 sides predict with this run's model
        (args.dir / "texttune.json").write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
