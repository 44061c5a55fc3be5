"""``texttune report`` on real (tiny) text-classification runs: per-class table, confusion plot, misclassified rows.

The report reads only the run directory, so these runs check that what the task writes
(metrics.json's per-label scores, predictions.jsonl with scores) is what the report reads.
The data are tests/data/classification*.jsonl (Debian package descriptions: section, debtags).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from texttune.files import read_json

DATA = Path(__file__).resolve().parents[1] / "data"
TRAIN, VAL = DATA / "classification.jsonl", DATA / "classification-val.jsonl"
FAST = ["--max-steps", "4", "--batch-size", "8", "--no-progress-bar", "--no-tensorboard", "--samples-per-eval", "0"]
Cli = Callable[..., tuple[int, str, str]]


def _train(out: Path, backbone: Path, *extra: str) -> Path:
    from texttune.cli.main import main

    assert main(["-q", "train", "text-classification", "--backbone", str(backbone), "--train-file", str(TRAIN),
                 "--output-dir", str(out), *FAST, *extra]) == 0
    return out


@pytest.fixture(scope="module")
def single(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A single-label run (sections) on the tiny BERT, with a validation file."""
    return _train(tmp_path_factory.mktemp("single") / "run", tiny_model_dir("bert"), "--label-column", "section",
                  "--validation-file", str(VAL))


def _section(page: str, sid: str) -> str:
    start = page.index(f'<section id="{sid}">')
    return page[start:page.index("</section>", start)]


def _records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]


def test_single_label_report_has_the_per_class_table_confusions_and_misclassified_rows(single: Path, cli: Cli) -> None:
    assert (single / "plots" / "confusion.png").is_file()  # drawn with the other plots at the end of training
    code, out, err = cli("report", single)
    assert code == 0, err
    page = Path(out.strip()).read_text(encoding="utf-8")

    fine = read_json(single / "metrics.json")["fine_tuned"]
    classes = _section(page, "classes")
    rows = re.findall(r"<tr[^>]*><td>(\w+)</td>((?:<td[^>]*>[^<]*</td>)+)", classes)
    assert sorted(label for label, _ in rows) == ["games", "python", "science", "sound"]
    f1s = [fine[f"f1_{label}"] for label, _ in rows]
    assert f1s == sorted(f1s, reverse=True)  # best F1 first
    cells = re.findall(r">([^<]*)</td>", rows[0][1])
    label = rows[0][0]
    assert [float(c) for c in cells[:4]] == pytest.approx(
        [fine[f"{m}_{label}"] for m in ("precision", "recall", "f1", "support")], abs=0.01)
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", classes)
    assert headers[:5] == ["label", "precision", "recall", "F1", "support"]
    assert {"F1 baseline majority", "F1 baseline tfidf_linear", "F1 zero-shot"} <= set(headers)
    assert "<img alt='confusion.png'" in classes and "Confusion matrix, " in classes

    records = _records(single)
    wrong = [r for r in records if r["reference"] != r["prediction"]]
    assert wrong, "the tiny 4-step model gets some of the 20 validation rows wrong"
    shown = _section(page, "misclassified")
    assert f"{min(20, len(wrong))} of {len(wrong)} misclassified rows (of {len(records)} in predictions.jsonl)" in shown
    first = max(wrong, key=lambda r: next(s["score"] for s in r["scores"] if s["label"] == r["prediction"]))
    assert shown.split("<div class=cell>")[1].startswith(html.escape(first["text"][:40]))  # most confident mistake first
    assert re.findall(r"<div class=scores>", shown) and "%" in shown


def test_report_in_chromium_shows_the_confusion_plot(single: Path, cli: Cli, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    code, out, err = cli("report", single, "--output", single / "again.html")
    assert code == 0, err
    browser.get(Path(out.strip()).as_uri())
    images = WebDriverWait(browser, 30, poll_frequency=0.1).until(lambda d: d.execute_script(
        "const imgs = [...document.images]; return imgs.every(i => i.complete) && imgs.map(i => [i.alt, i.naturalWidth]);"))
    assert "confusion.png" in [alt for alt, _ in images] and all(width > 0 for _, width in images), images
    assert len(browser.find_elements(By.CSS_SELECTOR, "#classes table.classes tbody tr")) == 4
    assert browser.find_elements(By.CSS_SELECTOR, "#misclassified tbody tr")
    assert [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"] == []


def test_multi_label_report_renders_without_a_matrix(tiny_model_dir: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    # debtags: some validation-file tags never occur in training, so the held-out part of the training file is used
    run = _train(tmp_path / "run", tiny_model_dir("bert"), "--label-column", "tags", "--problem-type", "multi-label")
    code, out, err = cli("report", run)
    assert code == 0, err
    page = Path(out.strip()).read_text(encoding="utf-8")
    assert not (run / "plots" / "confusion.png").exists()
    classes = _section(page, "classes")
    labels = read_json(run / "data_stats.json")["learned"]["label_list"]
    assert len(re.findall(r"<tr[^>]*><td>", classes)) == len(labels)
    assert "No confusion matrix for a multi-label run" in classes
    records = _records(run)
    wrong = [r for r in records if set(r["reference"]) != set(r["prediction"])]
    shown = _section(page, "misclassified")
    assert (f"of {len(wrong)} misclassified rows" in shown and ">missed</th><th>extra</th>" in shown) if wrong else \
        "are predicted right" in shown
