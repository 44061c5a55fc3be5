"""The output directory of ``texttune export``, checked the same way for every format.

An export never writes into its source, and replaces only an earlier export of the same
format (its texttune.json says so); anything else already there is the user's and is refused.
"""

from __future__ import annotations

from pathlib import Path

from texttune.errors import ConfigError
from texttune.files import read_json
from texttune.runs.model_dir import METADATA_FILE


def earlier_backend(directory: Path) -> str | None:
    """The ``backend`` that ``directory``'s texttune.json names, if it is an export's; read as plain JSON, since an
    export has no safetensors for ``read_metadata`` to check."""
    try:
        value = read_json(directory / METADATA_FILE)
    except (OSError, ValueError):
        return None
    return value.get("backend") if isinstance(value, dict) else None


def check_output(output: Path, model_dir: Path, *, backend: str, label: str) -> None:
    """Refuse an ``output`` that overlaps ``model_dir``, is a file, or holds anything but an earlier ``backend``
    export (``label`` names the format in the message)."""
    out, src = output.resolve(), model_dir.resolve()
    if out == src or src in out.parents or out in src.parents:
        raise ConfigError(f"--output {output} overlaps the model directory {model_dir}; choose a separate directory")
    if output.exists():
        if not output.is_dir():
            raise ConfigError(f"--output {output} is a file; choose a directory")
        if any(output.iterdir()) and earlier_backend(output) != backend:
            raise ConfigError(f"--output {output} exists and is not {label} export; choose a new directory "
                              "(an earlier export is replaced)")


__all__ = ["check_output", "earlier_backend"]
