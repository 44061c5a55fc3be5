"""``texttune inspect`` and the report's "Data checks" section."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from texttune.files import write_json
from texttune.runs.report import write_report

Cli = Callable[..., tuple[int, str, str]]


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    # a blank line after the first record: file lines are not row numbers
    lines = [json.dumps(rows[0]), "", *(json.dumps(r) for r in rows[1:])]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_inspect_prints_counts_with_file_lines(cli: Cli, tmp_path: Path) -> None:
    train = _jsonl(tmp_path / "train.jsonl", [{"text": "a cat sat", "label": "x"}, {"text": "a dog ran", "label": "y"},
                                              {"text": "A  cat sat", "label": "y"}])
    val = _jsonl(tmp_path / "dev.jsonl", [{"text": "new text", "label": "x"}, {"text": "a dog RAN", "label": "y"}])
    out_file = tmp_path / "report.json"
    code, out, err = cli("inspect", train, val, "--task", "text-classification", "--output", out_file)
    assert code == 0, err
    assert "train (" in out and "3 rows, duplicates 1, conflicts 1" in out
    assert "dev (" in out and "2 rows, duplicates 0, leaks 1" in out
    assert f"leaks: {val} line 3 = {train} line 3: 'a dog ran'" in out  # line 3: the blank line counts
    assert "WARNING: dev: 1 of 2 rows whose input also occurs in train (leakage)" in out
    report = json.loads(out_file.read_text())
    assert report["splits"]["dev"]["leaks"]["count"] == 1 and report["reference"] == "train"


def test_inspect_columns_and_thresholds(cli: Cli, tmp_path: Path) -> None:
    words = [f"w{i}" for i in range(30)]
    near = [*words[:29], "other"]
    src = _jsonl(tmp_path / "src.jsonl", [{"en": " ".join(words), "ro": "a"}, {"en": "b c", "ro": "B C"}])
    dev = _jsonl(tmp_path / "dev.jsonl", [{"en": " ".join(near), "ro": "x"}])
    code, out, err = cli("inspect", src, dev, "--task", "translation", "--target-column", "ro", "--leak-warning-rate", "1")
    assert code == 0, err
    assert "near duplicates 1" in out and "target equals source 1" in out and "WARNING" not in out
    code, out, _ = cli("inspect", src, dev, "--task", "translation", "--target-column", "ro",
                       "--near-duplicate-threshold", "0.99")
    assert code == 0 and "near duplicates 0" in out


def test_inspect_bad_input_is_one_line_exit_2(cli: Cli, tmp_path: Path) -> None:
    train = _jsonl(tmp_path / "train.jsonl", [{"text": "a", "label": "x"}])
    for argv, needle in [((tmp_path / "missing.jsonl", "--task", "text-classification"), "data file not found"),
                         ((train, "--task", "nope"), "unknown task 'nope'"),
                         ((train, "--task", "text-classification", "--text-column", "body"), "no column 'body'"),
                         ((train, "--task", "text-classification", "--near-duplicate-threshold", "2"),
                          "near_duplicate_threshold")]:
        code, out, err = cli("inspect", *argv)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_report_has_a_data_checks_section(tmp_path: Path) -> None:
    from texttune.data import from_lists
    from texttune.data.checks import CheckSettings
    from texttune.tasks import task_class
    from texttune.tasks.data_checks import check_tables

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("task: text-classification\n")
    task = task_class("text-classification")()
    report = check_tables(task, [("train", from_lists({"text": ["a b", "c <d>"], "label": ["x", "y"]})),
                                 ("validation", from_lists({"text": ["c <d>"], "label": ["y"]}))], settings=CheckSettings())
    report["truncation"] = {"train": {"inputs_truncated": {"count": 1, "rate": 0.5}}}
    write_json(run / "data_report.json", report)
    html = write_report(run).read_text()
    section = html.split('<section id="data-checks">', 1)[1].split("</section>", 1)[0]
    assert "<h2>Data checks</h2>" in section and "leaks" in section and "1 (100.00%)" in section
    assert "&lt;python lists&gt; row 1" in section and "c &lt;d&gt;" in section  # escaped
    assert "train inputs" in section and "50.00%" in section
    (run / "data_report.json").unlink()
    assert "not recorded (file missing: data_report.json)" in write_report(run).read_text()


def test_a_run_with_dedupe_trains_without_the_leaked_rows(tiny_model_dir: Callable[[str], Path], cli: Cli,
                                                          tmp_path: Path) -> None:
    data = Path(__file__).resolve().parents[1] / "data"
    train_rows = [json.loads(line) for line in (data / "summarization.jsonl").read_text().splitlines() if line.strip()]
    val_rows = [json.loads(line) for line in (data / "summarization-val.jsonl").read_text().splitlines() if line.strip()]
    leaked = [dict(train_rows[i], summary="another summary") for i in (3, 7)]  # inputs of train rows 4 and 8
    train = _jsonl(tmp_path / "train.jsonl", train_rows)
    val = _jsonl(tmp_path / "val.jsonl", [*val_rows, *leaked])
    run = tmp_path / "run"
    code, out, err = cli("train", "summarization", "--backbone", tiny_model_dir("t5"), "--train-file", train,
                         "--validation-file", val, "--output-dir", run, "--max-steps", "1", "--batch-size", "4",
                         "--no-progress-bar", "--no-baselines", "--dedupe")
    assert code == 0, err
    assert f"--dedupe: removed 2 training rows whose input occurs in the validation data ({len(train_rows) - 2} rows left)" in err
    assert "DATA CHECK: validation: 2 of" in err and "(leakage)" in err
    report = json.loads((run / "data_report.json").read_text())
    assert report["dedupe"] == {"removed_train_rows": 2, "train_rows_after": len(train_rows) - 2}
    assert report["splits"]["validation"]["leaks"]["count"] == 2
    assert report["splits"]["validation"]["conflicts_with_reference"]["count"] == 2
    assert json.loads((run / "data_stats.json").read_text())["train"]["rows"] == len(train_rows) - 2
