"""The options of a resumed run: the run's own ``config.yaml``, and what a resume may change.

``texttune train TASK --resume latest --output-dir RUN`` needs no other flag: the run's
``config.yaml`` says what it trains, on what, and how. A flag given again with the same
value is fine; a different value is refused (one line naming the option and both values)
unless it is in :data:`MAY_CHANGE_ON_RESUME`, because the checkpoint's optimizer state,
data order and learned labels only make sense with the options they were made with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from texttune.config import RunConfig
from texttune.errors import ConfigError

log = logging.getLogger("texttune")

#: Options a resume may change: how long training goes on, and how it is watched and saved.
#: Never what is trained, on which data, or how (learning rate, batch size, seed, lengths...).
MAY_CHANGE_ON_RESUME: tuple[str, ...] = (
    "max_steps", "max_epochs", "early_stopping_patience",  # train longer, or stop differently
    "checkpoint_every_steps", "checkpoint_every_minutes",
    "generation_batch_size",  # evaluation memory only: a run that ran out of it can go on with less
    "num_workers", "progress_bar", "log_every_steps", "samples_per_eval", "tensorboard", "mlflow", "mlflow_tracking_uri",
    "bootstrap", "test_file",  # how the final numbers are reported, and a test split scored once at the end
    "packing",  # the same examples, steps and loss in other rows (tasks/packing.py): a speed choice only
)
#: How a resume is asked for, not what the run is: never compared.
_INVOCATION = ("resume", "output_dir")
#: Options whose 'auto' the run turned into a number in config.yaml: 'auto' again on resume means that number.
#: (``--batch-size auto`` keeps 'auto' in config.yaml; its choice is read back from batch_size.json.)
_CHOSEN_BY_THE_RUN = ("learning_rate",)


def resumed_options(*, task: str, given: dict[str, Any], saved: dict[str, Any], source: Path,
                    build: Callable[[dict[str, Any]], RunConfig]) -> tuple[dict[str, Any], dict[str, tuple[Any, Any]]]:
    """(the options to resume with, the allowed changes as {option: (run's value, new value)}).

    ``given``: the options of this command (flags, ``--config`` keys or API arguments);
    ``saved``: the run's ``config.yaml`` (``source``); ``build``: the task's config builder,
    so values are compared after type conversion (``5e-5`` equals ``0.00005``).
    """
    if saved.get("task", task) != task:
        raise ConfigError(f"{source} is a {saved['task']!r} run, not a {task!r} one; continue it with "
                          f"'texttune train {saved['task']} --resume latest --output-dir {source.parent}'")
    given = {k.replace("-", "_"): v for k, v in given.items()}
    for key in _CHOSEN_BY_THE_RUN:
        if _is_auto(given.get(key)) and key in saved and not _is_auto(saved[key]):
            log.info("%s auto: resuming with %r, the value this run has (no new probe)", key, saved[key])
            del given[key]
    before = build({k: v for k, v in saved.items() if k not in _INVOCATION}).flat()
    after = build({**saved, **given}).flat()
    changes: dict[str, tuple[Any, Any]] = {}
    for key in sorted(k for k in given if k not in _INVOCATION and k != "task"):
        if before.get(key) == after.get(key):
            continue
        if key not in MAY_CHANGE_ON_RESUME:
            raise ConfigError(
                f"option {key!r} is {before.get(key)!r} in the run being resumed ({source}) but {after.get(key)!r} now; "
                f"a resumed run keeps its options (only {', '.join(MAY_CHANGE_ON_RESUME)} may change): drop the option, "
                f"or start a new run in another --output-dir")
        changes[key] = (before.get(key), after.get(key))
    return {**saved, **given}, changes


def _is_auto(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() == "auto"
