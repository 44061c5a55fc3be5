"""How an option is declared and how one value is checked: the mechanics under every config section.

:func:`option` makes a dataclass field carry its ``--help`` text, choices and numeric
bounds; :func:`coerce_field` converts a CLI, YAML, API or HTTP value against that field
with one-line errors naming the option, the value and what is valid. The sections
themselves (which options exist) are in ``config.py``.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from dataclasses import field
from typing import Any

from texttune.errors import ConfigError, choices


def option(default: Any, help: str, *, choices: tuple[str, ...] | None = None, **bounds: float) -> Any:  # noqa: A002
    """A dataclass field carrying its ``--help`` text, allowed values and numeric bounds.

    ``bounds`` are pydantic's names (``ge``, ``gt``, ``le``, ``lt``): the same bounds check
    CLI, YAML and API values (:func:`check_bounds`) and become the server's request schema.
    """
    unknown = set(bounds) - {"ge", "gt", "le", "lt"}
    if unknown:
        raise TypeError(f"unknown bound {sorted(unknown)}")
    return field(default=default, metadata={"help": help, "choices": choices, "bounds": bounds})


def check_bounds(name: str, value: Any, bounds: dict[str, float]) -> None:
    """None, or a number within ``bounds``; otherwise a ConfigError naming the option and the valid range."""
    if value is None or not bounds or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    ok = all((op == "ge" and value >= b) or (op == "gt" and value > b) or (op == "le" and value <= b)
             or (op == "lt" and value < b) for op, b in bounds.items())
    if not ok:
        raise ConfigError(f"option {name!r} must be {describe_bounds(bounds)}, got {value!r}")


def describe_bounds(bounds: dict[str, float]) -> str:
    """``{"gt": 0, "le": 1}`` -> ``in (0, 1]``; one side -> ``>= 1``."""
    low = [(op, b) for op, b in bounds.items() if op in {"ge", "gt"}]
    high = [(op, b) for op, b in bounds.items() if op in {"le", "lt"}]
    if low and high:
        (lo_op, lo), (hi_op, hi) = low[0], high[0]
        return f"in {'[' if lo_op == 'ge' else '('}{lo:g}, {hi:g}{']' if hi_op == 'le' else ')'}"
    symbols = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return " and ".join(f"{symbols[op]} {b:g}" for op, b in bounds.items())


def annotation_type(annotation: Any) -> tuple[type, bool]:
    """(base type, whether None is allowed) for ``int | None`` style annotations."""
    if isinstance(annotation, str):
        annotation = eval(annotation, {}, {})  # noqa: S307 - our own annotations only
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        base = next(a for a in args if a is not type(None))
        return base, type(None) in args  # int | str (batch_size: 8 or "auto") is not nullable
    return annotation, False


#: How error messages name the value types of options ("needs an integer, got 'two'").
_KIND_NAMES: dict[type, str] = {bool: "true or false", int: "an integer", float: "a finite number", str: "a text value"}


def coerce(name: str, value: Any, annotation: Any, valid: tuple[str, ...] | None) -> Any:
    """Check and convert one option value (from YAML or the CLI) to its declared type."""
    base, nullable = annotation_type(annotation)
    if value is None or (isinstance(value, str) and value.lower() in {"none", "null"} and base is not str):
        if nullable:
            return None
        raise ConfigError(f"option {name!r} needs a value of type {base.__name__}, got none")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in {"true", "yes", "1", "on", "false", "no", "0", "off"}:
                return value.lower() in {"true", "yes", "1", "on"}
            raise ValueError
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            converted: Any = int(value)
        elif base is float:
            if isinstance(value, bool):
                raise ValueError
            converted = float(value)
            if not math.isfinite(converted):
                raise ValueError
        else:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            converted = str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"option {name!r} needs {_KIND_NAMES.get(base, base.__name__)}, got {value!r}") from None
    if valid is not None and converted not in valid:
        raise ConfigError(f"option {name!r} got {converted!r}; valid choices: {choices(valid)}")
    return converted


def suggest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def not_an_option(raw_key: str, task: str, *, valid: list[str], owners: tuple[str, ...] | None) -> str:
    """The one-line refusal of an option ``task`` does not take: whose it is, or what was meant."""
    if owners:
        names = [repr(o) for o in owners]
        tasks = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        return (f"option {raw_key!r} belongs to task{'s' if len(names) > 1 else ''} {tasks}, not to task {task!r}; "
                f"see 'texttune train {task} --help' for the options of {task}")
    return f"unknown option {raw_key!r}{suggest(raw_key.replace('-', '_'), valid)}; valid options: {', '.join(valid)}"


def coerce_field(key: str, value: Any, f: Any) -> Any:
    """One option value checked and converted against its dataclass field: type, choices, bounds, special words."""
    special = f.metadata.get("special", ())
    if isinstance(value, str) and value.strip().lower() in special:  # e.g. batch_size: auto
        return value.strip().lower()
    try:
        converted = coerce(key, value, f.type, f.metadata.get("choices"))
    except ConfigError:
        if not special:
            raise
        kind = _KIND_NAMES.get(annotation_type(f.type)[0], "a number")
        raise ConfigError(f"option {key!r} needs {kind} or {choices(special)}, got {value!r}") from None
    check_bounds(key, converted, f.metadata.get("bounds") or {})
    return converted
