"""Bad input, catalogued: every case gets one clear answer and leaves nothing half-written.

Why: a fine-tuning run lasts hours and a server weeks; a bad file, option, config
file, model directory or request must be refused at once with one line that names
the file, line, column or value (exit status 2 on the command line, a documented
status over HTTP), never with a traceback, and must leave no run directory,
predictions or metrics file behind that a later step could mistake for a result.

The cases live in ``bad_inputs_cases.py`` and ``bad_requests_cases.py``. Almost all
fail before a model is loaded; the few that need one share the session's tiny models.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bad_inputs_cases import CASES, HANDLED, Case, Env, Handled
from bad_requests_cases import DOCUMENTED_STATUSES, HTTP_CASES, HttpCase
from run_files import assert_user_error, read_json

#: Longest acceptable error line: enough for a list of every valid option, never a whole echoed file line.
MAX_MESSAGE = 4000


@pytest.fixture(scope="module")
def llama_summarizer(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from texttune.api import Summarization

    return Summarization(backbone=str(tiny_model_dir("llama"))).save(tmp_path_factory.mktemp("llama-summarizer") / "model")


@pytest.fixture
def env(tmp_path: Path, tiny_model_dir: Callable[[str], Path], t5_summarizer: Path, llama_summarizer: Path) -> Env:
    return Env(tmp=tmp_path, backbone=tiny_model_dir, saved=t5_summarizer, causal=llama_summarizer)


def test_the_catalogue_is_large_and_distinct() -> None:
    names = [c.name for c in CASES] + [c.name for c in HTTP_CASES]
    assert len(set(names)) == len(names), "case names must be distinct"
    assert len(names) >= 40
    assert {c.area for c in CASES} == {"data", "options", "config file", "model dir"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_one_clear_error(case: Case, env: Env, cli: Callable[..., tuple[int, str, str]],
                                       capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    argv = case.argv(env)
    if case.stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(case.stdin))
    if case.usage:  # argparse: usage lines, then the one line that says what is wrong
        code, out, err = _usage_error(argv, capsys)
        last = err.strip().splitlines()[-1]
        assert code == 2 and "Traceback" not in err and "error: " in last, err
        for needle in case.needles:
            assert needle in last, (needle, err)
    else:
        code, out, err = cli(*argv)
        assert_user_error(code, err, *case.needles)
        assert len(err) < MAX_MESSAGE, f"{len(err)} characters of error"
    assert out == "", "nothing may be printed as a result"
    for name in case.absent:
        assert not (env.tmp / name).exists(), f"{name} was left behind"
    if case.failed_run:
        run = env.tmp / "run"
        status = read_json(run / "status.json")
        assert status["state"] == "failed" and "Error" in status["error"], status
        assert not (run / "model").exists()


def _usage_error(argv: Any, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from texttune.cli.main import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


# -- HTTP -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", HTTP_CASES, ids=[c.name for c in HTTP_CASES])
def test_bad_request_gets_one_documented_error(case: HttpCase, server: Any) -> None:
    response = server.post("/v1/predict", **case.request)
    assert response.status_code == case.status, response.text
    assert case.status in DOCUMENTED_STATUSES
    body = response.json()
    assert set(body) == {"error"} and body["error"]["status"] == case.status and body["error"]["code"] == case.code, body
    message = body["error"]["message"]
    assert "Traceback" not in message and "\n" not in message and len(message) < MAX_MESSAGE
    for needle in case.needles:
        assert needle in message, (needle, message)


def test_the_server_still_serves_after_the_bad_requests(server: Any) -> None:
    for case in HTTP_CASES:
        server.post("/v1/predict", **case.request)
    response = server.post("/v1/predict", json={"inputs": ["a tool for images", "a library"], "max_new_tokens": 3})
    assert response.status_code == 200 and len(response.json()["outputs"]) == 2
    metrics = server.get("/metrics").text
    assert 'status="500"' not in metrics


# -- inputs that look odd but are valid -------------------------------------------------------------
@pytest.mark.parametrize("case", HANDLED, ids=[c.name for c in HANDLED])
def test_odd_but_valid_input_loads_as_written(case: Handled, tmp_path: Path) -> None:
    from texttune.data import load_table

    path = tmp_path / case.file
    path.write_bytes(case.content)
    table = load_table(path)
    assert table.rows.column_names == case.columns
    assert table.rows[0] == case.first


def test_a_byte_order_mark_csv_predicts_end_to_end(env: Env, cli: Callable[..., tuple[int, str, str]]) -> None:
    inputs = env.write("bom.csv", "\ufeffdocument,id\nA tool that converts images.,7\n".encode())
    code, _, err = cli(*env.predict(None, "--max-new-tokens", "2", inputs=inputs))
    assert code == 0, err
    (record,) = [json.loads(line) for line in (env.tmp / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert record["document"] == "A tool that converts images." and record["id"] == "7" and isinstance(record["prediction"], str)
