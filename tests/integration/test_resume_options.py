"""``--resume latest`` needs no other flag: the run's config.yaml says what to continue; changes are refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from texttune.files import read_json

DATA = Path(__file__).resolve().parents[1] / "data"
Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(tiny_model_dir: Callable[[str], Path], cli: Cli, tmp_path: Path) -> Path:
    """A 2-step summarization run with non-default options (lengths, learning rate, columns)."""
    out = tmp_path / "run"
    code, _, err = cli("-q", "train", "summarization", "--backbone", tiny_model_dir("t5"),
                       "--train-file", DATA / "summarization.jsonl", "--validation-file", DATA / "summarization-val.jsonl",
                       "--output-dir", out, "--max-steps", "2", "--batch-size", "4", "--no-progress-bar",
                       "--max-eval-samples", "4", "--max-source-length", "48", "--learning-rate", "3e-4", "--no-baselines")
    assert code == 0, err
    return out


def test_resume_latest_alone_continues_with_the_runs_options(run: Path, cli: Cli) -> None:
    config = (run / "config.yaml").read_text()
    code, _, err = cli("-q", "train", "summarization", "--resume", "latest", "--output-dir", run)
    assert code == 0, err
    assert read_json(run / "status.json")["state"] == "completed"
    assert (run / "config.yaml").read_text() == config  # nothing changed, nothing rewritten differently
    assert read_json(run / "model" / "texttune.json")["trained_steps"] == 2


def test_training_longer_is_the_one_change_and_config_yaml_records_it(run: Path, cli: Cli) -> None:
    import yaml

    code, _, err = cli("-q", "train", "summarization", "--resume", "latest", "--output-dir", run, "--max-steps", "4",
                       "--learning-rate", "0.0003")  # the run's own value, spelled differently: not a change
    assert code == 0, err
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["max_steps"], saved["learning_rate"], saved["max_source_length"]) == (4, 3e-4, 48)
    assert read_json(run / "metrics.json")["steps"] == 4


@pytest.mark.parametrize(("argv", "message"), [
    (["--learning-rate", "1e-3"], "option 'learning_rate' is 0.0003 in the run being resumed"),
    (["--max-source-length", "64"], "option 'max_source_length' is 48 in the run being resumed"),
    (["--train-file", str(DATA / "translation.jsonl")], "option 'train_file' is"),
])
def test_a_changed_option_is_refused_and_config_yaml_kept(run: Path, cli: Cli, argv: list[str], message: str) -> None:
    before = (run / "config.yaml").read_bytes(), (run / "status.json").read_bytes()
    code, out, err = cli("-q", "train", "summarization", "--resume", "latest", "--output-dir", run, *argv)
    assert code == 2 and out == ""
    assert message in err and "only max_steps" in err and len(err.strip().splitlines()) == 1, err
    assert ((run / "config.yaml").read_bytes(), (run / "status.json").read_bytes()) == before


def test_resuming_as_another_task_is_refused_naming_the_command(run: Path, cli: Cli) -> None:
    code, _, err = cli("-q", "train", "translation", "--resume", "latest", "--output-dir", run)
    assert code == 2
    assert "is a 'summarization' run, not a 'translation' one; continue it with 'texttune train summarization" in err


def test_the_api_resumes_from_the_run_directory_alone(run: Path) -> None:
    from texttune import Summarization

    result = Summarization().fit(output_dir=run, max_steps=3, options={"resume": "latest", "progress_bar": False})
    assert result.metrics["steps"] == 3
    assert read_json(result.model_dir / "texttune.json")["trained_steps"] == 3
