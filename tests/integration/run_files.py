"""Reading what a run wrote, and checking a user error, the same way in every integration test.

Importable as ``run_files`` (pytest puts this folder on sys.path: it has no __init__.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL file (split on newlines only: U+0085 may sit inside a JSON string)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def assert_user_error(code: int, err: str, *needles: str) -> None:
    """Exit status 2 and exactly one ``texttune: error:`` line containing every needle; no traceback."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("texttune: error: "), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
