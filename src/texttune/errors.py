"""User-facing errors.

Every problem a user can cause (a bad file, a missing column, an unknown option,
an unreachable backbone) raises a :class:`TexttuneError` whose message names the
file, row, column or value and, where there is one, the list of valid choices.
The CLI prints these messages without a traceback and exits non-zero; anything
else that escapes is a bug in texttune and keeps its traceback.
"""

from __future__ import annotations


class TexttuneError(Exception):
    """A problem with the user's input, options, files or environment."""

    exit_code = 2


class DataError(TexttuneError):
    """A data file or in-memory dataset cannot be used as given."""


class ConfigError(TexttuneError):
    """An option, config file key or option value is invalid."""


class BackboneError(TexttuneError):
    """A backbone cannot be found, reached, verified or used for the task."""


def choices(values: object) -> str:
    """Format valid choices for an error message: ``'a', 'b', 'c'``."""
    return ", ".join(repr(v) for v in sorted(values))  # type: ignore[call-overload]
