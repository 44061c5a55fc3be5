"""texttune: fine-tune, evaluate, run and serve transformer models for text tasks.

The public Python API::

    from texttune import Summarization, load
    task = Summarization(backbone="smollm2-135m")
    run = task.fit(train="train.jsonl", validation="val.jsonl", max_steps=60)
    task.predict(["A long text ..."])
    task.save("my-model"); same = load("my-model")

One class per task (``Summarization``, ``Translation``, ``TokenClassification``...),
generated from the task registry: ``texttune tasks`` lists them. Importing texttune
is cheap and has no side effects: the task classes, and heavy libraries (torch,
transformers, lightning), are imported when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from texttune._version import __version__ as __version__

_FIXED = ["TaskModel", "TexttuneError", "Client", "ServerError", "load", "push", "export", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from texttune.api import TaskModel as TaskModel
    from texttune.api import export as export
    from texttune.api import load as load
    from texttune.api import push as push
    from texttune.client import Client as Client
    from texttune.client import ServerError as ServerError
    from texttune.errors import TexttuneError as TexttuneError


def __getattr__(name: str) -> Any:
    # Lazy so that `import texttune` (and `texttune --help`) stays fast.
    if name.startswith("__") and name != "__all__":  # __path__, __file__...: not ours to make up
        raise AttributeError(name)
    if name in {"Client", "ServerError"}:
        return getattr(importlib.import_module("texttune.client"), name)
    if name == "TexttuneError":
        return importlib.import_module("texttune.errors").TexttuneError
    api = importlib.import_module("texttune.api")
    if name == "__all__":
        return [*api.api_names(), *_FIXED]
    if name in {"TaskModel", "load", "push", "export"} or name in api.api_names():
        return getattr(api, name)
    raise AttributeError(f"module 'texttune' has no attribute {name!r}")
