"""What a run directory records: every file present and well-formed, also after a crash."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from run_files import read_json, read_jsonl

DATA = Path(__file__).resolve().parents[1] / "data"
TINY_RUN = ["--max-steps", "4", "--batch-size", "4", "--max-eval-samples", "6", "--eval-every-steps", "2",
            "--no-progress-bar", "--samples-per-eval", "3"]


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from texttune.cli.main import main

    run = tmp_path_factory.mktemp("records") / "run"
    code = main(["-q", "train", "summarization", "--backbone", str(tiny_model_dir("t5")), "--train-file",
                 str(DATA / "summarization.jsonl"), "--output-dir", str(run), *TINY_RUN])
    assert code == 0
    return run


def test_config_environment_status(finished_run: Path) -> None:
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert config["task"] == "summarization" and config["max_steps"] == 4 and config["samples_per_eval"] == 3
    env = read_json(finished_run / "environment.json")
    assert env["packages"]["torch"] and env["seed"] == 42 and env["cpu_count"] >= 1
    # what the loaded model runs with, as asked (backbones/attention.py): T5 has no FlashAttention, so SDPA
    assert env["training_device"] == "cpu"
    assert env["attention"]["implementation"] == env["attention"]["requested"] == "sdpa"
    assert "does not support FlashAttention" in env["attention"]["reason"]
    status = read_json(finished_run / "status.json")
    assert status["state"] == "completed" and status["steps"] == 4
    assert status["duration_s"] >= 0 and status["started"] <= status["finished"]


def test_data_statistics_per_split(finished_run: Path) -> None:
    stats = read_json(finished_run / "data_stats.json")
    for split in ("train", "validation"):
        lengths = stats[split]["lengths"]
        for side in ("input", "target"):
            dist = lengths[side]
            assert dist["count"] == stats[split]["rows"]
            assert dist["min"] <= dist["p50"] <= dist["p90"] <= dist["max"]
            assert sum(dist["histogram"]["counts"]) == dist["count"]
            assert len(dist["histogram"]["edges"]) == len(dist["histogram"]["counts"]) + 1
        assert "inputs_truncated" in stats[split] and "targets_truncated" in stats[split]


def test_model_summary(finished_run: Path) -> None:
    summary = read_json(finished_run / "model_summary.json")
    assert summary["architecture"] == "T5ForConditionalGeneration" and summary["family"] == "seq2seq"
    assert summary["attn_implementation"] == "sdpa"
    assert 0 < summary["trainable_parameters"] <= summary["parameters"]
    weights = (finished_run / "model" / "model.safetensors").stat().st_size
    assert summary["size_on_disk_bytes"] > weights


def test_metrics_per_step_and_per_evaluation(finished_run: Path) -> None:
    with (finished_run / "logs" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    columns = set(rows[0])
    assert {"train_loss", "lr", "examples_per_s", "tokens_per_s", "val_loss", "val_rougeL"} <= columns
    train_rows = [r for r in rows if r["train_loss"]]
    assert train_rows and all(float(r["examples_per_s"]) > 0 and float(r["tokens_per_s"]) > 0 for r in train_rows)
    evals = read_jsonl(finished_run / "evals.jsonl")
    assert [e["step"] for e in evals] == [2, 4] and all("rougeL" in e for e in evals)
    for e in evals:  # sample predictions at each evaluation
        samples = read_jsonl(finished_run / "samples" / f"step-{e['step']:06d}.jsonl")
        assert len(samples) == 3 and {"input", "reference", "prediction"} <= set(samples[0])
    assert list((finished_run / "logs" / "tensorboard").glob("events.out.tfevents.*"))


def test_plots_are_written(finished_run: Path) -> None:
    for name in ("loss.png", "lr.png", "lengths.png"):
        png = finished_run / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_a_crashed_run_still_describes_itself(tiny_model_dir: Callable[[str], Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Any]) -> None:
    from texttune.tasks.text2text import SummarizationTask

    original, calls = SummarizationTask.loss, []

    def failing_loss(self: Any, model: Any, batch: Any) -> Any:
        calls.append(1)
        if len(calls) == 4:  # training steps 1 and 2, then the evaluation's loss, then step 3 fails
            raise RuntimeError("simulated crash in step 3")
        return original(self, model, batch)

    monkeypatch.setattr(SummarizationTask, "loss", failing_loss)
    run = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        cli("-q", "train", "summarization", "--backbone", tiny_model_dir("t5"), "--train-file",
            DATA / "summarization.jsonl", "--output-dir", run, *TINY_RUN, "--max-eval-samples", "1")
    status = read_json(run / "status.json")
    assert status["state"] == "failed" and "simulated crash" in status["error"] and "duration_s" in status
    for name in ("config.yaml", "environment.json", "data_stats.json", "model_summary.json", "metrics.json"):
        assert (run / name).stat().st_size > 0, name
    assert "zero_shot" in read_json(run / "metrics.json")
    with (run / "logs" / "metrics.csv").open() as handle:
        assert [r for r in csv.DictReader(handle) if r["train_loss"]], "the steps before the crash are logged"
    assert not (run / "model").exists()


def test_label_distribution_for_token_classification(tiny_model_dir: Callable[[str], Path], tmp_path: Path,
                                                     cli: Callable[..., Any]) -> None:
    run = tmp_path / "ner"
    code, _, err = cli("-q", "train", "token-classification", "--backbone", tiny_model_dir("bert"), "--train-file",
                       DATA / "ner.conll", "--output-dir", run, *TINY_RUN, "--no-tensorboard")
    assert code == 0, err
    stats = read_json(run / "data_stats.json")
    assert stats["train"]["labels"]["O"] > 0 and any(k.startswith("B-") for k in stats["train"]["labels"])
    assert "target" in stats["train"]["lengths"]
    assert not (run / "logs" / "tensorboard").exists()


def test_mlflow_logger_when_asked(tiny_model_dir: Callable[[str], Path], tmp_path: Path, cli: Callable[..., Any],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow-skinny has no SQL store
    uri = (tmp_path / "mlruns").as_uri()
    run = tmp_path / "run"
    code, _, err = cli("-q", "train", "summarization", "--backbone", tiny_model_dir("t5"), "--train-file",
                       DATA / "summarization.jsonl", "--output-dir", run, *TINY_RUN, "--mlflow", "--mlflow-tracking-uri", uri)
    assert code == 0, err
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    [experiment] = [e for e in client.search_experiments() if e.name == "texttune-summarization"]
    [logged] = client.search_runs([experiment.experiment_id])
    assert logged.data.params["max_steps"] == "4" and "train_loss" in logged.data.metrics
    assert "val_rougeL" in logged.data.metrics


def test_missing_tracking_packages_are_clear_errors(tiny_model_dir: Callable[[str], Path], tmp_path: Path,
                                                    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import texttune.engine.loggers as loggers

    monkeypatch.setattr(loggers, "_installed", lambda module: False)
    code, _, err = cli("-q", "train", "summarization", "--backbone", tiny_model_dir("t5"), "--train-file",
                       DATA / "summarization.jsonl", "--output-dir", tmp_path / "run", *TINY_RUN)
    assert code == 2 and "--no-tensorboard" in err and err.count("\n") == 1


def test_batch_size_auto_keeps_the_effective_batch_and_is_recorded(tiny_model_dir: Callable[[str], Path], tmp_path: Path,
                                                                   cli: Callable[..., Any]) -> None:
    run = tmp_path / "auto"
    code, _, err = cli("-q", "train", "summarization", "--backbone", tiny_model_dir("t5"), "--train-file",
                       DATA / "summarization.jsonl", "--output-dir", run, *TINY_RUN, "--batch-size", "auto",
                       "--effective-batch-size", "12", "--no-tensorboard")
    assert code == 0, err
    chosen = read_json(run / "batch_size.json")
    found = chosen["chosen"]
    assert found & (found - 1) == 0 and found >= 1, "a power of two"
    assert [t["batch_size"] for t in chosen["trials"] if t["fits"]][-1] == found
    assert chosen["batch_size"] * chosen["accumulate"] == 12 and chosen["batch_size"] <= found
    assert chosen["longest_tokens"] >= read_json(run / "data_stats.json")["train"]["lengths"]["input"]["max"]
    assert read_json(run / "status.json")["steps"] == 4
    # the trainer (built before the search) trained with the accumulation the search settled on, and
    # evaluated every 2 optimizer steps (not every 2 batches)
    assert read_json(run / "metrics.json")["timing"]["train_examples"] == 4 * 12
    assert [e["step"] for e in read_jsonl(run / "evals.jsonl")] == [2, 4]
    assert yaml.safe_load((run / "config.yaml").read_text())["batch_size"] == "auto"  # the request, as given


def test_timing_and_feature_cache(finished_run: Path) -> None:
    metrics = read_json(finished_run / "metrics.json")
    timing = metrics["timing"]
    assert timing["evaluations"] == 2  # steps 2 and 4
    assert timing["train_examples"] == 4 * 4 and timing["train_tokens"] > timing["train_examples"]
    assert 0 < timing["train_s"] <= timing["fit_s"] and 0 < timing["eval_s"] < timing["fit_s"]
    assert timing["train_examples_per_s"] > 0 and timing["baselines_s"] > 0
    assert 0 <= timing["train_padding"] < 1
    cached = sorted(p.name.split("-")[0] for p in (finished_run / "features").iterdir())
    assert cached == ["train", "validation"]


def test_final_metrics_are_the_best_evaluation_and_reuse_it_when_it_was_the_last(finished_run: Path) -> None:
    metrics = read_json(finished_run / "metrics.json")
    evals = read_jsonl(finished_run / "evals.jsonl")
    best = max(evals, key=lambda e: e["rougeL"])  # ModelCheckpoint keeps the first of equal scores, like max()
    # Restoring the best checkpoint and generating again would give exactly that evaluation's scores.
    assert metrics["fine_tuned"] == {k: v for k, v in best.items() if k != "step"}
    reused = best["step"] == evals[-1]["step"]
    assert metrics["timing"]["final_eval_reused"] == reused
    if reused:
        samples = read_jsonl(finished_run / "samples" / f"step-{best['step']:06d}.jsonl")
        assert read_jsonl(finished_run / "predictions.jsonl")[: len(samples)] == samples


def test_memory_is_recorded_and_reported(finished_run: Path, tmp_path: Path) -> None:
    from texttune.runs.report import write_report

    memory = read_json(finished_run / "metrics.json")["memory"]
    assert memory["device"] == "cpu" and memory["peak_rss_bytes"] > 2**20
    assert memory["peak_gpu_bytes"] is None and memory["peak_gpu_reserved_bytes"] is None  # no CUDA here
    html = write_report(finished_run, output=tmp_path / "report.html").read_text()
    assert "<h3>Memory</h3>" in html and "peak resident memory (RSS) of the process" in html
    assert f"{memory['peak_rss_bytes']:,} bytes" in html and "none (no CUDA device)" in html
    assert "sdpa" in html  # the attention implementation, in the model and environment sections


def test_data_report_of_the_splits_as_used(finished_run: Path) -> None:
    report = read_json(finished_run / "data_report.json")
    stats = read_json(finished_run / "data_stats.json")
    assert set(report["splits"]) == {"train", "validation"} and report["reference"] == "train"
    for split in ("train", "validation"):
        entry = report["splits"][split]
        assert entry["rows"] == stats[split]["rows"]  # checked after the split and --max-eval-samples
        assert {"duplicates", "conflicts", "lengths", "empty_cells"} <= set(entry)
        assert set(report["truncation"][split]) == {"inputs_truncated", "targets_truncated"}
    assert {"leaks", "near_duplicates", "conflicts_with_reference"} <= set(report["splits"]["validation"])
