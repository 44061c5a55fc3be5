"""Finding and comparing runs (``texttune runs``), on run directories written by the test.

Why: the listing is how users find their runs again after days, including the
ones that crashed, are still running or were damaged; one unreadable file must
never hide the others. The comparison must show exactly what changed and rank
metrics the right way round (perplexity and loss: lower is better).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from texttune.errors import ConfigError
from texttune.runs.catalog import find_runs, format_duration, format_runs, read_run, runs_json
from texttune.runs.compare import NOT_SET, compare_runs, format_comparison

BASE_CONFIG: dict[str, Any] = {"task": "summarization", "train_file": "/data/news/train.jsonl", "backbone": "t5-small",
                               "output_dir": "x", "batch_size": 8, "learning_rate": 5e-5, "max_steps": 100, "seed": 42}


def make_run(path: Path, *, config: dict[str, Any] | None = None, status: dict[str, Any] | str | None = None,
             metrics: dict[str, Any] | None = None, evals: list[dict[str, Any]] | None = None) -> Path:
    """A run directory with the given files (a str status is written verbatim, to corrupt it)."""
    path.mkdir(parents=True)
    if config is not None:
        (path / "config.yaml").write_text(yaml.safe_dump({**config, "output_dir": str(path)}), encoding="utf-8")
    if status is not None:
        (path / "status.json").write_text(status if isinstance(status, str) else json.dumps(status), encoding="utf-8")
    if metrics is not None:
        (path / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    if evals is not None:
        (path / "evals.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals), encoding="utf-8")
    return path


def done(started: str, duration: float, steps: int = 100, **extra: Any) -> dict[str, Any]:
    return {"state": "completed", "task": "summarization", "backbone": "t5-small", "started": started,
            "duration_s": duration, "steps": steps, **extra}


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    """Six runs: completed, failed, running, corrupt status.json, causal-lm (lower is better), no status yet."""
    root = tmp_path / "runs"
    make_run(root / "news-lr5e-5", config=BASE_CONFIG, status=done("2026-01-01T10:00:00", 192),
             metrics={"zero_shot": {"rougeL": 10.0, "rouge1": 12.0}, "fine_tuned": {"rougeL": 25.5, "rouge1": 30.0}, "steps": 100},
             evals=[{"step": 50, "rougeL": 20.0}, {"step": 100, "rougeL": 25.5}])
    make_run(root / "news-oom", config=BASE_CONFIG,
             status={"state": "failed", "task": "summarization", "backbone": "t5-small", "started": "2026-01-01T11:00:00",
                     "finished": "2026-01-01T11:00:40", "error": "RuntimeError: out of memory\n(second line)"})
    started = (datetime.now() - timedelta(seconds=90)).isoformat(timespec="seconds")
    make_run(root / "group" / "news-running", config=BASE_CONFIG,
             status={"state": "running", "task": "summarization", "backbone": "/models/local-t5", "started": started},
             metrics={"zero_shot": {"rougeL": 9.0}},
             evals=[{"step": 10, "rougeL": 12.0}, {"step": 20, "rougeL": 15.0}, {"step": 30, "rougeL": 14.0}])
    (root / "group" / "news-running" / "evals.jsonl").open("a").write('{"step": 40, "rou')  # crashed mid-line
    make_run(root / "broken", config={**BASE_CONFIG, "task": "translation"}, status="{not json")
    make_run(root / "wiki-clm", config={**BASE_CONFIG, "task": "causal-lm", "train_file": "wiki.txt"},
             status={**done("2026-01-01T09:00:00", 3700), "task": "causal-lm"},
             metrics={"zero_shot": {"perplexity": 80.0, "loss": 4.4}, "fine_tuned": {"perplexity": 30.25, "loss": 3.4}})
    make_run(root / "just-started", config=BASE_CONFIG)
    return root


def by_name(root: Path) -> dict[str, Any]:
    return {r.name: r for r in find_runs(root)}


def test_find_runs_reads_each_run(runs_root: Path) -> None:
    runs = by_name(runs_root)
    assert set(runs) == {"news-lr5e-5", "news-oom", "group/news-running", "broken", "wiki-clm", "just-started"}
    ok = runs["news-lr5e-5"]
    assert (ok.task, ok.backbone, ok.data, ok.status, ok.steps) == ("summarization", "t5-small", "train.jsonl", "completed", 100)
    assert (ok.metric, ok.zero_shot, ok.best, ok.best_from, ok.higher_is_better) == ("rougeL", 10.0, 25.5, "fine_tuned", True)
    assert (ok.started, ok.duration_s, ok.error, ok.problems) == ("2026-01-01T10:00:00", 192, None, ())
    failed = runs["news-oom"]
    assert failed.status == "failed" and failed.error.startswith("RuntimeError: out of memory")
    assert failed.duration_s == 40 and failed.best is None and failed.steps is None


def test_running_run_shows_best_evaluation_so_far_and_elapsed_time(runs_root: Path) -> None:
    running = by_name(runs_root)["group/news-running"]
    assert running.status == "running"
    assert (running.best, running.best_from, running.zero_shot) == (15.0, "evals", 9.0)
    assert running.steps == 30  # the last complete evaluation line; the half-written one is skipped
    assert 89 <= running.duration_s < 120


def test_corrupt_status_is_listed_as_unreadable(runs_root: Path) -> None:
    broken = by_name(runs_root)["broken"]
    assert broken.status == "unreadable"
    assert broken.task == "translation" and broken.metric == "bleu"  # still known from config.yaml
    assert broken.problems == ("status.json unreadable (JSONDecodeError)",)
    assert by_name(runs_root)["just-started"].status == "unknown"


def test_lower_is_better_metric_takes_the_minimum(tmp_path: Path) -> None:
    run = make_run(tmp_path / "clm", config={**BASE_CONFIG, "task": "causal-lm"},
                   status={"state": "interrupted", "task": "causal-lm"},
                   evals=[{"step": 1, "perplexity": 50.0}, {"step": 2, "perplexity": 30.0}, {"step": 3, "perplexity": 40.0}])
    info = read_run(run)
    assert (info.metric, info.higher_is_better, info.best, info.best_from) == ("perplexity", False, 30.0, "evals")


def test_listing_is_sorted_by_start_time(runs_root: Path) -> None:
    names = [r.name for r in find_runs(runs_root)]
    assert names.index("wiki-clm") < names.index("news-lr5e-5") < names.index("news-oom") < names.index("group/news-running")


def test_format_runs_table(runs_root: Path) -> None:
    text = format_runs(find_runs(runs_root), root=runs_root)
    lines = text.splitlines()
    assert lines[0].split() == ["run", "task", "backbone", "data", "status", "steps", "metric", "zero-shot", "->",
                                "fine-tuned", "duration", "started"]
    row = next(line for line in lines if line.startswith("news-lr5e-5 "))
    assert row.split() == ["news-lr5e-5", "summarization", "t5-small", "train.jsonl", "completed", "100", "rougeL",
                           "10.00", "->", "25.50", "3m12s", "2026-01-01", "10:00"]
    clm = next(line for line in lines if line.startswith("wiki-clm "))
    assert "perplexity  80.00 -> 30.25" in clm and "1h01m" in clm and "wiki.txt" in clm
    running = next(line for line in lines if line.startswith("group/news-running "))
    assert "9.00 -> 15.00 (best eval)" in running and "local-t5" in running and "/models" not in running
    oom = next(line for line in lines if line.startswith("news-oom "))
    assert oom.split()[4:8] == ["failed", "-", "rougeL", "-"] and "40s" in oom
    assert "news-oom: failed: RuntimeError: out of memory" in text and "(second line)" not in text
    assert "broken: status.json unreadable (JSONDecodeError)" in text
    assert "lower is better for perplexity" in text
    # the columns line up: every row has "status" at the same offset as the header
    col = lines[0].index("status")
    assert {line[col:].split()[0] for line in lines[2:8]} == {"completed", "failed", "running", "unreadable", "unknown"}


def test_empty_listing_says_where_it_looked(tmp_path: Path) -> None:
    (tmp_path / "not-a-run" / "logs").mkdir(parents=True)
    assert find_runs(tmp_path) == []
    assert format_runs([], root=tmp_path) == f"no runs found under {tmp_path} (a run directory has a config.yaml or status.json)"


def test_find_runs_skips_run_internals_hidden_folders_and_respects_depth(tmp_path: Path) -> None:
    run = make_run(tmp_path / "a", config=BASE_CONFIG)
    make_run(run / "model" / "inner", config=BASE_CONFIG)
    make_run(run / "checkpoints" / "inner", config=BASE_CONFIG)
    make_run(tmp_path / ".a.tmp-123", config=BASE_CONFIG)
    make_run(tmp_path / "x" / "y" / "z" / "deep", config=BASE_CONFIG)
    assert [r.name for r in find_runs(tmp_path)] == ["a"]
    assert sorted(r.name for r in find_runs(tmp_path, depth=4)) == ["a", "x/y/z/deep"]
    assert [r.name for r in find_runs(run, depth=0)] == ["."]


def test_find_runs_names_a_bad_root(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such directory") as missing:
        find_runs(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(missing.value)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        find_runs(tmp_path / "file.txt")


def test_runs_json_is_strict_json(tmp_path: Path) -> None:
    make_run(tmp_path / "nan", config=BASE_CONFIG, status=done("2026-01-01T10:00:00", 5),
             metrics={"fine_tuned": {"rougeL": float("nan")}})
    records = json.loads(json.dumps(runs_json(find_runs(tmp_path)), allow_nan=False))
    assert records[0]["best"] is None and records[0]["path"] == str(tmp_path / "nan") and records[0]["status"] == "completed"


def test_format_duration() -> None:
    assert [format_duration(s) for s in (None, 0, 45.4, 192, 3599.6, 7500, 3 * 86400 + 4 * 3600)] == \
        ["-", "0s", "45s", "3m12s", "1h00m", "2h05m", "3d04h"]


def two_news_runs(tmp_path: Path, *, lr_b: float = 1e-4, rouge_b: float = 27.0) -> tuple[Path, Path]:
    a = make_run(tmp_path / "a" / "run", config=BASE_CONFIG, status=done("2026-01-01T10:00:00", 60),
                 metrics={"zero_shot": {"rougeL": 10.0}, "fine_tuned": {"rougeL": 25.5, "rouge1": 31.0, "gen_len": 20.0}})
    b = make_run(tmp_path / "b" / "run", config={**BASE_CONFIG, "learning_rate": lr_b}, status=done("2026-01-01T11:00:00", 75, steps=80),
                 metrics={"zero_shot": {"rougeL": 10.0}, "fine_tuned": {"rougeL": rouge_b, "rouge1": 30.0, "gen_len": 18.0}})
    return a, b


def test_compare_shows_differing_options_and_ranks_metrics(tmp_path: Path) -> None:
    a, b = two_news_runs(tmp_path)
    c = compare_runs([a, b])
    assert c.labels == ("a/run", "b/run")  # both directories are called "run"
    assert [(row.name, row.values) for row in c.differing] == [("learning_rate", (5e-5, 1e-4))]
    assert c.identical == len(BASE_CONFIG) - 2  # learning_rate differs, output_dir is not compared
    rows = {(m.name, m.kind): m for m in c.metrics}
    assert [(m.name, m.kind) for m in c.metrics][:2] == [("rougeL", "fine_tuned"), ("rougeL", "zero_shot")]
    assert rows["rougeL", "fine_tuned"].values == (25.5, 27.0) and rows["rougeL", "fine_tuned"].best == (1,)
    assert rows["rouge1", "fine_tuned"].best == (0,)
    assert rows["gen_len", "fine_tuned"].best == ()  # neither longer nor shorter is better
    assert rows["rougeL", "zero_shot"].values == (10.0, 10.0)
    assert c.notes == ()

    text = format_comparison(c)
    assert "config: 1 option differs, 6 options identical (output_dir not compared)" in text
    assert any(line.split() == ["learning_rate", "5e-05", "0.0001"] for line in text.splitlines())
    assert any(line.split() == ["rougeL", "25.50", "27.00*"] for line in text.splitlines())
    assert any(line.split() == ["rouge1", "31.00*", "30.00"] for line in text.splitlines())
    assert any(line.split() == ["rougeL", "(zero-shot)", "10.00", "10.00"] for line in text.splitlines())
    assert any(line.split() == ["steps", "100", "80"] for line in text.splitlines())
    assert any(line.split() == ["duration", "1m00s", "1m15s"] for line in text.splitlines())


def test_compare_lower_is_better_and_ties(tmp_path: Path) -> None:
    clm = {**BASE_CONFIG, "task": "causal-lm"}
    status = {"state": "completed", "task": "causal-lm"}
    paths = [make_run(tmp_path / name, config={**clm, "seed": seed}, status=status,
                      metrics={"fine_tuned": {"perplexity": ppl, "loss": loss}})
             for name, seed, ppl, loss in (("r1", 1, 40.0, 3.7), ("r2", 2, 30.0, 3.4), ("r3", 3, 30.0, 3.5))]
    c = compare_runs(paths)
    rows = {(m.name, m.kind): m for m in c.metrics}
    assert rows["perplexity", "fine_tuned"].best == (1, 2) and rows["perplexity", "fine_tuned"].higher_is_better is False
    assert rows["loss", "fine_tuned"].best == (1,)
    assert "lower is better for loss, perplexity" in format_comparison(c)


def test_compare_different_tasks_and_unfinished_runs(tmp_path: Path) -> None:
    a, _ = two_news_runs(tmp_path)
    clm = make_run(tmp_path / "clm", config={**BASE_CONFIG, "task": "causal-lm", "block_size": 128},
                   status={"state": "running", "task": "causal-lm"}, evals=[{"step": 5, "perplexity": 70.0}])
    c = compare_runs([a, clm])
    assert "these runs are of different tasks (run: summarization, clm: causal-lm); their metrics are not comparable" in c.notes
    assert "clm has no final metrics (status running); best evaluation so far: perplexity 70.00" in c.notes
    differing = {row.name: row.values for row in c.differing}
    assert differing["task"] == ("summarization", "causal-lm") and differing["block_size"] == (NOT_SET, 128)
    rows = {(m.name, m.kind): m for m in c.metrics}
    assert rows["rougeL", "fine_tuned"].values == (25.5, None) and rows["rougeL", "fine_tuned"].best == ()
    text = format_comparison(c)
    assert "note: these runs are of different tasks" in text
    assert any(line.split() == ["block_size", "(not", "set)", "128"] for line in text.splitlines())


def test_compare_json_is_strict(tmp_path: Path) -> None:
    a, b = two_news_runs(tmp_path, rouge_b=float("nan"))
    data = json.loads(json.dumps(compare_runs([a, b]).to_dict(), allow_nan=False))
    assert data["config"]["differing"] == {"learning_rate": [5e-5, 1e-4]} and data["config"]["identical"] == 6
    rouge = next(m for m in data["metrics"] if m["metric"] == "rougeL" and m["kind"] == "fine_tuned")
    assert rouge["values"] == [25.5, None] and rouge["best"] == []
    assert [r["label"] for r in data["runs"]] == ["a/run", "b/run"]


def test_compare_refuses_bad_input(tmp_path: Path) -> None:
    a, b = two_news_runs(tmp_path)
    with pytest.raises(ConfigError, match="at least two run directories, got 1"):
        compare_runs([a])
    with pytest.raises(ConfigError, match="at least two"):
        compare_runs([])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=f"{tmp_path / 'empty'} is not a run directory"):
        compare_runs([a, tmp_path / "empty"])
    with pytest.raises(ConfigError, match=f"{tmp_path / 'gone'}: no such run directory"):
        compare_runs([tmp_path / "gone", b])
    with pytest.raises(ConfigError, match="given twice"):
        compare_runs([a, b, a.parent / ".." / "a" / "run"])


def test_duration_of_finished_run_without_duration_field(tmp_path: Path) -> None:
    """Older runs have only "started" and the last "updated"; a running run counts up to now."""
    run = make_run(tmp_path / "old", status={"state": "completed", "started": "2026-01-01T10:00:00", "updated": "2026-01-01T10:02:30"})
    assert read_run(run).duration_s == 150
    stale = make_run(tmp_path / "run", status={"state": "running", "started": "2026-01-01T10:00:00", "updated": "2026-01-01T10:02:30"})
    assert read_run(stale).duration_s > time.time() - datetime(2026, 1, 1, 10).timestamp() - 5
