"""Plots and the HTML report, drawn from a synthetic run directory written here.

The files mimic what the engine writes (Lightning's sparse CSV log included),
so these tests exercise the readers without training anything; cut-off and
missing files stand for crashed and older runs.
"""

from __future__ import annotations

import html
import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from texttune.errors import ConfigError
from texttune.runs.plots import align_steps, read_metrics_csv, series, write_plots
from texttune.runs.report import write_report

EVIL = "<script>alert('x')</script> & \"quoted\""

CSV = """epoch,examples_per_s,lr,step,tokens_per_s,train_loss,val_gen_len,val_loss,val_rouge1,val_rouge2,val_rougeL,val_rougeLsum
0,89.2,4.0e-05,1,9238.7,7.24,,,,,,
0,79.8,3.0e-05,3,9203.3,7.05,,,,,,
0,,,4,,,21.25,7.08,1.0,0.5,2.5,2.5
0,41.5,2.0e-05,5,3918.6,6.13,,,,,,
0,67.5,1.0e-05,7,7864.0,5.38,,,,,,
1,74.6,0.0,9,7054.6,5.13,,,,,,
1,,,9,,,19.5,5.01,10.0,4.0,9.0,9.0
"""


def write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    elif isinstance(data, list):
        path.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    else:
        path.write_text(json.dumps(data), encoding="utf-8")


def histogram(lo: int, hi: int, counts: list[int]) -> dict[str, Any]:
    width = (hi - lo) / len(counts)
    return {"edges": [lo + i * width for i in range(len(counts) + 1)], "counts": counts}


