"""The task registry: a literal dict, the only list of tasks, so what exists is readable in one place.

Everything else about a task is read from its class (``tasks/base.py``): the CLI's
per-task flags, the API classes (``texttune.api``), the server's request options,
LoRA's trainable heads and CTranslate2's generation tasks all come from here.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from texttune.config import (
    EVALUATION_ONLY,
    GENERATION_OPTIONS,
    RunConfig,
    TrainConfig,
    build_config,
    coerce_field,
    defaults_of,
    option_fields,
)
from texttune.errors import ConfigError, choices
from texttune.tasks.causal_lm import CausalLMTask
from texttune.tasks.chat import ChatTask
from texttune.tasks.masked_lm import MaskedLMTask
from texttune.tasks.question_answering import QuestionAnsweringTask
from texttune.tasks.text2text import SummarizationTask, Text2TextTask, TranslationTask
from texttune.tasks.text_classification import TextClassificationTask
from texttune.tasks.token_classification import TokenClassificationTask

TASKS: dict[str, type] = {
    "summarization": SummarizationTask,
    "translation": TranslationTask,
    "text2text": Text2TextTask,
    "masked-lm": MaskedLMTask,
    "causal-lm": CausalLMTask,
    "chat": ChatTask,
    "question-answering": QuestionAnsweringTask,
    "token-classification": TokenClassificationTask,
    "text-classification": TextClassificationTask,
}


def task_class(name: str) -> type:
    """The task class registered under ``name``; a clear error listing the valid names otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; valid tasks: {choices(TASKS)}") from None


def generation_fields(cls: type) -> tuple[str, ...]:
    """The GenerationConfig fields a task takes: all when it generates, the evaluation batch size otherwise."""
    return (*GENERATION_OPTIONS, *EVALUATION_ONLY) if cls.generates else EVALUATION_ONLY


def task_fields(cls: type) -> dict[str, tuple[str, Any]]:
    """Every flat option the task takes -> (section, dataclass field): the shared sections and its own."""
    return option_fields(cls.options, generation_fields=generation_fields(cls))


def request_fields(cls: type) -> dict[str, Any]:
    """The dataclass field behind each of the task's per-request options (help, type, choices, bounds)."""
    known = task_fields(cls)
    return {name: known[name][1] for name in cls.request_options}


def all_request_options() -> dict[str, dict[str, Any]]:
    """Every task's per-request options: name -> {task: the dataclass field declaring it for that task}.

    What ``texttune predict`` offers and the server's request schema holds before a model is known;
    the model's task then refuses the ones it does not take. One name may be declared by two
    sections (``top_k``: sampling for generation tasks, candidates for masked-lm).
    """
    found: dict[str, dict[str, Any]] = {}
    for name, cls in TASKS.items():
        for option, f in request_fields(cls).items():
            found.setdefault(option, {})[name] = f
    return found


def request_option_help(by_task: dict[str, Any]) -> str:
    """The help of one entry of :func:`all_request_options`, saying which tasks take it (and what it means to each)."""
    by_help: dict[str, list[str]] = {}  # one option may mean different things to different tasks (--top-k)
    for task, f in by_task.items():
        by_help.setdefault(f.metadata.get("help", ""), []).append(task)
    if len(by_help) > 1:
        return " ".join(f"{', '.join(tasks)}: {text}" for text, tasks in by_help.items())
    return f"{next(iter(by_help))} ({', '.join(by_task)})"


