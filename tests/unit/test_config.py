"""The typed run configuration: one flat option namespace for CLI, YAML and the Python API.

Why: every option reaches texttune through ``build_config`` (flags, ``--config``
files, API keywords), so a value it lets through unchecked becomes a crash deep
inside training, and a message it garbles is what users see instead of a fix.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from texttune.cli.parser import build_parser
from texttune.config import (
    SECTIONS,
    GenerationConfig,
    RunConfig,
    generation_from_mapping,
    option_fields,
)
from texttune.config_yaml import read_yaml
from texttune.errors import ConfigError, TexttuneError
from texttune.tasks import TASKS
from texttune.tasks.registry import generation_fields, option_owners, run_config

ROLES = ("text", "summary")  # the summarization task's column roles


def build(options: dict[str, Any], task: str = "summarization", roles: tuple[str, ...] = ROLES) -> RunConfig:
    """The task's config as CLI, YAML and API build it (the registry supplies the task's options and roles)."""
    return run_config(task, options)


# --------------------------------------------------------------------------- the namespace


@pytest.mark.parametrize("task", list(TASKS))
def test_flat_option_names_are_unique_across_sections(task: str) -> None:
    cls = TASKS[task]
    sections = {**SECTIONS, "task": cls.options}
    names = [f.name for section, c in sections.items() for f in fields(c)
             if f.name != "columns" and (section != "generation" or f.name in generation_fields(cls))]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    assert not duplicated, f"option names used by two sections: {duplicated}"
    assert set(option_fields(cls.options, generation_fields=generation_fields(cls))) == set(names)
    # Names that build_config treats specially must not be ordinary options too.
    assert "task" not in names
    assert not [n for n in names if n.endswith("_column")]


def test_every_option_documents_itself() -> None:
    for section, cls in [*SECTIONS.items(), *((name, t.options) for name, t in TASKS.items())]:
        for f in fields(cls):
            assert f.metadata.get("help", "").strip(), f"{section}.{f.name} has no help text"


def test_defaults_build_and_validate() -> None:
    config = build({})
    assert config.task == "summarization"
    assert config.train.batch_size == 8
    assert config.generation.max_new_tokens is None  # learned from training targets, never a silent 20
    assert config.data.columns == {}


# --------------------------------------------------------------------------- coercion


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("max_steps", "3", 3),
        ("max_steps", 3.0, 3),
        ("max-steps", "7", 7),  # dashes as on the command line
        ("max_steps", "none", None),
        ("learning_rate", "1e-4", 1e-4),
        ("learning_rate", 2, 2.0),
        ("progress_bar", "no", False),
        ("progress_bar", "ON", True),
        ("baselines", False, False),
        ("precision", 32, "32"),  # YAML reads `precision: 32` as an int
        ("backbone", "t5-small", "t5-small"),
        ("prefix", "none", "none"),  # str options keep the literal text
        ("top_p", "0.9", 0.9),
    ],
)
def test_values_are_coerced_to_the_declared_type(key: str, value: Any, expected: Any) -> None:
    config = build({key: value})
    flat = config.flat()
    name = key.replace("-", "_")
    assert flat[name] == expected
    assert type(flat[name]) is type(expected)


def test_column_options_land_in_data_columns() -> None:
    config = build({"text_column": "document", "summary-column": "title"})
    assert config.data.columns == {"text": "document", "summary": "title"}
    assert config.flat()["text_column"] == "document"


def test_unknown_option_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError) as info:
        build({"max_stepz": 3})
    message = str(info.value)
    assert "unknown option 'max_stepz'" in message
    assert "did you mean 'max_steps'?" in message
    assert "valid options:" in message and "batch_size" in message


def test_column_option_of_another_task_is_unknown() -> None:
    with pytest.raises(ConfigError, match="unknown option 'source_column'"):
        build({"source_column": "en"})
    config = build({"source_column": "en"}, task="translation", roles=("source", "target"))
    assert config.data.columns == {"source": "en"}


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("max_steps", "two", "option 'max_steps' needs an integer, got 'two'"),
        ("max_steps", 2.5, "needs an integer"),
        ("max_steps", True, "needs an integer"),
        ("learning_rate", "fast", "option 'learning_rate' needs a finite number"),
        ("learning_rate", "nan", "needs a finite number"),
        ("warmup_ratio", "inf", "needs a finite number"),
        ("progress_bar", "maybe", "option 'progress_bar' needs true or false"),
        ("backbone", ["a", "b"], "option 'backbone' needs a text value"),
        ("batch_size", None, "option 'batch_size' needs an integer or 'auto', got None"),
        ("batch_size", "null", "needs an integer or 'auto', got 'null'"),
    ],
)
def test_badly_typed_values_name_the_option_and_value(key: str, value: Any, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        build({key: value})
    assert needle in str(info.value)


def test_bad_choice_lists_the_valid_choices() -> None:
    with pytest.raises(ConfigError) as info:
        build({"lr_schedule": "cos"})
    assert str(info.value) == "option 'lr_schedule' got 'cos'; valid choices: 'constant', 'cosine', 'linear'"
    with pytest.raises(ConfigError, match="'bf16-mixed'"):
        build({"precision": "fp16"})


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"batch_size": -4}, "option 'batch_size' must be > 0, got -4"),
        ({"batch_size": 0}, "option 'batch_size' must be > 0, got 0"),
        ({"max_steps": 0}, "'max_steps' must be > 0"),
        ({"max_eval_samples": -1}, "'max_eval_samples' must be > 0"),
        ({"max_source_length": 0}, "'max_source_length' must be >= 1"),
        ({"learning_rate": 0}, "'learning_rate' must be > 0"),
        ({"weight_decay": -0.1}, "'weight_decay' must be >= 0"),
        ({"warmup_ratio": 1.0}, "'warmup_ratio' must be in [0, 1)"),
        ({"validation_fraction": 0}, "'validation_fraction' must be in (0, 1)"),
        ({"validation_fraction": 1.5}, "'validation_fraction' must be in (0, 1)"),
        ({"top_p": 1.5}, "option 'top_p' must be in (0, 1], got 1.5"),
        ({"top_p": 0}, "option 'top_p' must be in (0, 1], got 0.0"),
        ({"num_beams": 0}, "'num_beams' must be >= 1"),
        ({"temperature": 0}, "'temperature' must be in [0.01, 100]"),
        ({"min_new_tokens": 10, "max_new_tokens": 5}, "min_new_tokens (10) is larger than max_new_tokens (5)"),
    ],
)
def test_out_of_range_values_are_refused(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(options)
    assert needle in str(info.value)


def test_edge_values_inside_the_ranges_are_accepted() -> None:
    config = build({"top_p": 1, "min_new_tokens": 5, "max_new_tokens": 5, "warmup_ratio": 0, "weight_decay": 0})
    assert config.generation.top_p == 1.0
    assert config.generation.min_new_tokens == config.generation.max_new_tokens == 5


def test_task_key_must_match_the_command() -> None:
    assert build({"task": "summarization"}).task == "summarization"
    with pytest.raises(ConfigError, match="config says task 'translation' but the command is for task 'summarization'"):
        build({"task": "translation"})


def test_config_errors_are_user_errors_with_exit_code_2() -> None:
    with pytest.raises(TexttuneError) as info:
        build({"batch_size": "many"})
    assert info.value.exit_code == 2


def test_generation_from_mapping_checks_names_types_and_ranges() -> None:
    assert generation_from_mapping({"num_beams": "4"}) == GenerationConfig(num_beams=4)
    with pytest.raises(ConfigError, match="unknown generation option 'beams'"):
        generation_from_mapping({"beams": 4})
    with pytest.raises(ConfigError, match="'top_p' must be in"):
        generation_from_mapping({"top_p": 2})


# --------------------------------------------------------------------------- flat() and YAML


def test_flat_round_trips_through_build_config() -> None:
    original = build(
        {
            "train_file": "train.jsonl",
            "text_column": "document",
            "max_steps": 3,
            "learning_rate": 3e-4,
            "precision": "bf16-mixed",
            "progress_bar": False,
            "top_p": 0.5,
            "prefix": "",
            "max_new_tokens": 12,
        }
    )
    flat = original.flat()
    assert flat["task"] == "summarization"
    assert flat["text_column"] == "document"
    assert "columns" not in flat
    assert build(flat) == original


def test_flat_round_trips_through_a_yaml_file(tmp_path: Path) -> None:
    original = build({"max_steps": 3, "learning_rate": 5e-5, "precision": "32", "gradient_clip_val": None})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(original.flat(), sort_keys=False), encoding="utf-8")
    assert build(read_yaml(path)) == original


def test_read_yaml_reads_a_flat_mapping(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("max_steps: 3\nbackbone: models/t5\nprogress_bar: false\n", encoding="utf-8")
    assert read_yaml(path) == {"max_steps": 3, "backbone": "models/t5", "progress_bar": False}


def test_read_yaml_of_an_empty_file_is_an_empty_mapping(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing set\n", encoding="utf-8")
    assert read_yaml(path) == {}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("- max_steps\n- 3\n", "expected a mapping of option names to values, got list"),
        ("just a string\n", "expected a mapping of option names to values, got str"),
        ("train:\n  max_steps: 3\n", "option 'train' must be a single value, got a dict"),
        ("columns: [a, b]\n", "option 'columns' must be a single value, got a list"),
        ("max_steps: [3\n", "not valid YAML"),
    ],
)
def test_read_yaml_errors_name_the_file(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert needle in str(info.value)
    assert str(path) in str(info.value)


def test_read_yaml_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        read_yaml(tmp_path / "nope.yaml")


def test_unknown_yaml_key_is_refused_by_build_config(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("max_steps: 3\nlearning_rat: 0.1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown option 'learning_rat' \\(did you mean 'learning_rate'\\?\\)"):
        build(read_yaml(path))


# --------------------------------------------------------------------------- --help


def _parsers(parser: argparse.ArgumentParser, path: str = "texttune") -> list[tuple[str, argparse.ArgumentParser]]:
    """The parser and every sub-command parser below it, with their command paths."""
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(_parsers(sub, f"{path} {name}"))
    return found


def test_every_cli_flag_has_help_text() -> None:
    parsers = _parsers(build_parser())
    commands = {path for path, _ in parsers}
    assert {"texttune train summarization", "texttune train translation", "texttune train text2text",
            "texttune evaluate", "texttune predict"} <= commands
    missing = []
    flags = 0
    for path, parser in parsers:
        for action in parser._actions:
            if not action.option_strings:
                continue
            flags += 1
            if not action.help or action.help == argparse.SUPPRESS or not str(action.help).strip():
                missing.append(f"{path} {'/'.join(action.option_strings)}")
    assert not missing, f"flags without help: {missing}"
    assert flags > 150  # every option of every task, not just --help


def test_train_flags_are_exactly_the_task_options() -> None:
    """Each task's train command offers every option the task takes and no other task's (the data section:
    those that apply to training), so ``texttune train TASK --help`` lists only what that task uses."""
    data_only_elsewhere = {"data_file", "max_predict_samples"}
    owners = option_owners()
    for path, parser in _parsers(build_parser()):
        if not path.startswith("texttune train "):
            continue
        cls = TASKS[path.removeprefix("texttune train ")]
        dests = {a.dest for a in parser._actions}
        taken = set(option_fields(cls.options, generation_fields=generation_fields(cls))) - data_only_elsewhere
        assert taken <= dests, path
        foreign = {name for name in owners if name not in taken}
        assert not (foreign & dests), (path, sorted(foreign & dests))


def test_help_renders_for_every_command() -> None:
    for path, parser in _parsers(build_parser()):
        text = parser.format_help()
        assert text.startswith("usage: "), path


# --------------------------------------------------------------------------- the server's options


def test_serve_options_are_documented_and_do_not_shadow_run_options() -> None:
    from texttune.config import ServeConfig

    run_names = {f.name for cls in SECTIONS.values() for f in fields(cls)}
    for f in fields(ServeConfig):
        assert f.metadata.get("help", "").strip(), f"serve.{f.name} has no help text"
        assert f.name not in run_names, f"serve option {f.name!r} also names a run option"


def test_serve_config_checks_names_types_and_ranges() -> None:
    from texttune.config import serve_config

    assert serve_config({}).host == "127.0.0.1"  # loopback unless asked otherwise
    assert serve_config({"max-batch-size": "4"}).max_batch_size == 4
    with pytest.raises(ConfigError, match="did you mean 'max_batch_size'"):
        serve_config({"max_batch_sise": 4})
    with pytest.raises(ConfigError, match="'max_wait_ms' must be >= 0"):
        serve_config({"max_wait_ms": -1})
    with pytest.raises(ConfigError, match=r"'port' must be in \[0, 65535\]"):
        serve_config({"port": 70000})
    with pytest.raises(ConfigError, match="valid choices: 'ctranslate2', 'transformers'"):
        serve_config({"backend": "onnx"})


def test_a_task_s_own_defaults_for_shared_options_come_before_the_user_s() -> None:
    from texttune.tasks.registry import run_config

    cls = TASKS["text-classification"]
    assert run_config("text-classification", {}).train.learning_rate == cls.train_defaults["learning_rate"]
    assert run_config("text-classification", {"learning-rate": "3e-5"}).train.learning_rate == 3e-5
    assert run_config("summarization", {}).train.learning_rate == 5e-5  # other tasks keep the shared default
    text = next(a for a in build_parser()._subparsers._group_actions[0].choices["train"]._subparsers._group_actions[0]
                .choices["text-classification"]._actions if "--learning-rate" in a.option_strings).help
    assert f"(default: {cls.train_defaults['learning_rate']} for this task)" in text


def test_lora_defaults_replace_the_task_defaults_only_under_lora() -> None:
    """text-to-text tasks train LoRA adapters at their measured LoRA rate; full fine-tuning and other tasks keep theirs,
    and a value the user gives always wins (flags, API options, YAML alike: all reach run_config)."""
    from texttune.cli.main import build_parser
    from texttune.tasks.registry import TASKS, default_learning_rate, run_config

    lora = TASKS["summarization"].lora_train_defaults
    config = run_config("summarization", {"peft": "lora"})
    assert (config.train.learning_rate, config.train.warmup_ratio) == (lora["learning_rate"], lora["warmup_ratio"])
    assert run_config("summarization", {"peft": "lora", "learning-rate": "1e-4"}).train.learning_rate == 1e-4
    assert run_config("summarization", {"peft": "lora", "warmup_ratio": 0.0}).train.warmup_ratio == 0.0
    assert run_config("summarization", {}).train.learning_rate == 5e-5
    assert run_config("token-classification", {"peft": "lora"}).train.learning_rate == 3e-4  # no LoRA default there
    assert default_learning_rate(TASKS["translation"], peft="lora") == lora["learning_rate"]
    assert default_learning_rate(TASKS["translation"]) == 5e-5
    text = next(a for a in build_parser()._subparsers._group_actions[0].choices["train"]._subparsers._group_actions[0]
                .choices["summarization"]._actions if "--learning-rate" in a.option_strings).help
    assert f"(default: 5e-05; {lora['learning_rate']} with --peft lora)" in text