def lengths(n: int) -> dict[str, Any]:
    return {"input": {"count": n, "min": 60, "mean": 110.5, "p50": 108, "p90": 160, "p99": 201.1, "max": 213,
                      "histogram": histogram(60, 220, [1, 4, 8, n - 19, 4, 2])},
            "target": {"count": n, "min": 6, "mean": 16.4, "p50": 15.5, "p90": 22.5, "p99": 27, "max": 28,
                       "histogram": histogram(6, 30, [2, 5, n - 12, 4, 1])}}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A finished summarization run as the engine writes it (evaluations at steps 5 and 10)."""
    run = tmp_path / "run"
    write(run / "config.yaml", "# texttune run configuration\ntask: summarization\nbackbone: /models/tiny-t5\n"
                               "train_file: data/train.jsonl\nbatch_size: 4\nmax_steps: 10\nlearning_rate: 5.0e-05\nprefix: null\n")
    write(run / "status.json", {"task": "summarization", "backbone": "/models/tiny-t5", "state": "completed",
                                "started": "2026-01-02T10:00:00", "finished": "2026-01-02T10:02:05",
                                "updated": "2026-01-02T10:02:05", "duration_s": 125.0, "steps": 10})
    write(run / "environment.json", {"texttune": "0.1.0", "python": "3.11.7", "packages": {"torch": "2.13.0+cpu"},
                                     "gpus": [], "seed": 42, "command": ["texttune", "train", "summarization"],
                                     "git_commit": "8e6c6a3f47c2"})
    write(run / "data_stats.json", {
        "train": {"source": "data/train.jsonl", "rows": 36, "inputs_truncated": 3, "targets_truncated": 0,
                  "dropped": {"empty target": 2}, "lengths": lengths(36)},
        "validation": {"source": "data/train.jsonl (held-out part)", "rows": 24, "inputs_truncated": 0,
                       "lengths": lengths(24), "labels": {"positive": 18, "negative": 6}},
        "learned": {"max_new_tokens": 28}})
    write(run / "metrics.json", {
        "baselines": {"lead_1": {"rouge1": 26.0175, "rougeL": 24.1656, "gen_len": 17.5}},
        "zero_shot": {"rouge1": 1.0, "rougeL": 0.5, "gen_len": 21.25},
        "fine_tuned": {"rouge1": 10.0, "rougeL": 9.0, "gen_len": 19.5},
        "best_checkpoint": "checkpoints/best.ckpt", "steps": 10})
    write(run / "evals.jsonl", [{"step": 5, "rouge1": 1.0, "rougeL": 2.5, "gen_len": 21.25},
                                {"step": 10, "rouge1": 10.0, "rougeL": 9.0, "gen_len": 19.5}])
    rows = [{"input": f"document {i}", "reference": f"summary {i}", "prediction": f"fine {i}"} for i in range(30)]
    rows[0]["prediction"] = EVIL
    write(run / "predictions.jsonl", rows)
    write(run / "predictions_zero_shot.jsonl", [{**r, "prediction": f"zero {i}"} for i, r in enumerate(rows)])
    write(run / "samples" / "step-000005.jsonl", [{**r, "prediction": f"early {i}"} for i, r in enumerate(rows[:8])])
    write(run / "samples" / "step-000010.jsonl", [{**r, "prediction": f"late {i}"} for i, r in enumerate(rows[:8])])
    write(run / "model_summary.json", {"architecture": "T5ForConditionalGeneration", "parameters": 66976,
                                       "trainable_parameters": 66976, "size_on_disk_bytes": 323569})
    write(run / "logs" / "metrics.csv", CSV)
    return run


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# --------------------------------------------------------------------------- plots


def test_write_plots_writes_every_plot_as_a_small_png(run_dir: Path) -> None:
    written = write_plots(run_dir)
    assert [p.name for p in written] == ["loss.png", "lr.png", "metric.png", "lengths.png"]
    for path in written:
        assert path.parent == run_dir / "plots"
        assert png_size(path) == (640, 360)
        assert 5_000 < path.stat().st_size < 150_000, (path.name, path.stat().st_size)
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == sorted(p.name for p in written), "temp files left"


def test_write_plots_replaces_existing_plots(run_dir: Path) -> None:
    (run_dir / "plots").mkdir()
    (run_dir / "plots" / "loss.png").write_bytes(b"stale")
    write_plots(run_dir)
    png_size(run_dir / "plots" / "loss.png")


def test_sparse_csv_rows_give_each_series_only_its_own_points(run_dir: Path) -> None:
    rows = read_metrics_csv(run_dir / "logs" / "metrics.csv")
    assert rows is not None and len(rows) == 7
    assert series(rows, "train_loss") == ([1, 3, 5, 7, 9], [7.24, 7.05, 6.13, 5.38, 5.13])
    assert series(rows, "val_loss") == ([4, 9], [7.08, 5.01])
    assert series(rows, "lr")[1][-1] == 0.0


def test_csv_steps_are_aligned_with_the_recorded_evaluations(run_dir: Path) -> None:
    rows = read_metrics_csv(run_dir / "logs" / "metrics.csv") or []
    aligned = align_steps(rows, [{"step": 5}, {"step": 10}])  # Lightning logs step 4 after 5 optimizer steps
    assert series(aligned, "val_loss")[0] == [5, 10]
    assert series(aligned, "train_loss")[0] == [2, 4, 6, 8, 10]
    assert align_steps(rows, [{"step": 4}, {"step": 9}]) == rows  # already aligned: kept as logged
    assert align_steps(rows, []) == rows


def test_plots_with_missing_data_are_skipped(run_dir: Path) -> None:
    (run_dir / "logs" / "metrics.csv").unlink()
    write(run_dir / "data_stats.json", {"train": {"rows": 36}})  # an older run: no length histograms
    assert [p.name for p in write_plots(run_dir)] == ["metric.png"]
    assert not (run_dir / "plots" / "loss.png").exists()


def test_plots_of_a_crashed_run_use_what_was_written(run_dir: Path) -> None:
    for name in ("metrics.json", "data_stats.json", "status.json"):
        (run_dir / name).unlink()
    # cut off mid-line, as a crash leaves them
    write(run_dir / "logs" / "metrics.csv", CSV[: CSV.index("0,41.5") + 8])
    write(run_dir / "evals.jsonl", '{"step": 5, "rougeL": 2.5}\n{"step": 10, "rou')
    assert [p.name for p in write_plots(run_dir)] == ["loss.png", "lr.png", "metric.png"]


def test_plots_of_an_empty_or_garbled_directory(tmp_path: Path) -> None:
    assert write_plots(tmp_path) == []
    write(tmp_path / "logs" / "metrics.csv", "not,a\x00csv\n\"unterminated")
    write(tmp_path / "data_stats.json", {"train": {"lengths": {"input": {"histogram": {"edges": [1], "counts": [3, 4]}}}}})
    write(tmp_path / "evals.jsonl", "[1, 2]\n{\"step\": \"x\"}\n")
    write(tmp_path / "metrics.json", "{truncated")
    assert write_plots(tmp_path) == []


# --------------------------------------------------------------------------- report


def report_text(run_dir: Path, **kwargs: Any) -> str:
    path = write_report(run_dir, **kwargs)
    return path.read_text(encoding="utf-8")


def test_report_has_every_section_with_the_run_s_values(run_dir: Path) -> None:
    page = report_text(run_dir)
    assert (run_dir / "report.html").is_file()
    assert "<title>texttune report: summarization · tiny-t5 · completed</title>" in page
    assert "2 min 05 s" in page and "2026-01-02T10:00:00" in page
    # metrics: main metric first and marked, every metric row, baseline / zero-shot / fine-tuned and the difference
    table = page[page.index('<section id="metrics">'):page.index('<section id="plots">')]
    assert "<tr class=main><td>rougeL (main, higher is better)</td>" in table
    assert table.index("rougeL (main") < table.index("<td>rouge1</td>") < table.index("<td>gen_len</td>")
    for header in ("baseline lead_1", "zero-shot", "fine-tuned", "fine-tuned − zero-shot"):
        assert f">{header}</th>" in table
    assert ">24.17</td>" in table and ">+8.5</span>" in table and ">-1.75</span>" in table
    assert "class='up'" in table  # 0.5 -> 9.0 on a higher-is-better metric
    # evaluations, data, model, config, environment
    assert ">step</th>" in page and "best rougeL highlighted" in page
    assert ">dropped: empty target</td>" in page and ">positive</td>" in page and "18 (75.0%)" in page
    assert ">train input</td>" in page and ">201.1</td>" in page
    assert "66,976" in page and "0.3 MB (323,569 bytes)" in page
    assert ">learning_rate</td><td class=n>5e-05</td>" in page
    assert ">packages: torch</td>" in page and "texttune train summarization" in page
    assert "step 5" in page and "early 0" in page and "late 7" not in page  # samples: first 5 rows only


def test_report_embeds_the_plots_and_loads_nothing_from_outside(run_dir: Path) -> None:
    page = report_text(run_dir)
    images = re.findall(r"<img [^>]*src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 4
    assert all(len(data) > 5_000 for data in images)
    assert (run_dir / "plots" / "lengths.png").is_file()  # drawn because they were missing
    links = re.findall(r"""(?:src|href)\s*=\s*["']?([^"' >]+)""", page)
    assert all(link.startswith(("data:image/png;base64,", "#")) for link in links), links
    assert "<script" not in page and "<link" not in page and "@import" not in page


def test_report_escapes_predictions_and_pairs_zero_shot_outputs(run_dir: Path) -> None:
    page = report_text(run_dir)
    assert EVIL not in page
    assert html.escape(EVIL, quote=True) in page
    assert "first 20 of 30 rows" in page
    assert "zero-shot prediction" in page and ">zero 19</div>" in page and ">fine 19</div>" in page
    assert "document 20" not in page


def test_report_shows_task_specific_prediction_keys(run_dir: Path) -> None:
    write(run_dir / "predictions.jsonl", [{"id": 7, "question": "Who <b>?</b>", "reference": ["Ada"], "prediction": "Ada",
                                           "score": 0.93}])
    (run_dir / "predictions_zero_shot.jsonl").unlink()
    page = report_text(run_dir)
    section = page[page.index('<section id="predictions">'):page.index('<section id="samples">')]
    assert [h for h in re.findall(r"<th[^>]*>([^<]*)</th>", section)] == ["#", "id", "question", "score", "reference", "prediction"]
    assert "Who &lt;b&gt;?&lt;/b&gt;" in section and "[&quot;Ada&quot;]" in section
    assert "zero-shot" not in section


def test_report_shows_token_level_predictions_as_words(run_dir: Path) -> None:
    write(run_dir / "predictions.jsonl", [{"tokens": ["Ann", "<Mercken>"], "reference": ["B-PER", "I-PER"],
                                           "prediction": ["B-PER", "O"]}])
    page = report_text(run_dir)
    assert ">Ann &lt;Mercken&gt;</div>" in page and ">B-PER I-PER</div>" in page and ">B-PER O</div>" in page


def test_report_of_a_run_that_only_started(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write(run / "status.json", {"task": "translation", "backbone": "t5-small", "state": "running"})
    page = report_text(run)
    for name in ("metrics.json", "evals.jsonl", "predictions.jsonl", "data_stats.json", "model_summary.json",
                 "config.yaml", "environment.json"):
        assert f"not recorded (file missing: {name})" in page
    assert "<img" not in page and page.count("not drawn (no data recorded for it)") == 4
    assert "translation · t5-small <span class='badge running'>running</span>" in page


def test_report_of_a_failed_run_shows_the_error_and_a_damaged_file(run_dir: Path) -> None:
    write(run_dir / "status.json", {"task": "summarization", "state": "failed", "error": "DataError: row 3 <empty>"})
    write(run_dir / "metrics.json", '{"baselines": {"lead_1": {"rou')
    page = report_text(run_dir)
    assert "DataError: row 3 &lt;empty&gt;" in page
    assert "not recorded (file incomplete or not readable: metrics.json)" in page


def test_report_output_path_and_directory(run_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "r.html"
    assert write_report(run_dir, output=target) == target and target.is_file()
    assert write_report(run_dir, output=tmp_path) == tmp_path / "report.html"
    assert not (run_dir / "report.html").exists()


def test_report_refuses_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "model")) + ".*not a texttune run directory"):
        write_report(tmp_path / "model")
    with pytest.raises(ConfigError, match="not a directory"):
        write_report(tmp_path / "nowhere")


