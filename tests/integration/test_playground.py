"""The browser playground (``GET /``) driven by a real headless Chromium against ``texttune serve``.

Why a real browser: the page is JavaScript that builds its form from
``/v1/model`` and renders ``/v1/predict`` answers; only a browser runs that.
Debian's chromium and chromedriver are used directly (no Selenium Manager
download: the machines are offline). Without them the tests skip locally and
fail in CI, which installs them (``.ci/run``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

KEY_VAR = "TEXTTUNE_PLAYGROUND_KEY"
KEY = "pg-key-7f3a"
WAIT_S = 90  # model loading on a busy 2-core machine, plus the page's 2 s retry


class Server:
    """A ``texttune serve`` subprocess on a free loopback port; ``url`` is read from its first stdout line."""

    def __init__(self, model_dir: Path, log: Path, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TEXTTUNE_HOME": str(home), "OMP_NUM_THREADS": "1", **(env or {})}
        self.log = log
        with log.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "texttune.cli.main", "serve", str(model_dir), "--host", "127.0.0.1",
                 "--port", "0", "--threads", "1", *args],
                stdout=subprocess.PIPE, stderr=err, text=True, env=full_env)
        line = self.process.stdout.readline() if self.process.stdout else ""
        match = re.search(r"on (http://127\.0\.0\.1:\d+) ", line)
        if match is None:
            self.stop()
            raise AssertionError(f"the server did not start: {line!r}\n{log.read_text()}")
        self.url = match.group(1)

    def stop(self) -> None:
        """Kill it: graceful shutdown is tested elsewhere and waits for the browser's keep-alive connections."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, texttune_home: Path) -> Iterator[Callable[..., Server]]:
    """Start servers for this module; every one is killed when the module ends."""
    servers: list[Server] = []

    def start(model_dir: Path, *args: str, env: dict[str, str] | None = None) -> Server:
        log = tmp_path_factory.mktemp("serve-log") / "stderr.txt"
        servers.append(Server(model_dir, log, texttune_home, *args, env=env))
        return servers[-1]

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def t5_server(serve: Callable[..., Server], t5_summarizer: Path) -> Server:
    return serve(t5_summarizer)


