"""``texttune report`` on a real (tiny) training run, rendered by headless Chromium.

Why a browser: the report is meant to be opened by people; only a browser
shows whether the page parses, its embedded PNGs decode and nothing on it
errors. Without Debian's chromium and chromedriver the test skips locally and
fails in CI (the ``browser`` fixture in conftest.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULT = tuple[int, str, str]


def test_report_of_a_training_run_renders_in_chromium(cli: Callable[..., RESULT], tiny_model_dir: Callable[[str], Path],
                                                      data_dir: Path, tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run = tmp_path / "run"
    code, _, err = cli("-q", "train", "summarization", "--train-file", data_dir / "summarization.jsonl",
                       "--backbone", tiny_model_dir("t5"), "--max-steps", 4, "--batch-size", 4, "--max-eval-samples", 6,
                       "--eval-every-steps", 2, "--output-dir", run)
    assert code == 0, err
    code, out, err = cli("report", run)
    assert code == 0, err
    assert out.strip() == str(run / "report.html")

    browser.get((run / "report.html").as_uri())
    assert browser.title.startswith("texttune report: summarization · ") and browser.title.endswith(" · completed")

    main_row = browser.find_element(By.CSS_SELECTOR, "#metrics table tr.main")
    fine_tuned = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["fine_tuned"]
    cells = [c.text for c in main_row.find_elements(By.TAG_NAME, "td")]
    assert cells[0] == "rougeL (main, higher is better)"
    value, bounds = cells[-2].rstrip("*").split(" [")  # baseline, zero-shot, fine-tuned, difference; its interval
    assert abs(float(value) - fine_tuned["rougeL"]) <= 0.01 * max(1.0, fine_tuned["rougeL"])  # 4 significant digits
    low, high = (float(b) for b in bounds.rstrip("]").split(", "))
    assert low <= float(value) <= high
    assert len(browser.find_elements(By.CSS_SELECTOR, "#metrics table tbody tr")) >= len(fine_tuned)

    images = WebDriverWait(browser, 30, poll_frequency=0.1).until(lambda d: d.execute_script(
        "const imgs = [...document.images]; return imgs.every(i => i.complete) && imgs.map(i => [i.alt, i.naturalWidth]);"))
    assert sorted(alt for alt, _ in images) == ["lengths.png", "loss.png", "lr.png", "metric.png"]
    assert all(width > 0 for _, width in images), images  # every embedded PNG decoded

    predictions = (run / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#predictions tbody tr")) == min(20, len(predictions))
    assert browser.find_elements(By.CSS_SELECTOR, "#evaluations tbody tr"), "no evaluation rows"

    errors = [entry for entry in browser.get_log("browser") if entry.get("level") == "SEVERE"]
    assert errors == []
