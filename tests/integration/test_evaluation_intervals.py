"""Honest evaluation on tiny models: bootstrap intervals, paired tests, --test-file, runs compare's paired test."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from run_files import read_json, read_jsonl

DATA = Path(__file__).resolve().parents[1] / "data"
TINY_RUN = ["--max-steps", "4", "--batch-size", "8", "--eval-every-steps", "2", "--no-progress-bar", "--no-tensorboard",
            "--samples-per-eval", "0", "--bootstrap", "200", "--label-column", "section"]
Cli = Callable[..., tuple[int, str, str]]


def _rows(name: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Debian package sections: the bundled train and validation files, a test file, validation's first 12 rows."""
    folder = tmp_path_factory.mktemp("splits")
    parts = {"test": _rows("classification.jsonl")[:10], "validation_small": _rows("classification-val.jsonl")[:12]}
    for name, part in parts.items():
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    return {"train": DATA / "classification.jsonl", "validation": DATA / "classification-val.jsonl",
            **{name: folder / f"{name}.jsonl" for name in parts}}


def _train(bert: Path, splits: dict[str, Path], out: Path, *extra: str, validation: str = "validation") -> Path:
    from texttune.cli.main import main

    code = main(["-q", "train", "text-classification", "--backbone", str(bert), "--train-file", str(splits["train"]),
                 "--validation-file", str(splits[validation]), "--output-dir", str(out), *TINY_RUN, *extra])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def runs(tiny_model_dir: Callable[[str], Path], splits: dict[str, Path],
         tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder, bert = tmp_path_factory.mktemp("runs"), tiny_model_dir("bert")
    return {"tested": _train(bert, splits, folder / "tested", "--test-file", str(splits["test"])),
            "plain": _train(bert, splits, folder / "plain"),
            "other_rows": _train(bert, splits, folder / "other", validation="validation_small")}


def test_metrics_json_has_intervals_paired_tests_and_the_rows_hash(runs: dict[str, Path]) -> None:
    metrics = read_json(runs["plain"] / "metrics.json")
    assert metrics["bootstrap"]["resamples"] == 200 and metrics["bootstrap"]["seed"] == 42
    assert metrics["evaluation_data"]["validation"]["rows"] == 20
    assert metrics["evaluation_data"]["validation"]["sha256"].startswith("sha256:")
    for section in ("zero_shot", "fine_tuned"):
        for name, value in metrics[section].items():
            bounds = metrics["intervals"][section][name]
            assert bounds["low"] - 1e-3 <= value <= bounds["high"] + 1e-3, (section, name)
    assert set(metrics["baselines"]) == {"majority", "tfidf_linear"}
    for baseline in metrics["baselines"]:
        assert set(metrics["intervals"]["baselines"][baseline]) <= set(metrics["baselines"][baseline])
        assert "macro_f1" in metrics["intervals"]["baselines"][baseline]
        assert len(read_jsonl(runs["plain"] / f"predictions_baseline_{baseline}.jsonl")) == 20
    assert "fit_s" not in metrics["intervals"]["baselines"]["tfidf_linear"]  # not a metric of the rows
    majority = metrics["intervals"]["baselines"]["majority"]["accuracy"]
    assert majority["low"] < 70 < majority["high"]  # 14 of 20 rows are python
    f1 = metrics["paired"]["zero_shot"]["macro_f1"]
    assert f1["difference"] == pytest.approx(metrics["fine_tuned"]["macro_f1"] - metrics["zero_shot"]["macro_f1"], abs=1e-3)
    assert 0 <= f1["p_value"] <= 1 and isinstance(f1["significant"], bool)
    assert "p_value" not in metrics["paired"]["zero_shot"]["support_python"]  # no direction: no test
    assert set(metrics["paired"]["baselines"]) == {"majority", "tfidf_linear"}


def test_test_file_is_scored_once_with_its_section_and_never_picks_the_checkpoint(runs: dict[str, Path]) -> None:
    tested, plain = read_json(runs["tested"] / "metrics.json"), read_json(runs["plain"] / "metrics.json")
    assert set(tested["test"]) == set(tested["fine_tuned"]) and set(tested["intervals"]["test"]) == set(tested["test"])
    assert tested["evaluation_data"]["test"]["rows"] == 10
    assert tested["evaluation_data"]["test"]["sha256"] != tested["evaluation_data"]["validation"]["sha256"]
    assert len(read_jsonl(runs["tested"] / "predictions_test.jsonl")) == 10
    assert "test" not in plain
    # the same run without the test file: the same evaluations, the same best checkpoint, the same final scores
    assert read_jsonl(runs["tested"] / "evals.jsonl") == read_jsonl(runs["plain"] / "evals.jsonl")
    assert Path(tested["best_checkpoint"]).name == Path(plain["best_checkpoint"]).name
    assert tested["fine_tuned"] == plain["fine_tuned"]


def test_the_train_table_shows_intervals(runs: dict[str, Path]) -> None:
    from texttune.runs.summary import comparison_table

    table = comparison_table(read_json(runs["tested"] / "metrics.json"))
    assert "95% bootstrap interval" in table and "test" in table.splitlines()[0]
    row = next(line for line in table.splitlines() if line.startswith("macro_f1 "))
    assert row.count("[") == 5  # two baselines, zero-shot, fine-tuned, test: each with its interval
    assert "fine-tuned vs zero-shot: macro_f1" in table and "fine-tuned vs baseline majority: macro_f1" in table


def test_runs_compare_pairs_runs_on_the_same_rows(runs: dict[str, Path], cli: Cli, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(runs["plain"], copy)
    code, out, err = cli("runs", "compare", runs["plain"], copy)
    assert code == 0, err
    assert "paired bootstrap, plain - copy on the same 20 validation rows" in out
    assert "macro_f1: +0.00 [0.00, 0.00], p = 1.000, not significant" in out
    code, out, err = cli("runs", "compare", runs["plain"], copy, "--json")
    assert json.loads(out)["paired"]["tests"]["accuracy"]["significant"] is False


def test_runs_compare_refuses_runs_on_different_rows(runs: dict[str, Path], cli: Cli) -> None:
    code, out, err = cli("runs", "compare", runs["plain"], runs["other_rows"])
    assert code == 2 and out == ""
    assert "were evaluated on different rows (20 rows sha256:" in err and "--unpaired" in err
    assert len(err.strip().splitlines()) == 1
    code, out, _ = cli("runs", "compare", runs["plain"], runs["other_rows"], "--unpaired")
    assert code == 0 and "paired bootstrap" not in out


def test_a_run_against_a_clearly_worse_one_is_significant(runs: dict[str, Path], cli: Cli, tmp_path: Path) -> None:
    """The same rows, predictions replaced by the references (a perfect run) against the real one."""
    perfect = tmp_path / "perfect"
    shutil.copytree(runs["plain"], perfect)
    records = read_jsonl(perfect / "predictions.jsonl")
    (perfect / "predictions.jsonl").write_text("".join(json.dumps({**r, "prediction": r["reference"]}) + "\n" for r in records))
    code, out, err = cli("runs", "compare", perfect, runs["plain"], "--json")
    assert code == 0, err
    test = json.loads(out)["paired"]["tests"]["accuracy"]
    assert test["gain"] > 0 and test["p_value"] < 0.05 and test["significant"] is True


def test_test_file_cannot_be_the_validation_file(tiny_model_dir: Callable[[str], Path], splits: dict[str, Path],
                                                 cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli("train", "text-classification", "--backbone", tiny_model_dir("bert"), "--train-file", splits["train"],
                       "--validation-file", splits["validation"], "--test-file", splits["validation"],
                       "--output-dir", tmp_path / "run", *TINY_RUN)
    assert code == 2 and "--test-file" in err and "is the --validation-file" in err


def test_summarization_pairs_with_lead_k_and_its_intervals_come_from_per_row_rouge(
        tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    from texttune.cli.main import main

    rows = _rows("summarization.jsonl")
    for name, part in (("train", rows[:-8]), ("val", rows[-8:])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    out = tmp_path / "run"
    assert main(["-q", "train", "summarization", "--backbone", str(tiny_model_dir("t5")), "--train-file",
                 str(tmp_path / "train.jsonl"), "--validation-file", str(tmp_path / "val.jsonl"), "--output-dir", str(out),
                 "--max-steps", "2", "--batch-size", "4", "--no-progress-bar", "--samples-per-eval", "0",
                 "--bootstrap", "100"]) == 0
    metrics = read_json(out / "metrics.json")
    (lead,) = metrics["baselines"]
    bounds = metrics["intervals"]["baselines"][lead]["rougeL"]
    assert bounds["low"] <= metrics["baselines"][lead]["rougeL"] <= bounds["high"] and bounds["low"] < bounds["high"]
    test = metrics["paired"]["baselines"][lead]["rougeL"]
    assert test["difference"] == pytest.approx(metrics["fine_tuned"]["rougeL"] - metrics["baselines"][lead]["rougeL"],
                                               abs=1e-3)


def test_the_test_split_is_in_the_data_checks(runs: dict[str, Path], splits: dict[str, Path], cli: Cli,
                                              tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    """Its rows are training rows here: every one a leak, which --dedupe removes from train (never from test)."""
    report = read_json(runs["tested"] / "data_report.json")
    assert report["splits"]["test"]["leaks"]["count"] == 10
    code, _, err = cli("train", "text-classification", "--backbone", tiny_model_dir("bert"), "--train-file", splits["train"],
                       "--validation-file", splits["validation"], "--test-file", splits["test"], "--dedupe",
                       "--output-dir", tmp_path / "run", *TINY_RUN, "--bootstrap", "0", "--no-baselines")
    assert code == 0, err
    assert read_json(tmp_path / "run" / "data_report.json")["dedupe"]["removed_train_rows"] >= 10
    assert "validation or test data" in err and "intervals" not in read_json(tmp_path / "run" / "metrics.json")
