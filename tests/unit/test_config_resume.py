"""A resumed run takes its options from its config.yaml; a different value is refused unless it may change."""

from __future__ import annotations

from pathlib import Path

import pytest

from texttune.config_resume import MAY_CHANGE_ON_RESUME, resumed_options
from texttune.errors import ConfigError
from texttune.tasks.registry import run_config

SOURCE = Path("runs/a/config.yaml")


def _saved(**extra: object) -> dict[str, object]:
    config = run_config("summarization", {"train_file": "train.jsonl", "max_steps": 2, "learning_rate": 3e-4,
                                          "max_source_length": 64, "output_dir": "runs/a", **extra})
    return config.flat()


def _resume(given: dict[str, object], saved: dict[str, object] | None = None, task: str = "summarization"):
    return resumed_options(task=task, given=given, saved=saved or _saved(), source=SOURCE,
                           build=lambda o: run_config(task, o))


def test_no_flags_means_the_runs_own_options() -> None:
    options, changes = _resume({"resume": "latest", "output_dir": "runs/a"})
    config = run_config("summarization", options)
    assert changes == {}
    assert (config.data.train_file, config.train.learning_rate, config.task_options.max_source_length) == ("train.jsonl", 3e-4, 64)
    assert config.train.resume == "latest"


def test_the_same_value_spelled_differently_is_not_a_change() -> None:
    _, changes = _resume({"resume": "latest", "learning-rate": "0.0003", "max_source_length": "64", "train_file": "train.jsonl"})
    assert changes == {}


def test_training_longer_is_allowed_and_reported() -> None:
    options, changes = _resume({"resume": "latest", "max_steps": "10", "progress_bar": False})
    assert changes == {"max_steps": (2, 10), "progress_bar": (True, False)}
    assert run_config("summarization", options).train.max_steps == 10


@pytest.mark.parametrize(("key", "value", "old", "new"), [
    ("learning_rate", "1e-3", "0.0003", "0.001"),
    ("max_source_length", 128, "64", "128"),  # a task option
    ("train_file", "other.jsonl", "'train.jsonl'", "'other.jsonl'"),
    ("seed", 7, "42", "7"),
    ("batch_size", "auto", "8", "'auto'"),
])
def test_a_different_value_is_refused_naming_both(key: str, value: object, old: str, new: str) -> None:
    with pytest.raises(ConfigError) as err:
        _resume({"resume": "latest", key: value})
    message = str(err.value)
    assert f"option {key!r} is {old} in the run being resumed ({SOURCE}) but {new} now" in message
    assert "\n" not in message and "max_steps" in message


def test_another_tasks_run_is_refused_with_the_command_that_continues_it() -> None:
    with pytest.raises(ConfigError, match=r"is a 'summarization' run, not a 'translation' one; continue it with "
                                          r"'texttune train summarization --resume latest --output-dir runs/a'"):
        _resume({"resume": "latest"}, task="translation")


def test_every_option_that_may_change_exists() -> None:
    flat = run_config("summarization", {}).flat()
    assert set(MAY_CHANGE_ON_RESUME) <= set(flat)
