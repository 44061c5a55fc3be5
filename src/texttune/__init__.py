"""texttune: fine-tune, evaluate, run and serve transformer models for text tasks.

The public Python API::

    from texttune import Summarization, load
    task = Summarization(backbone="smollm2-135m")
    run = task.fit(train="train.jsonl", validation="val.jsonl", max_steps=60)
    task.predict(["A long text ..."])
    task.save("my-model"); same = load("my-model")

Importing texttune is cheap and has no side effects: heavy libraries (torch,
transformers, lightning) are imported when a task is built or used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Summarization",
    "Translation",
    "Text2Text",
    "QuestionAnswering",
    "MaskedLM",
    "CausalLM",
    "TokenClassification",
    "TexttuneError",
    "Client",
    "ServerError",
    "load",
    "__version__",
]

if TYPE_CHECKING:  # pragma: no cover
    from texttune.api import Summarization, Text2Text, Translation, load
    from texttune.api import QuestionAnswering
    from texttune.api import CausalLM, MaskedLM
    from texttune.api import TokenClassification
    from texttune.client import Client, ServerError
    from texttune.errors import TexttuneError


def __getattr__(name: str) -> Any:
    # Lazy so that `import texttune` (and `texttune --help`) stays fast.
    if name in {"Summarization", "Translation", "Text2Text", "QuestionAnswering", "MaskedLM", "CausalLM", "TokenClassification", "load"}:
        from texttune import api

        return getattr(api, name)
    if name in {"Client", "ServerError"}:
        from texttune import client

        return getattr(client, name)
    if name == "TexttuneError":
        from texttune.errors import TexttuneError

        return TexttuneError
    raise AttributeError(f"module 'texttune' has no attribute {name!r}")
