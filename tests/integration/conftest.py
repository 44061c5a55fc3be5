"""Fixtures for the integration tests: real training runs on the tiny test models.

Why one torch thread: the tiny models do matrix products of a few thousand
numbers, which gain nothing from intra-op threads; on a 2-core machine that is
busy with anything else, OpenMP's thread hand-offs then cost ~15 ms per product
and a two-step training run takes 30 s instead of one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"

#: Options that keep every training run to a couple of seconds on the tiny models.
FAST: dict[str, object] = {"max_steps": 2, "batch_size": 4, "max_eval_samples": 6}


@pytest.fixture(scope="session", autouse=True)
def single_torch_thread() -> Iterator[None]:
    """Run torch with one intra-op thread for the session (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The sample data files (see tests/data/README.md)."""
    return DATA


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``texttune`` in-process: ``cli("train", ...) -> (exit code, stdout, stderr)``."""
    from texttune.cli.main import main

    def run(*argv: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def ready_client() -> Callable[..., Any]:
    """``with ready_client(app) as client:`` a TestClient once the app's model is loaded (/ready is 200)."""
    import time
    from contextlib import contextmanager

    from fastapi.testclient import TestClient

    @contextmanager
    def open_client(app: Any, *, timeout: float = 60) -> Iterator[Any]:
        with TestClient(app) as client:
            deadline = time.monotonic() + timeout
            while client.get("/ready").status_code != 200:
                if time.monotonic() > deadline:
                    raise AssertionError(f"not ready after {timeout} s: {client.get('/ready').json()}")
                time.sleep(0.05)
            yield client

    return open_client


@pytest.fixture(scope="session")
def t5_summarizer(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A servable texttune model directory: the tiny T5 saved, untrained, as a summarization model."""
    from texttune.api import Summarization

    return Summarization(backbone=str(tiny_model_dir("t5"))).save(tmp_path_factory.mktemp("t5-summarizer") / "model")



@pytest.fixture(scope="module")
def server(t5_summarizer: Path, ready_client: Callable[..., Any]) -> Iterator[Any]:
    """An in-process server of the tiny T5 summarizer with small limits (4 inputs, 200 chars, 4000-byte bodies...)."""
    from texttune.api import load
    from texttune.config import serve_config
    from texttune.serving import ModelPredictor, create_app

    config = serve_config({"max_inputs_per_request": 4, "max_input_chars": 200, "max_body_bytes": 4000,
                           "max_new_tokens_limit": 16, "max_beams_limit": 2, "max_wait_ms": 20})
    with ready_client(create_app(config=config, load=lambda: ModelPredictor(t5_summarizer, load=load))) as client:
        yield client

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def require_browser() -> None:
    """Skip (fail in CI, which installs them) without Debian's chromium and chromedriver."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        reason = (f"browser tests need Debian's chromium and chromedriver; missing {', '.join(missing)} "
                  "(apt-get install chromium chromium-driver)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium per test module (each test opens its own page).

    Debian's chromium and chromedriver are used directly: Selenium Manager would
    try to download a driver, and the machines are offline. The browser's
    console is recorded (``driver.get_log("browser")``) so tests can check for errors.
    """
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1100,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