def test_report_command(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from texttune.cli.main import main

    assert main(["report", str(run_dir), "--output", str(tmp_path / "x.html")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "x.html")
    assert main(["report", str(tmp_path / "empty-dir-that-is-missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("texttune: error: ") and "empty-dir-that-is-missing" in err[0]


# --------------------------------------------------------------------------- classification runs


def per_label(labels: list[str], f1: dict[str, float], support: dict[str, int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for label in labels:
        out |= {f"precision_{label}": f1[label], f"recall_{label}": f1[label], f"f1_{label}": f1[label],
                f"support_{label}": float(support[label])}
    return out


def class_run(root: Path, labels: list[str], pairs: list[tuple[Any, Any]], *, kind: str = "single-label") -> Path:
    """A classification run: predictions.jsonl with scores, metrics.json with per-label scores (made up, but consistent)."""
    records = []
    for i, (reference, prediction) in enumerate(pairs):
        best = prediction if isinstance(prediction, str) else (prediction or [labels[0]])[0]
        others = [label for label in labels if label != best][:4]
        records.append({"text": f"row {i} <i>text</i>", "reference": reference, "prediction": prediction,
                        "scores": [{"label": best, "score": round(0.5 + (i % 7) / 20, 3)},
                                   *[{"label": o, "score": 0.05} for o in others]]})
    write(root / "predictions.jsonl", records)
    references = [r for r, _ in pairs]
    flat = [label for r in references for label in ([r] if isinstance(r, str) else r)]
    support = {label: flat.count(label) for label in labels}
    f1 = {label: round(100 * (j % 5) / 4, 4) for j, label in enumerate(labels)}
    write(root / "metrics.json", {"baselines": {"majority": {"macro_f1": 10.0, **per_label(labels, dict.fromkeys(labels, 0.0),
                                                                                             support)}},
                                  "fine_tuned": {"macro_f1": 42.0, "accuracy": 50.0, **per_label(labels, f1, support)}})
    write(root / "status.json", {"task": "some-classifier", "state": "completed", "main_metric": "macro_f1"})
    write(root / "config.yaml", f"task: some-classifier\nproblem_type: {kind}\n")
    return root


def png_title(path: Path) -> str:
    """The PNG's Title text (matplotlib writes it as a tEXt chunk, or iTXt when it is not Latin-1)."""
    data, at = path.read_bytes(), 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        if kind == b"tEXt" and body.startswith(b"Title\x00"):
            return body[6:].decode("latin-1")
        if kind == b"iTXt" and body.startswith(b"Title\x00"):
            return body[8:].split(b"\x00", 2)[2].decode("utf-8")  # after compression flag and method, language, key
        at += 12 + length
    raise AssertionError(f"{path.name} has no Title")


def test_confusion_plot_of_many_labels_shows_the_top_confusions_as_bars(tmp_path: Path) -> None:
    from texttune.runs.classes import class_records, confusion_view, top_confusions
    from texttune.runs.plots import run_confusion

    labels = [f"class-{i:02d}" for i in range(30)]
    pairs = [(label, label) for label in labels for _ in range(2)]
    pairs += [(label, labels[(i + 1) % 30]) for i, label in enumerate(labels)]  # one mistake per class
    pairs += [("class-00", "class-05")] * 4  # the most frequent confusion
    run = class_run(tmp_path / "run", labels, pairs)
    view = run_confusion(run)
    assert view is not None and view.kind == "bars" and len(view.labels) == 30
    assert view.title.startswith("Top 20 confusions of 30 classes (too many for a matrix): true → predicted")
    assert view.confusions[0] == ("class-00", "class-05", 4, 4 / 7)  # 4 of class-00's 7 rows
    assert len(view.confusions) == 20 and all(c[2] == 1 for c in view.confusions[1:])
    written = write_plots(run)
    assert [p.name for p in written] == ["confusion.png"]  # no log or evaluations: nothing else to draw
    width, height = png_size(run / "plots" / "confusion.png")
    assert width == 800 and height > 500  # one row per bar, readable
    assert png_title(run / "plots" / "confusion.png") == view.title
    # up to 25 labels: the whole matrix, rows normalised
    few = class_run(tmp_path / "few", labels[:25], [p for p in pairs if p[0] in labels[:25] and p[1] in labels[:25]])
    matrix = confusion_view(class_records(json.loads((few / "metrics.json").read_text()),
                                          [json.loads(line) for line in (few / "predictions.jsonl").read_text().splitlines()]))
    assert matrix is not None and matrix.kind == "matrix" and len(matrix.labels) == 25
    assert matrix.title == "Confusion matrix, 25 classes (rows: true class, each row sums to 1)"
    assert top_confusions(matrix.labels, matrix.counts, 1) == [("class-00", "class-05", 4, 4 / 7)]
    write_plots(few)
    assert png_title(few / "plots" / "confusion.png") == matrix.title


def test_report_of_a_classification_run_has_the_per_class_table_confusions_and_mistakes(tmp_path: Path) -> None:
    labels = ["games", "python", "science", "sound"]
    pairs = [("python", "python")] * 6 + [("games", "python")] * 2 + [("sound", "science"), ("science", "science"),
                                                                        ("games", "games"), ("sound", "sound")]
    run = class_run(tmp_path / "run", labels, pairs)
    page = report_text(run)
    section = page[page.index('<section id="classes">'):page.index('<section id="plots">')]
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", section)
    assert headers == ["label", "precision", "recall", "F1", "support", "F1 baseline majority",
                       "most often predicted instead (rows)"]
    assert re.findall(r"<tr[^>]*><td>([a-z]+)</td>", section) == ["sound", "science", "python", "games"]  # F1 75, 50, 25, 0
    assert "<tr class=weak><td>games</td>" in section and "python (2)" in section
    assert "<img alt='confusion.png'" in section and "Confusion matrix, 4 classes" in section
    # per-label scores leave the metrics table for the per-class one
    metrics = page[page.index('<section id="metrics">'):page.index('<section id="classes">')]
    assert "f1_games" not in metrics and "16 per-label scores" in metrics and ">macro_f1 (main" in metrics
    wrong = page[page.index('<section id="misclassified">'):page.index('<section id="samples">')]
    assert "3 of 3 misclassified rows (of 12 in predictions.jsonl), most confident first" in wrong
    assert "row 6 &lt;i&gt;text&lt;/i&gt;" in wrong and "<i>" not in wrong
    assert re.findall(r"row (\d+) ", wrong) == ["6", "8", "7"]  # predicted label's score: 0.8, 0.55, 0.5
    assert "python 80.0% · <b>games</b> 5.0% · science 5.0%" in wrong  # the true label in bold


def test_report_of_a_multi_label_run_lists_missed_and_extra_labels_without_a_matrix(tmp_path: Path) -> None:
    labels = ["cli", "gui", "net"]
    pairs = [(["cli"], ["cli"]), (["cli", "net"], ["cli"]), ([], ["gui"]), (["gui"], ["gui"])]
    run = class_run(tmp_path / "run", labels, pairs, kind="multi-label")
    assert write_plots(run) == []
    page = report_text(run)
    assert "No confusion matrix for a multi-label run" in page and "confusion.png" not in page
    wrong = page[page.index('<section id="misclassified">'):page.index('<section id="samples">')]
    assert "2 of 2 misclassified rows" in wrong and ">missed</th><th>extra</th>" in wrong
    assert re.findall(r"<td>(\w+|–)</td><td>(\w+|–)</td><td><div class=scores>", wrong) == [("net", "–"), ("–", "gui")]


def test_per_class_table_without_classification_records(run_dir: Path) -> None:
    """Tagging runs score entity types (f1_PER) but predict tags: a per-class table, no confusions, no mistakes section."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["fine_tuned"] |= {"f1_PER": 80.0, "f1_LOC": 0.0}
    write(run_dir / "metrics.json", metrics)
    write(run_dir / "predictions.jsonl", [{"tokens": ["Ann", "Paris"], "reference": ["B-PER", "B-LOC"],
                                           "prediction": ["B-PER", "O"]}])
    page = report_text(run_dir)
    section = page[page.index('<section id="classes">'):page.index('<section id="plots">')]
    assert re.findall(r"<th[^>]*>([^<]*)</th>", section) == ["label", "F1"]
    assert "no confusion plot (predictions.jsonl has no classification records)" in section
    assert 'id="misclassified"' not in page and not (run_dir / "plots" / "confusion.png").exists()


def test_summarization_report_has_no_per_class_sections(run_dir: Path) -> None:
    page = report_text(run_dir)
    assert 'id="classes"' not in page and 'id="misclassified"' not in page and "per-label" not in page
