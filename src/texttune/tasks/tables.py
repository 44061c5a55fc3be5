"""Data for a task: a file, a dataset directory, a Table or Python lists, mapped to the task's column roles.

The API's verbs (fit, evaluate, predict from a file) read their data through these
functions, so every verb maps columns the same way: the user's ``--<role>-column``
choices first (strict), then the columns the model was trained with, then the
task's default names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from texttune.data import Table, from_lists, load_table, select_columns
from texttune.errors import DataError

DataArg = str | Path | Table | dict[str, Sequence[Any]] | None


def raw_table(data: DataArg, *, split: str) -> Table:
    """``data`` as a Table, columns not yet mapped."""
    if data is None:
        raise DataError("no data given")
    if isinstance(data, Table):
        return data
    if isinstance(data, dict):
        return from_lists(data)
    return load_table(data, split=split)


def task_table(task: Any, data: DataArg, *, split: str, columns: dict[str, str] | None, saved: dict[str, str],
               inputs_only: bool = False) -> Table:
    """Load ``data`` and map its columns to ``task``'s roles.

    ``columns`` are the user's (strict); ``saved`` the columns the model was trained with, tried
    before the task's defaults. ``inputs_only``: only the roles predict needs (no targets).
    """
    roles = [replace(r, defaults=(saved[r.role], *r.defaults)) if r.role in saved else r for r in task.roles]
    if inputs_only:
        targets = {r.role for r in roles if r.column_key not in task.input_keys}
        roles = [r for r in roles if r.role not in targets]
        columns = {k: v for k, v in (columns or {}).items() if k not in targets}
    return select_columns(raw_table(data, split=split), roles, columns or {})


def checked(task: Any, table: Table, *, training: bool) -> Table:
    """Run the task's optional ``check_table(table, training=...)`` on cells only it understands
    (``kind="any"`` columns, e.g. answer spans against their context) while rows still map to file lines."""
    check = getattr(task, "check_table", None)
    if check is not None:
        check(table, training=training)
    return table


def pairs_table(task: Any, inputs: Sequence[str] | None, targets: Sequence[str] | None) -> Table | None:
    """``fit(inputs=..., targets=...)`` lists as a Table of the task's first two roles, or None."""
    if inputs is None and targets is None:
        return None
    if inputs is None or targets is None:
        raise DataError("pass both inputs= and targets= (or a data file)")
    keys = [r.role for r in task.roles]
    return from_lists({keys[0]: list(inputs), keys[1]: list(targets)})


def input_roles(task: Any) -> list[Any]:
    """The column roles predict needs (the task's inputs, not its targets)."""
    return [r for r in task.roles if r.column_key in task.input_keys]