def split_request_options(task: Any, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-request options (predict keywords, HTTP fields) checked against the task's own list and bounds.

    Returns (generation overrides, the task's own ``predict`` keyword arguments); None values are dropped.
    """
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(task.request_options))
    if unknown:
        valid = f"valid: {choices(task.request_options)}" if task.request_options else "it takes none"
        raise ConfigError(f"option {unknown[0]!r} does not apply to task {task.name!r}; {valid}")
    known = task_fields(type(task))
    generation: dict[str, Any] = {}
    own: dict[str, Any] = {}
    for key, value in given.items():
        section, f = known[key]
        (generation if section == "generation" else own)[key] = coerce_field(key, value, f)
    return generation, own


def option_owners() -> dict[str, tuple[str, ...]]:
    """Options that only some tasks take -> those tasks (for refusing an option of another task by name)."""
    taken = {name: set(task_fields(cls)) for name, cls in TASKS.items()}
    every = set.intersection(*taken.values())
    owners: dict[str, list[str]] = {}
    for task, names in taken.items():
        for option in sorted(names - every):
            owners.setdefault(option, []).append(task)
    return {option: tuple(tasks) for option, tasks in owners.items()}


def run_config(name: str, options: dict[str, Any]) -> RunConfig:
    """The checked RunConfig of task ``name`` from flat options (CLI flags, a --config file, API keywords).

    An option of another task is refused naming that task and this one.
    """
    cls = task_class(name)
    roles = tuple(r.role for r in cls().roles)
    # A task's own defaults for shared options (e.g. its learning rate) come before anything the user gives.
    given = {key.replace("-", "_"): value for key, value in options.items()}
    options = {**task_train_defaults(cls, peft=given.get("peft")), **given}
    config = build_config(name, options, task_options=cls.options, column_roles=roles,
                          generation_fields=generation_fields(cls), elsewhere=option_owners())
    _check_auto_head(cls, config)
    return config


def task_train_defaults(cls: type, *, peft: str | None = None) -> dict[str, Any]:
    """The task's own defaults for shared options: ``train_defaults``, and under LoRA its ``lora_train_defaults`` on
    top (adapters start at zero and were measured to want a larger rate: docs/recipes.md)."""
    defaults = dict(getattr(cls, "train_defaults", {}))
    if peft == "lora":
        defaults.update(getattr(cls, "lora_train_defaults", {}))
    return defaults


def auto_head_ratio(cls: type, head_learning_rate: float | None) -> float | None:
    """With ``--learning-rate auto``: the head's rate over the backbone's, as the task's defaults give it
    (text-classification: 3e-3 / 3e-4 = 10); None when the head trains at the backbone's rate (one rate for all).

    Why the defaults' ratio: the head starts from random weights and needs a higher rate than the pretrained
    backbone (engine/optimizer.py); the range test measures how far the whole model can be pushed, and the head
    keeps the margin that was measured for it.
    """
    if head_learning_rate is None:
        return None
    head = getattr(cls, "train_defaults", {}).get("head_learning_rate", head_learning_rate)
    return float(f"{float(head) / default_learning_rate(cls):.6g}")  # 3e-3 / 3e-4 is 10.000000000000002 in floats


def default_learning_rate(cls: type, *, peft: str | None = None) -> float:
    """The learning rate a run of the task class ``cls`` has when none is given (its own default, under LoRA its
    LoRA default, else texttune's): what ``--learning-rate auto`` falls back to when the range test finds no descent."""
    own = task_train_defaults(cls, peft=peft)
    return float(own.get("learning_rate", defaults_of(TrainConfig)["learning_rate"]))


def _check_auto_head(cls: type, config: RunConfig) -> None:
    """``--learning-rate auto`` with a head rate other than the task's default: refused (the head follows auto)."""
    t = config.train
    default = getattr(cls, "train_defaults", {}).get("head_learning_rate")
    if t.learning_rate != "auto" or t.head_learning_rate is None or t.head_learning_rate == default:
        return
    follows = f"{auto_head_ratio(cls, default):g}x the chosen rate" if default else "the chosen rate"
    raise ConfigError(f"option 'head_learning_rate' ({t.head_learning_rate:g}) cannot be combined with --learning-rate "
                      f"auto: with auto the head trains at {follows} (the task's ratio); give --learning-rate a number "
                      f"to set the head's rate yourself, or leave --head-learning-rate out")


def own_option_names(cls: type) -> tuple[str, ...]:
    """The names of the task's own options (its options dataclass), in declaration order."""
    return tuple(f.name for f in fields(cls.options))
