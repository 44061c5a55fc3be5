"""Runs longer than one epoch, with an evaluation inside ``fit`` after each epoch, for every task.

Why: the two-step runs of the other tests stop before the first end-of-epoch
validation, so whatever happens only there (logging the evaluation's metrics
into Lightning, the checkpoints it writes, the next epoch's data order) went
untested, and ``texttune train masked-lm`` died at its first epoch end with
Lightning's "You called self.log(val_loss, ...) twice ... with different
arguments": perplexity tasks report a metric named ``loss``, logged a second
time as ``val_loss``. Each run here trains two short epochs on a handful of rows
of a tiny model and checks what an evaluation leaves behind: evals.jsonl,
metrics.csv, metrics.json and best.ckpt.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from run_files import read_json, read_jsonl

DATA = Path(__file__).resolve().parents[1] / "data"
#: Small and quick: no baselines, a few validation rows, one evaluation per epoch; short generations (SHORT).
FAST: dict[str, Any] = {"progress_bar": False, "baselines": False, "max_eval_samples": 3, "generation_batch_size": 4,
                        "tensorboard": False}
SHORT: dict[str, Any] = {"max_new_tokens": 6}  # an option of the generating tasks only


def _rows(name: str, count: int, start: int = 0) -> list[dict[str, Any]]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[start : start + count]]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _documents(count: int, start: int = 0) -> list[dict[str, str]]:
    """Plain-text rows for the language-modelling tasks: the first sentences of sample documents (short chunks)."""
    return [{"text": r["document"][:200]} for r in _rows("summarization.jsonl", count, start)]


#: task -> (API class name, tiny model kind, constructor keywords, () -> (training rows, validation rows)).
CASES: dict[str, tuple[str, str, dict[str, Any], Callable[[], tuple[list[dict[str, Any]], list[dict[str, Any]]]]]] = {
    "summarization": ("Summarization", "t5", {"options": SHORT},
                      lambda: (_rows("summarization.jsonl", 8), _rows("summarization-val.jsonl", 3))),
    "translation": ("Translation", "bart", {"options": SHORT},
                    lambda: (_rows("translation.jsonl", 8), _rows("translation.jsonl", 3, start=30))),
    "text2text": ("Text2Text", "t5", {"prefix": "generate question: ", "options": SHORT},
                  lambda: (_rows("qg.jsonl", 8), _rows("qg.jsonl", 3, start=20))),
    "masked-lm": ("MaskedLM", "bert", {"max_length": 16},
                  lambda: (_documents(4), _documents(2, start=30))),
    "causal-lm": ("CausalLM", "llama", {"max_length": 16, "options": SHORT},
                  lambda: (_documents(4), _documents(2, start=30))),
    "question-answering": ("QuestionAnswering", "bert", {"max_length": 96, "stride": 24},
                           lambda: (_rows("squad.jsonl", 8), _rows("squad.jsonl", 3, start=20))),
    "token-classification": ("TokenClassification", "bert", {},
                             lambda: (_rows("ner.jsonl", 8), _rows("ner.jsonl", 3, start=30))),
    "text-classification": ("TextClassification", "bert", {"max_length": 32, "options": {"label_column": "section"}},
                            lambda: (_rows("classification.jsonl", 8), _rows("classification.jsonl", 3, start=8))),
}


def _csv_rows(run: Path) -> list[dict[str, str]]:
    with (run / "logs" / "metrics.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("task_name", list(CASES))
def test_two_epochs_with_an_evaluation_after_each(task_name: str, tiny_model_dir: Callable[[str], Path],
                                                  tmp_path: Path) -> None:
    import texttune

    class_name, kind, keywords, data = CASES[task_name]
    train, validation = data()
    keywords = {**keywords, "options": {**FAST, **keywords.get("options", {})}}
    model = getattr(texttune, class_name)(backbone=str(tiny_model_dir(kind)), **keywords)
    result = model.fit(train=_write(tmp_path / "train.jsonl", train), validation=_write(tmp_path / "val.jsonl", validation),
                       output_dir=tmp_path / "run", max_epochs=2, batch_size=4)
    run, metrics = result.run_dir, result.metrics
    task = model.task

    # Two epochs of the same number of steps, evaluated inside fit at the end of each.
    steps = metrics["steps"]
    assert steps >= 4 and steps % 2 == 0, steps  # at least two optimizer steps per epoch
    evals = read_jsonl(run / "evals.jsonl")
    assert [e["step"] for e in evals] == [steps // 2, steps]
    assert all(set(task.metric_names) <= set(e) for e in evals), evals
    assert metrics["timing"]["evaluations"] == 2
    # Every evaluation logged each metric once, under one name: val_loss and val_<metric> in two CSV rows.
    logged = [r for r in _csv_rows(run) if r.get("val_loss")]
    assert len(logged) == 2
    for row, evaluation in zip(logged, evals):
        assert all(row.get(f"val_{name}") for name in task.metric_names), row
        assert float(row[f"val_{task.main_metric}"]) == pytest.approx(evaluation[task.main_metric], rel=1e-4, abs=1e-4)
        if "loss" in evaluation:  # perplexity tasks: val_loss is the loss their perplexity is exp() of
            assert float(row["val_loss"]) == pytest.approx(evaluation["loss"], rel=1e-5)

    # The run finished and says so, with the best of the two evaluations as its checkpoint.
    assert read_json(run / "status.json")["state"] == "completed"
    assert set(task.metric_names) <= set(metrics["fine_tuned"])
    assert metrics["best_checkpoint"] and Path(metrics["best_checkpoint"]).is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (result.model_dir / "texttune.json").is_file()


def test_masked_lm_cli_with_max_steps_past_the_first_epoch(tiny_model_dir: Callable[[str], Path], tmp_path: Path,
                                                          cli: Callable[..., tuple[int, str, str]]) -> None:
    """The reported command's shape: --max-steps longer than an epoch, so the first epoch end evaluates in fit."""
    train = _write(tmp_path / "train.jsonl", _documents(4))
    code, _, err = cli("-q", "train", "masked-lm", "--backbone", tiny_model_dir("bert"), "--train-file", train,
                       "--text-column", "text", "--max-length", "16", "--batch-size", "4", "--max-steps", "5",
                       "--max-eval-samples", "2", "--no-progress-bar", "--no-baselines", "--no-tensorboard",
                       "--seed", "1", "--output-dir", tmp_path / "run")
    assert code == 0, err
    metrics = read_json(tmp_path / "run" / "metrics.json")
    assert metrics["steps"] == 5
    evals = read_jsonl(tmp_path / "run" / "evals.jsonl")
    assert evals and all(e["step"] < 5 for e in evals)  # evaluated at epoch ends inside fit, before step 5
    assert set(metrics["fine_tuned"]) == {"perplexity", "loss"}
