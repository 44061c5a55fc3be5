"""Reading a ``--config`` YAML file: a flat mapping of option names to single values.

One-line errors with line and column; a key given twice is refused (PyYAML would
keep the last one silently).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from texttune.errors import ConfigError


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a flat ``--config`` YAML file (keys are option names)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        loaded = yaml.load(p.read_text(encoding="utf-8-sig"), Loader=_unique_key_loader())  # noqa: S506 - a SafeLoader
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start}); re-save the file as UTF-8") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{where}: not valid YAML ({exc.problem or exc.context})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({' '.join(str(exc).split())})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{p}: expected a mapping of option names to values, got {type(loaded).__name__}")
    for key, value in loaded.items():
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{p}: option {key!r} must be a single value, got a {type(value).__name__}")
    return {str(k): v for k, v in loaded.items()}


def _unique_key_loader() -> type:
    """A ``yaml.SafeLoader`` that refuses a key given twice (PyYAML silently keeps the last one)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[str] = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    if key_node.value in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"option {key_node.value!r} is given twice", key_node.start_mark)
                    seen.add(key_node.value)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader
