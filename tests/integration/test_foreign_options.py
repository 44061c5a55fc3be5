"""An option of another task is refused, never ignored: on the command line, in a --config file, in the API.

Why: before the task redesign every ``texttune train TASK`` accepted every task's options and
silently ignored the ones it did not use (``train summarization --from-scratch tiny`` quietly
fine-tuned SmolLM2). Each case names the option, the task at hand and the task(s) it belongs to;
nothing is trained and no run directory is created.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from texttune.api import api_class
from texttune.errors import ConfigError
from run_files import assert_user_error

Cli = Callable[..., tuple[int, str, str]]

# (task at hand, option, value, a task it belongs to)
CASES = [
    ("summarization", "from_scratch", "tiny", "causal-lm"),
    ("summarization", "stride", "64", "question-answering"),
    ("summarization", "whole_word_masking", "true", "masked-lm"),
    ("summarization", "label_list", "O,B-PER", "token-classification"),
    ("summarization", "source_lang", "de", "translation"),
    ("summarization", "max_length", "64", "masked-lm"),
    ("causal-lm", "mlm_probability", "0.2", "masked-lm"),
    ("causal-lm", "max_source_length", "64", "summarization"),
    ("question-answering", "prefix", "answer: ", "text2text"),
    ("token-classification", "num_beams", "4", "summarization"),
    ("masked-lm", "version_2", "true", "question-answering"),
    ("translation", "aggregation", "max", "token-classification"),
    ("question-answering", "top_k", "3", "masked-lm"),
    ("text2text", "n_best", "5", "question-answering"),
]
IDS = [f"{task}-{option}" for task, option, _, _ in CASES]


def _flag(option: str, value: str) -> list[str]:
    flag = "--" + option.replace("_", "-")
    return [flag] if value == "true" else [flag, value]


@pytest.mark.parametrize(("task", "option", "value", "owner"), CASES, ids=IDS)
def test_cli_flag(task: str, option: str, value: str, owner: str, cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli("train", task, "--train-file", tmp_path / "none.jsonl", "--output-dir", tmp_path / "run",
                       *_flag(option, value))
    assert_user_error(code, err, f"'--{option.replace('_', '-')}' belongs to task", f"'{owner}'", f"not to task '{task}'")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("task", "option", "value", "owner"), CASES, ids=IDS)
def test_yaml_key(task: str, option: str, value: str, owner: str, cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"{option}: {value!r}\n" if value != "true" else f"{option}: true\n", encoding="utf-8")
    code, _, err = cli("train", task, "--train-file", tmp_path / "none.jsonl", "--output-dir", tmp_path / "run",
                       "--config", config)
    assert_user_error(code, err, f"'{option}' belongs to task", f"'{owner}'", f"not to task '{task}'")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("task", "option", "value", "owner"), CASES, ids=IDS)
def test_api_option(task: str, option: str, value: str, owner: str) -> None:
    with pytest.raises(ConfigError, match=f"'{option}' belongs to task.*'{owner}'.*not to task '{task}'"):
        api_class(task)(options={option: value})
    with pytest.raises(ConfigError, match=f"not to task '{task}'"):
        api_class(task)(**{option: value})  # the task's own keyword arguments are checked the same way


def test_vocab_size_needs_a_scratch_backbone(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    from texttune import CausalLM

    with pytest.raises(ConfigError, match="'vocab_size' sizes the tokenizer of a new model"):
        CausalLM(backbone=str(tiny_model_dir("llama")), vocab_size=500).predict(["hello"])


def test_generation_option_refused_by_evaluate_of_a_task_that_does_not_generate(cli: Cli, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "texttune.json").write_text('{"task": "question-answering", "auto_class": "AutoModelForQuestionAnswering"}')
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")  # never opened: the option is refused first
    code, _, err = cli("evaluate", model, "--data-file", tmp_path / "d.jsonl", "--num-beams", "4")
    assert_user_error(code, err, "'num_beams' does not apply to task 'question-answering'")
