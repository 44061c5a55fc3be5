"""Finding runs: list the run directories under a folder and compare a few of them.

``texttune runs DIR`` answers "what have I trained here, and how did it go?"
without opening any file by hand; ``texttune runs compare A B`` answers "what
did I change between these runs, and what did it do to the metrics?".

Everything here only reads run directories (see :mod:`texttune.runs.layout`).
A run may be running, crashed or half-written, so every file is optional and a
broken one never stops the listing: the run is shown with what could be read,
and ``RunInfo.problems`` says which file could not be read. Comparing runs
lives in :mod:`texttune.runs.compare`, which reuses the reading and the table
formatting here.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from texttune.errors import ConfigError
from texttune.files import read_jsonl_records
from texttune.metrics.registry import higher_is_better
from texttune.runs.layout import RunDir
from texttune.runs.plots import recorded_main_metric

#: Directories inside a run that hold models, not runs: never searched.
_RUN_INTERNALS = {"checkpoints", "model"}
_TERMINAL = {"completed", "failed", "interrupted"}
_WIDTH = 40  # longest value shown in a table cell; longer ones keep their end


@dataclass(frozen=True)
class RunInfo:
    """What one run directory says about itself (None where a file is missing or silent)."""

    path: Path
    name: str
    task: str | None
    backbone: str | None
    data: str | None
    status: str  # running/completed/failed/interrupted; "unknown" without status.json; "unreadable" if corrupt
    steps: int | None
    metric: str | None  # the task's main metric
    best: float | None  # its fine-tuned value, else the best evaluation so far
    best_from: str | None  # "fine_tuned" or "evals"
    zero_shot: float | None
    higher_is_better: bool | None
    started: str | None  # ISO, local time
    duration_s: float | None
    error: str | None
    problems: tuple[str, ...]  # files that exist but could not be read

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the path as a string, NaN/infinite numbers as null (strict JSON has neither)."""
        data = asdict(self)
        data.update(path=str(self.path), problems=list(self.problems))
        return {k: finite(v) for k, v in data.items()}


def is_run_dir(path: Path) -> bool:
    """A run directory has a config.yaml or a status.json (a run writes both as it starts)."""
    return path.is_dir() and ((path / "config.yaml").is_file() or (path / "status.json").is_file())


def find_runs(root: Path, *, depth: int = 3) -> list[RunInfo]:
    """Every run directory under ``root`` (``root`` itself included), up to ``depth`` levels down, oldest first.

    A run's own checkpoints/ and model/ and hidden directories (temporary saves) are not searched.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such directory" if not root.exists() else f"{root} is a file, not a directory of runs")
    found: list[RunInfo] = []
    pending = [(root, 0)]
    while pending:
        folder, level = pending.pop()
        run = is_run_dir(folder)
        if run:
            found.append(read_run(folder, name=folder.relative_to(root).as_posix()))
        if level >= depth:
            continue
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:  # unreadable folder: nothing to list there
            continue
        pending.extend((c, level + 1) for c in children if not (run and c.name in _RUN_INTERNALS))
    return sorted(found, key=lambda r: (r.started or "", r.name))


def read_run(path: Path, *, name: str | None = None) -> RunInfo:
    """Summarize one run directory; never raises for missing or corrupt files."""
    run, problems = RunDir(Path(path)), []
    status = _read(run.status, json.loads, problems)
    config = _read(run.config, _yaml, problems) or {}
    metrics = _read(run.metrics, json.loads, problems) or {}
    data_stats = _read(run.data_stats, json.loads, problems) or {}
    state = "unknown" if not run.status.exists() else str(status.get("state", "unknown")) if status else "unreadable"
    status = status or {}
    task = status.get("task") or config.get("task")
    metric, higher = _main_metric(task, status)
    evals = _read_evals(run.evals)
    best, best_from = _best(metric, higher, metrics.get("fine_tuned"), evals)
    started = status.get("started") or _mtime_iso(run.config)
    return RunInfo(
        path=run.root, name=name if name is not None else run.root.name, task=task,
        backbone=status.get("backbone") or config.get("backbone"),
        data=_data_name(config.get("train_file") or (data_stats.get("train") or {}).get("source")),
        status=state, steps=_steps(status, metrics, evals), metric=metric, best=best, best_from=best_from,
        zero_shot=_number((metrics.get("zero_shot") or {}).get(metric)) if metric else None,
        higher_is_better=higher, started=started, duration_s=_duration(status, state, started),
        error=status.get("error"), problems=tuple(problems),
    )


def read_config(root: Path) -> dict[str, Any] | None:
    """A run's config.yaml as a mapping; None when missing or unreadable (read_run reports which)."""
    return _read(RunDir(Path(root)).config, _yaml, [])


def read_metrics(root: Path) -> dict[str, Any]:
    """A run's metrics.json as a mapping; empty when missing or unreadable (read_run reports which)."""
    return _read(RunDir(Path(root)).metrics, json.loads, []) or {}


def _read(path: Path, parse: Any, problems: list[str]) -> Any:
    """A file's parsed content as a dict, None when missing; a corrupt file is noted in ``problems``."""
    if not path.is_file():
        return None
    try:
        value = parse(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        problems.append(f"{path.name} unreadable ({type(exc).__name__})")
        return None
    if not isinstance(value, dict):
        problems.append(f"{path.name} unreadable (not a mapping)")
        return None
    return value


def _yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


def _read_evals(path: Path) -> list[dict[str, Any]]:
    """evals.jsonl records; a half-written last line (a crash mid-write) is skipped."""
    return read_jsonl_records(path) or []


def _main_metric(task: Any, status: dict[str, Any]) -> tuple[str | None, bool | None]:
    """The run's main metric (recorded in status.json) and its direction."""
    metric = recorded_main_metric(task, status)
    return (metric, higher_is_better(metric)) if metric else (None, None)


def _best(metric: str | None, higher: bool | None, final: Any, evals: list[dict[str, Any]]) -> tuple[float | None, str | None]:
    if metric is None:
        return None, None
    value = _number(final.get(metric)) if isinstance(final, dict) else None
    if value is not None:
        return value, "fine_tuned"
    seen = [v for v in (_number(r.get(metric)) for r in evals) if v is not None and not math.isnan(v)]
    if not seen:
        return None, None
    return (max(seen) if higher else min(seen)), "evals"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _steps(status: dict[str, Any], metrics: dict[str, Any], evals: list[dict[str, Any]]) -> int | None:
    for value in (status.get("steps"), metrics.get("steps"), evals[-1].get("step") if evals else None):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _data_name(source: Any) -> str | None:
    """The training file's name without its folder, nor the " (train part)" a split adds."""
    if not isinstance(source, str) or not source:
        return None
    return Path(source.removesuffix(" (train part)")).name or source


def _mtime_iso(path: Path) -> str | None:
    """When a file was last written, as ISO local time: config.yaml is written as the run starts."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime).isoformat(timespec="seconds")
    except OSError:
        return None


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _duration(status: dict[str, Any], state: str, started: str | None) -> float | None:
    """Seconds from start to finish (status.json), or to now for a running run."""
    recorded = _number(status.get("duration_s"))
    if recorded is not None:
        return recorded
    begin = _parse_time(started)
    if begin is None:
        return None
    if state == "running":
        end = datetime.fromtimestamp(time.time())
    else:  # a finished run's last status update is when it finished
        end = _parse_time(status.get("finished") or (status.get("updated") if state in _TERMINAL else None))
    if end is None:
        return None
    if begin.tzinfo is not None and end.tzinfo is None:
        end = end.astimezone(begin.tzinfo)
    elif end.tzinfo is not None and begin.tzinfo is None:
        begin = begin.astimezone(end.tzinfo)
    return max(0.0, (end - begin).total_seconds())


def format_duration(seconds: float | None) -> str:
    """``45s``, ``3m12s``, ``2h05m``, ``3d04h``; ``-`` when unknown."""
    if seconds is None or math.isnan(seconds):
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def format_value(value: float | None) -> str:
    """A metric value for a table: two decimals, more digits for small fractions."""
    if value is None:
        return "-"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.4g}" if 0 < abs(value) < 1 else f"{value:.2f}"


def shorten(text: str, width: int = _WIDTH) -> str:
    """Keep the end of a long value (paths and backbone names differ at the end)."""
    return text if len(text) <= width else "..." + text[-(width - 3):]


def table(rows: list[list[str]], *, right: frozenset[int] = frozenset()) -> str:
    """Rows of cells as aligned plain text; the first row is the header, underlined."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_runs(runs: list[RunInfo], *, root: Path | None = None) -> str:
    """The ``texttune runs`` table, followed by one line per failed or damaged run."""
    if not runs:
        return f"no runs found under {root if root is not None else 'this directory'} (a run directory has a config.yaml or status.json)"
    rows = [["run", "task", "backbone", "data", "status", "steps", "metric", "zero-shot -> fine-tuned", "duration", "started"]]
    for r in runs:
        score = "-"
        if r.metric is not None and (r.best is not None or r.zero_shot is not None):
            score = f"{format_value(r.zero_shot)} -> {format_value(r.best)}" + (" (best eval)" if r.best_from == "evals" else "")
        rows.append([shorten(r.name), r.task or "?", shorten(_backbone_name(r.backbone), 28), shorten(r.data or "-", 28), r.status,
                     "-" if r.steps is None else str(r.steps), r.metric or "-", score, format_duration(r.duration_s),
                     (r.started or "-").replace("T", " ")[:16]])
    notes = [f"{r.name}: {r.status}: {r.error.splitlines()[0] if r.error.strip() else r.error}" for r in runs if r.error]
    notes += [f"{r.name}: {p}" for r in runs for p in r.problems]
    lower = sorted({r.metric for r in runs if r.metric and r.higher_is_better is False})
    if lower:
        notes.append(f"lower is better for {', '.join(lower)}")
    return "\n".join([table(rows, right=frozenset({5, 8})), *(["", *notes] if notes else [])])


def _backbone_name(backbone: str | None) -> str:
    """A local backbone's folder name (its full path is in config.yaml); hub ids and aliases as they are."""
    if not backbone:
        return "?"
    return Path(backbone).name if Path(backbone).is_absolute() or backbone.startswith(("./", "../", "~")) else backbone


def runs_json(runs: list[RunInfo]) -> list[dict[str, Any]]:
    """``texttune runs --json``: one dict per run."""
    return [r.to_dict() for r in runs]


def finite(value: Any) -> Any:
    """NaN and infinities as None: strict JSON has neither."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


