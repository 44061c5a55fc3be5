"""Turn the typed config dataclasses into argparse options (and back).

Flags are generated, never written by hand, so ``--help``, YAML keys and the
Python API cannot drift apart. Parsed flags use ``argparse.SUPPRESS`` defaults:
only what the user typed overrides the ``--config`` file.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from texttune.config import SECTIONS, ServeConfig
from texttune.config_fields import annotation_type
from texttune.inference.options import InferenceConfig

TITLES = {
    "data": "data",
    "task": "task options",
    "model": "backbone",
    "train": "training",
    "generation": "generation (evaluate / predict)",
    "peft": "LoRA and memory",
    "serve": "server",
    "inference": "inference backend",
}

#: Sections with flags: the run config's, plus the server's and the inference backend's (not part of a run).
FLAG_SECTIONS: dict[str, type] = {**SECTIONS, "serve": ServeConfig, "inference": InferenceConfig}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_section(parser: argparse.ArgumentParser, section: str, *, only: set[str] | None = None,
                cls: type | None = None, title: str | None = None, defaults: dict[str, Any] | None = None,
                lora_defaults: dict[str, Any] | None = None) -> None:
    """Add one config section's fields as flags, in their own --help group.

    ``cls``/``title``: a dataclass that is not a shared section (a task's own options);
    ``defaults``: a task's own defaults for shared options (``train_defaults``), shown in the help;
    ``lora_defaults``: those that replace them under ``--peft lora`` (``lora_train_defaults``).
    """
    add_fields(parser.add_argument_group(title or TITLES[section]),
               [f for f in fields(cls or FLAG_SECTIONS[section]) if f.name != "columns" and (only is None or f.name in only)],
               defaults=defaults, lora_defaults=lora_defaults)


def add_fields(group: Any, option_fields: list[Any], *, help_of: dict[str, str] | None = None,
               defaults: dict[str, Any] | None = None, lora_defaults: dict[str, Any] | None = None) -> None:
    """One flag per dataclass field: type, choices, default and help from the field (``help_of`` overrides help)."""
    for f in option_fields:
        base, _ = annotation_type(f.type)
        help_text = (help_of or {}).get(f.name) or f.metadata.get("help", "")
        default = (defaults or {}).get(f.name, f.default)
        if default is not None and base is not bool:
            help_text += f" (default: {default}{' for this task' if f.name in (defaults or {}) else ''}"
            lora = (lora_defaults or {}).get(f.name)
            help_text += f"; {lora} with --peft lora)" if lora is not None else ")"
        if base is bool:
            shown = "auto" if default is None else "on" if default else "off"
            group.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text + f" (default: {shown})")
        else:
            metavar = "|".join([base.__name__.upper(), *f.metadata.get("special", ())])
            group.add_argument(_flag(f.name), dest=f.name, default=argparse.SUPPRESS, metavar=metavar,
                               choices=f.metadata.get("choices"), help=help_text)


def add_columns(parser: argparse.ArgumentParser, roles: list[tuple[str, str, tuple[str, ...]]]) -> None:
    """Add ``--<role>-column`` flags: (role, help, default column names)."""
    group = parser.add_argument_group("columns")
    for role, help_text, defaults in roles:
        group.add_argument(_flag(f"{role}_column"), dest=f"{role}_column", default=argparse.SUPPRESS, metavar="NAME",
                           help=f"Column holding the {help_text} (default: first of {', '.join(defaults)}).")


def given(namespace: argparse.Namespace, *, exclude: set[str]) -> dict[str, Any]:
    """The options the user actually typed (SUPPRESS keeps the others out)."""
    return {k: v for k, v in vars(namespace).items() if k not in exclude and not k.startswith("_")}
