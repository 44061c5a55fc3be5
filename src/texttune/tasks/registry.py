"""The task registry: a literal dict, so what exists is readable in one place."""

from __future__ import annotations

from texttune.errors import ConfigError, choices
from texttune.tasks.causal_lm import CausalLMTask
from texttune.tasks.masked_lm import MaskedLMTask
from texttune.tasks.question_answering import QuestionAnsweringTask
from texttune.tasks.text2text import SummarizationTask, Text2TextTask, TranslationTask
from texttune.tasks.token_classification import TokenClassificationTask

TASKS: dict[str, type] = {
    "summarization": SummarizationTask,
    "translation": TranslationTask,
    "text2text": Text2TextTask,
    "masked-lm": MaskedLMTask,
    "causal-lm": CausalLMTask,
    "question-answering": QuestionAnsweringTask,
    "token-classification": TokenClassificationTask,
}


def task_class(name: str) -> type:
    """The task class registered under ``name``; a clear error listing the valid names otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; valid tasks: {choices(TASKS)}") from None
