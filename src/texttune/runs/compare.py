"""Comparing runs: what differs between their configs, and what it did to the metrics.

``texttune runs compare A B ...`` shows only the options whose values differ
(the identical ones are counted, since a run has ~60 options and usually one or
two changed), the final metrics side by side with the best run marked, and each
run's status, steps and duration. Runs of different tasks may be compared (the
config differences are still useful) but a note says their metrics are not
comparable. See :mod:`texttune.runs.catalog` for how a run is read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from texttune.errors import ConfigError
from texttune.runs.catalog import (
    RunInfo,
    finite,
    format_duration,
    format_value,
    higher_is_better,
    is_run_dir,
    read_config,
    read_metrics,
    read_run,
    shorten,
    table,
)
from texttune.runs.paired import PairedRuns, format_paired, pair_runs
from texttune.runs.summary import shown_rows

#: Options that differ between any two runs by construction: not compared.
IGNORED_OPTIONS = ("output_dir",)
NOT_SET = "(not set)"  # the option is missing from that run's config.yaml
NO_CONFIG = "(no config)"  # that run has no readable config.yaml


@dataclass(frozen=True)
class OptionRow:
    name: str
    values: tuple[Any, ...]  # one per run


@dataclass(frozen=True)
class MetricRow:
    name: str
    kind: str  # "fine_tuned" or "zero_shot"
    values: tuple[float | None, ...]  # one per run
    best: tuple[int, ...]  # indices of the best runs (empty: not ranked)
    higher_is_better: bool | None


@dataclass(frozen=True)
class Comparison:
    """Runs side by side; ``labels`` are the column titles (directory names, made unique)."""

    runs: tuple[RunInfo, ...]
    labels: tuple[str, ...]
    differing: tuple[OptionRow, ...]
    identical: int
    metrics: tuple[MetricRow, ...]
    notes: tuple[str, ...]
    paired: PairedRuns | None = None  # two runs on the same rows: the paired bootstrap test (runs/paired.py)

    def to_dict(self) -> dict[str, Any]:
        """``texttune runs compare --json``."""
        return {
            "runs": [{"label": label, **run.to_dict()} for label, run in zip(self.labels, self.runs)],
            "config": {"differing": {row.name: list(row.values) for row in self.differing},
                       "identical": self.identical, "not_compared": list(IGNORED_OPTIONS)},
            "metrics": [{"metric": m.name, "kind": m.kind, "values": [finite(v) for v in m.values],
                         "best": [self.labels[i] for i in m.best], "higher_is_better": m.higher_is_better}
                        for m in self.metrics],
            "notes": list(self.notes),
            "paired": self.paired.to_dict() if self.paired else None,
        }


def compare_runs(paths: list[Path], *, task_of: Callable[[Path], Any] | None = None) -> Comparison:
    """Compare two or more run directories; a ConfigError names a path that is not one.

    With ``task_of`` (a run -> its task, which scores records) and exactly two runs, the paired bootstrap test on
    their shared validation rows too; a ConfigError when they were evaluated on different rows (runs/paired.py).
    """
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        given = f": {paths[0]}" if paths else ""
        raise ConfigError(f"runs compare needs at least two run directories, got {len(paths)}{given}")
    seen: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise ConfigError(f"{path}: no such run directory")
        if not is_run_dir(path):
            raise ConfigError(f"{path} is not a run directory (it has no config.yaml or status.json)")
        if path.resolve() in seen:
            raise ConfigError(f"{path} is given twice")
        seen.add(path.resolve())
    labels = _labels(paths)
    runs = tuple(read_run(p, name=label) for p, label in zip(paths, labels))
    configs = [read_config(p) for p in paths]
    differing, identical = _config_diff(configs)
    finals = [read_metrics(p).get("fine_tuned") for p in paths]
    zero_shots = [read_metrics(p).get("zero_shot") for p in paths]
    finals = [f if isinstance(f, dict) else {} for f in finals]
    zero_shots = [z if isinstance(z, dict) else {} for z in zero_shots]
    paired, why = None, None
    if task_of is not None and len(paths) == 2:
        paired, why = pair_runs((paths[0], paths[1]), (labels[0], labels[1]), task_of=task_of)
    notes = _notes(runs, configs, finals) + ((why,) if why else ())
    return Comparison(runs=runs, labels=labels, differing=differing, identical=identical,
                      metrics=_metric_rows(runs, finals, zero_shots), notes=notes, paired=paired)


def _labels(paths: list[Path]) -> tuple[str, ...]:
    """Directory names; where two runs share a name, parent/name; failing that, the full path."""
    names = [p.resolve().name or str(p) for p in paths]
    if len(set(names)) == len(names):
        return tuple(names)
    longer = ["/".join(p.resolve().parts[-2:]) for p in paths]
    return tuple(longer) if len(set(longer)) == len(longer) else tuple(str(p) for p in paths)


def _config_diff(configs: list[dict[str, Any] | None]) -> tuple[tuple[OptionRow, ...], int]:
    """Options whose values differ between the runs that have a config; the count of the others."""
    readable = [c for c in configs if c is not None]
    names = [k for k in dict.fromkeys(k for c in readable for k in c) if k not in IGNORED_OPTIONS]
    rows, identical = [], 0
    for name in names:
        values = [c.get(name, NOT_SET) for c in readable]
        if all(v == values[0] for v in values):
            identical += 1
        else:
            rows.append(OptionRow(name, tuple(NO_CONFIG if c is None else c.get(name, NOT_SET) for c in configs)))
    return tuple(rows), identical


def _metric_rows(runs: tuple[RunInfo, ...], finals: list[dict[str, Any]], zero_shots: list[dict[str, Any]]) -> tuple[MetricRow, ...]:
    """Each fine-tuned metric (the runs' main metrics first, each followed by its zero-shot values)."""
    mains = [m for m in dict.fromkeys(r.metric for r in runs) if m]
    names = list(dict.fromkeys([*(m for m in mains if any(m in f for f in finals)), *(k for f in finals for k in f)]))
    rows = []
    for name in names:
        higher = higher_is_better(name)
        values = tuple(_number(f.get(name)) for f in finals)
        rows.append(MetricRow(name, "fine_tuned", values, _best(values, higher), higher))
        if name in mains:
            rows.append(MetricRow(name, "zero_shot", tuple(_number(z.get(name)) for z in zero_shots), (), higher))
    return tuple(rows)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _best(values: tuple[float | None, ...], higher: bool | None) -> tuple[int, ...]:
    """Indices of the best value; none when the metric has no direction or all known values are equal."""
    known = {i: v for i, v in enumerate(values) if v is not None and not math.isnan(v)}
    if higher is None or len(known) < 2 or len(set(known.values())) == 1:
        return ()
    top = max(known.values()) if higher else min(known.values())
    return tuple(i for i, v in known.items() if v == top)


def _notes(runs: tuple[RunInfo, ...], configs: list[dict[str, Any] | None], finals: list[dict[str, Any]]) -> tuple[str, ...]:
    notes = []
    tasks = {r.task for r in runs}
    if len(tasks) > 1:
        listed = ", ".join(f"{r.name}: {r.task or 'unknown'}" for r in runs)
        notes.append(f"these runs are of different tasks ({listed}); their metrics are not comparable")
    for run, config, final in zip(runs, configs, finals):
        if config is None:
            notes.append(f"{run.name} has no readable config.yaml; its options are not compared")
        if not final:
            so_far = (f"best evaluation so far: {run.metric} {format_value(run.best)}" if run.best is not None
                      else "no evaluation recorded")
            notes.append(f"{run.name} has no final metrics (status {run.status}); {so_far}")
        if run.error:
            notes.append(f"{run.name} failed: {run.error.strip().splitlines()[0] if run.error.strip() else run.error}")
        notes.extend(f"{run.name}: {problem}" for problem in run.problems)
    return tuple(notes)


def format_option(value: Any) -> str:
    """A config value as it reads in config.yaml (null, true, 5e-05), long ones shortened."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return shorten(json.dumps(value, ensure_ascii=False, default=str))
    return shorten(str(value))


def format_comparison(comparison: Comparison) -> str:
    """The ``texttune runs compare`` report: config differences, metrics, run status, notes."""
    c, labels = comparison, list(comparison.labels)
    width = max(map(len, labels))
    out = ["runs:", *(f"  {label.ljust(width)}  {run.path}" for label, run in zip(labels, c.runs)), ""]
    ignored = f"{', '.join(IGNORED_OPTIONS)} not compared"
    if c.differing:
        n = len(c.differing)
        out.append(f"config: {n} option{' differs' if n == 1 else 's differ'}, {c.identical} options identical ({ignored})")
        out.append(table([["option", *labels], *([row.name, *map(format_option, row.values)] for row in c.differing)]))
    else:
        out.append(f"config: all {c.identical} options identical ({ignored})")
    out.append("")
    if c.metrics:
        lower = sorted({m.name for m in c.metrics if m.higher_is_better is False})
        out.append("metrics (fine-tuned unless marked zero-shot; * = "
                   "best" + (f"; lower is better for {', '.join(lower)}" if lower else "") + ")")
        rows = [["metric", *labels]]
        shown, hidden = shown_rows(list(dict.fromkeys(m.name for m in c.metrics)))
        for m in (m for m in c.metrics if m.name in set(shown)):
            cells = [format_value(v) + ("*" if i in m.best else " ") for i, v in enumerate(m.values)]
            rows.append([m.name if m.kind == "fine_tuned" else f"{m.name} (zero-shot)", *cells])
        out.append(table(rows, right=frozenset(range(1, len(labels) + 1))))
        if hidden:
            out.append(f"({len(hidden)} per-label scores, e.g. {hidden[0]}: in --json and each run's report)")
    else:
        out.append("metrics: none of these runs has final metrics yet")
    out.append("")
    status = [["", *labels], ["task", *(r.task or "?" for r in c.runs)], ["status", *(r.status for r in c.runs)],
              ["steps", *("-" if r.steps is None else str(r.steps) for r in c.runs)],
              ["duration", *(format_duration(r.duration_s) for r in c.runs)],
              ["started", *((r.started or "-").replace("T", " ") for r in c.runs)]]
    out.append(table(status))
    if c.paired is not None:
        ordered = [m.name for m in c.metrics if m.kind == "fine_tuned"] or list(c.paired.tests)
        out += ["", *format_paired(c.paired, names=shown_rows(ordered)[0])]
    if c.notes:
        out += ["", *(f"note: {note}" for note in c.notes)]
    return "\n".join(out)