@pytest.fixture(scope="module")
def qa_dir(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT saved, untrained, as an extractive question-answering model."""
    from texttune.api import QuestionAnswering

    return QuestionAnswering(backbone=str(tiny_model_dir("bert"))).save(tmp_path_factory.mktemp("qa") / "model")


def _wait(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(condition)
    except Exception as exc:
        raise AssertionError(f"timed out waiting for {what}; page status: {_text(driver, 'status')!r}, "
                             f"error: {_text(driver, 'error')!r}") from exc


def _text(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.ID, element_id)
    return found[0].get_property("textContent") if found else ""


def _open(driver: Any, server: Server, task: str) -> None:
    driver.get(server.url + "/")
    _wait(driver, lambda d: _text(d, "task") == task, f"the page to show task {task!r}")


def _submit_and_wait(driver: Any, output_id: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "submit").click()
    _wait(driver, lambda d: d.find_elements(By.ID, output_id) and _text(d, "latency"), f"#{output_id} and the latency")


LATENCY = re.compile(r"^round trip \d+ ms · server [\d.]+ ms \(queue [\d.]+ ms, inference [\d.]+ ms\)$")


def test_summarization_page_predicts_like_the_library(browser: Any, t5_server: Server, t5_summarizer: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from texttune import __version__
    from texttune.api import load
    from texttune.runs import find_model_dir, read_metadata

    _open(browser, t5_server, "summarization")
    assert _text(browser, "version") == __version__
    assert _text(browser, "backbone") == read_metadata(find_model_dir(t5_summarizer))["backbone"]
    option_ids = {e.get_attribute("id") for e in browser.find_elements(By.CSS_SELECTOR, "[data-option]")}
    assert option_ids == {"opt-max_new_tokens", "opt-num_beams", "opt-do_sample", "opt-temperature", "opt-top_p"}
    assert browser.find_element(By.ID, "opt-num_beams").get_property("value") == "1"  # prefilled from the defaults

    text = "a small library that converts images between formats"
    expected = load(t5_summarizer).predict([text], max_new_tokens=6)[0]
    assert browser.find_element(By.ID, "stream").is_selected()  # a generating model streams by default...
    browser.find_element(By.ID, "stream").click()  # ...here the whole answer comes from /v1/predict
    browser.find_element(By.ID, "input-text").send_keys(text)
    browser.find_element(By.ID, "opt-max_new_tokens").send_keys("6")
    _submit_and_wait(browser, "output-text")
    assert _text(browser, "output-text") == expected
    assert LATENCY.match(_text(browser, "latency")), _text(browser, "latency")
    assert _text(browser, "error") == ""

    # Ctrl+Enter submits too; a value beyond the server's limit shows its error message and no output.
    limit = browser.find_element(By.ID, "opt-max_new_tokens")
    limit.send_keys(Keys.BACKSPACE, "100000")
    browser.find_element(By.ID, "input-text").send_keys(Keys.CONTROL, Keys.ENTER)
    _wait(browser, lambda d: _text(d, "error"), "the error message")
    assert _text(browser, "error").startswith("422 invalid_request: max_new_tokens")
    assert _text(browser, "output") == ""


def test_question_answering_page_highlights_the_answer(browser: Any, serve: Callable[..., Server], qa_dir: Path) -> None:
    from selenium.webdriver.common.by import By

    from texttune.api import load

    server = serve(qa_dir)
    _open(browser, server, "question-answering")
    assert browser.find_elements(By.CSS_SELECTOR, "[data-option]") == []  # the task takes no options
    question, context = "Where did Alice meet Bob?", "Alice met Bob in Paris after the <b>conference</b>."
    expected = load(qa_dir).predict([{"question": question, "context": context}])[0]
    browser.find_element(By.ID, "input-question").send_keys(question)
    browser.find_element(By.ID, "input-context").send_keys(context)
    _submit_and_wait(browser, "answer")

    shown = _text(browser, "answer")
    assert shown == f"Answer: {expected['answer'] or '(no answer)'} · score {expected['score']:.3f}"
    assert _text(browser, "highlighted") == context  # the context as text: the <b> is not markup
    marks = [m.get_property("textContent") for m in browser.find_elements(By.CSS_SELECTOR, "#highlighted mark")]
    assert marks == ([context[expected["start"]:expected["end"]]] if expected["answer"] else [])
    assert browser.find_elements(By.CSS_SELECTOR, "#highlighted b") == []
    assert LATENCY.match(_text(browser, "latency"))


def test_api_key_is_asked_for_then_used(browser: Any, serve: Callable[..., Server], t5_summarizer: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from texttune.api import load

    server = serve(t5_summarizer, "--api-key-env", KEY_VAR, env={KEY_VAR: KEY})
    browser.get(server.url + "/")
    _wait(browser, lambda d: "needs an API key" in _text(d, "status"), "the API key message")
    assert not browser.find_element(By.ID, "form").is_displayed()

    key_field = browser.find_element(By.ID, "api-key")
    key_field.send_keys("wrong", Keys.ENTER)
    _wait(browser, lambda d: "refused" in _text(d, "status"), "the refused-key message")
    key_field.clear()
    key_field.send_keys(KEY)
    browser.find_element(By.ID, "api-key-apply").click()
    _wait(browser, lambda d: _text(d, "task") == "summarization", "the form after the key")
    assert not browser.find_element(By.ID, "status").is_displayed()

    text = "documentation for the command line tool"
    browser.find_element(By.ID, "input-text").send_keys(text)
    browser.find_element(By.ID, "opt-max_new_tokens").send_keys("4")
    _submit_and_wait(browser, "output-text")  # streamed: the key goes to the OpenAI-compatible route too
    assert _text(browser, "output-text").strip() == load(t5_summarizer).predict([text], max_new_tokens=4)[0]
    assert _text(browser, "latency").startswith("streamed ")


def test_a_generating_model_streams_its_tokens_into_the_page(browser: Any, serve: Callable[..., Server],
                                                             tiny_model_dir: Callable[[str], Path],
                                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    from selenium.webdriver.common.by import By

    from texttune.api import CausalLM, load

    model_dir = CausalLM(backbone=str(tiny_model_dir("llama-chat"))).save(tmp_path_factory.mktemp("causal") / "model")
    _open(browser, serve(model_dir), "causal-lm")
    # Every change of the output is recorded: streamed text shows up in several steps, before the answer is whole.
    browser.execute_script("""
        window.lengths = [];
        new MutationObserver(() => {
          const out = document.getElementById("output-text");
          if (out) window.lengths.push(out.textContent.length);
        }).observe(document.getElementById("output"), {subtree: true, childList: true, characterData: true});""")
    text = "the package provides"
    browser.find_element(By.ID, "input-text").send_keys(text)
    browser.find_element(By.ID, "opt-max_new_tokens").clear()
    browser.find_element(By.ID, "opt-max_new_tokens").send_keys("40")
    _submit_and_wait(browser, "output-text")
    final = _text(browser, "output-text")
    assert final.strip() == load(model_dir).predict([text], max_new_tokens=40)[0]
    lengths = [n for n in browser.execute_script("return window.lengths") if n > 0]
    assert len(set(lengths)) >= 3 and min(lengths) < len(final), lengths
    assert re.match(r"^streamed \d+ chunks · first token \d+ ms · total \d+ ms · ended by (stop|length)$",
                    _text(browser, "latency")), _text(browser, "latency")


@pytest.fixture(scope="module")
def classifiers(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny BERT saved, untrained, as single-label and multi-label text classifiers of four labels."""
    from texttune.api import TextClassification

    root = tmp_path_factory.mktemp("classifiers")
    return {kind: TextClassification(backbone=str(tiny_model_dir("bert")), label_list="games,python,science,sound",
                                     problem_type=kind).save(root / kind) for kind in ("single-label", "multi-label")}


def _bars(driver: Any) -> list[tuple[str, float, bool]]:
    """The score bars shown: (label, percentage, chosen)."""
    from selenium.webdriver.common.by import By

    labels = driver.find_elements(By.CSS_SELECTOR, "#class-bars .bar-label")
    shares = driver.find_elements(By.CSS_SELECTOR, "#class-bars .bar-pct")
    return [(label.get_property("textContent"), float(share.get_property("textContent").rstrip("%")),
             "chosen" in label.get_attribute("class")) for label, share in zip(labels, shares)]


def _expected_bars(output: dict[str, Any]) -> list[tuple[str, float, bool]]:
    chosen = output["labels"] if "labels" in output else [{"label": output["label"], "score": output["score"]}]
    rows = list(output.get("top_k", []))
    rows += [c for c in chosen if c["label"] not in {r["label"] for r in rows}]
    names = {c["label"] for c in chosen}
    return [(r["label"], 100 * r["score"], r["label"] in names) for r in sorted(rows, key=lambda r: -r["score"])]


def _check_bars(driver: Any, output: dict[str, Any]) -> None:
    shown, expected = _bars(driver), _expected_bars(output)
    assert [(label, chosen) for label, _, chosen in shown] == [(label, chosen) for label, _, chosen in expected]
    assert [pct for _, pct, _ in shown] == pytest.approx([pct for _, pct, _ in expected], abs=0.051)


def test_classification_pages_show_the_scores_as_bars(browser: Any, serve: Callable[..., Server],
                                                      classifiers: dict[str, Path]) -> None:
    from selenium.webdriver.common.by import By

    from texttune.api import load

    text = "A puzzle game with <b>levels</b>"
    server = serve(classifiers["single-label"])
    _open(browser, server, "text-classification")
    option_ids = {e.get_attribute("id") for e in browser.find_elements(By.CSS_SELECTOR, "[data-option]")}
    assert option_ids == {"opt-top_k", "opt-threshold"}
    browser.find_element(By.ID, "input-text").send_keys(text)
    browser.find_element(By.ID, "opt-top_k").send_keys("3")
    _submit_and_wait(browser, "class-bars")
    [expected] = load(classifiers["single-label"]).predict([text], top_k=3)
    assert _text(browser, "class-summary") == f"Label: {expected['label']} · score {expected['score']:.3f}"
    _check_bars(browser, expected)
    assert len(_bars(browser)) == 3 and [chosen for *_, chosen in _bars(browser)].count(True) == 1
    assert _text(browser, "error") == ""

    # multi-label: every label chosen at threshold 0 (bars beyond top_k too), none at 1
    model = load(classifiers["multi-label"])
    server = serve(classifiers["multi-label"])
    _open(browser, server, "text-classification")
    browser.find_element(By.ID, "input-text").send_keys(text)
    browser.find_element(By.ID, "opt-top_k").send_keys("2")
    browser.find_element(By.ID, "opt-threshold").send_keys("0")
    _submit_and_wait(browser, "class-bars")
    [everything] = model.predict([text], top_k=2, threshold=0.0)
    assert _text(browser, "class-summary") == "Labels: " + ", ".join(c["label"] for c in everything["labels"])
    _check_bars(browser, everything)
    assert len(_bars(browser)) == 4 and all(chosen for *_, chosen in _bars(browser))
    field = browser.find_element(By.ID, "opt-threshold")
    field.clear()
    field.send_keys("1")
    _submit_and_wait(browser, "class-bars")
    [nothing] = model.predict([text], top_k=2, threshold=1.0)
    _wait(browser, lambda d: _text(d, "class-summary") == "No label reaches the threshold.", "the empty multi-label answer")
    _check_bars(browser, nothing)
    assert not any(chosen for *_, chosen in _bars(browser))
