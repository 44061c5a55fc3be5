"""Data checks of the splits a run uses: duplicates, leaks, near-duplicates, conflicts, empty cells, lengths.

Pure functions: :func:`check_splits` takes each split's role columns (already mapped by
:mod:`texttune.data.columns`) and returns a JSON-able report with counts and a few example
rows, each named by where it is in its file (``train.jsonl line 12``), so a user can open
the file at the row. Texts are compared after :func:`texttune.data.duplicates.normalise`
(NFKC, casefold, whitespace collapsed). The first split is the reference: rows of the other
(evaluation) splits whose input occurs in it are leaks; near-duplicates and conflicting
targets are looked for inside each split and against it. Task-specific findings (invalid BIO
tags, QA offsets...) come from the task and are passed in ready (``SplitData.task``): this
package does not know tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from texttune.data.duplicates import (
    KEY_SEPARATOR,
    NUM_PERM,
    exact_duplicates,
    first_rows,
    leaks,
    near_duplicates,
    normalise,
    row_keys,
)

log = logging.getLogger("texttune")

NORMALISATION = "Unicode NFKC, casefold, whitespace runs collapsed to one space, ends stripped"


@dataclass
class SplitData:
    """One split to check: its role columns, which roles are inputs and which targets, and where row ``i`` is."""

    name: str
    source: str
    columns: dict[str, list[Any]]
    inputs: tuple[str, ...]
    targets: tuple[str, ...]
    locate: Callable[[int], str]
    task: dict[str, dict[str, Any]] = field(default_factory=dict)  # the task's findings: {"count", "rows": [i...]}

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


@dataclass(frozen=True)
class CheckSettings:
    """Thresholds of the checks (the run's options)."""

    near_threshold: float = 0.9
    warning_rate: float = 0.01
    examples: int = 5
    near: bool = True


def _snippet(key: str, limit: int = 80) -> str:
    text = key.replace(KEY_SEPARATOR, " | ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _found(pairs: Sequence[tuple[Any, ...]], split: SplitData, keys: Sequence[str], settings: CheckSettings, *,
           other: Callable[[int], str] | None = None, rows: int | None = None) -> dict[str, Any]:
    """A finding: count, rate over the split's rows and up to ``examples`` rows (with the row they match)."""
    examples = []
    for pair in pairs[: settings.examples]:
        example = {"where": split.locate(pair[0]), "text": _snippet(keys[pair[0]])}
        if len(pair) > 1 and other is not None:
            example["same_as"] = other(pair[1])
        if len(pair) > 2:
            example["similarity"] = pair[2]
        examples.append(example)
    total = rows if rows is not None else len(split)
    return {"count": len(pairs), "rate": round(len(pairs) / total, 6) if total else 0.0, "examples": examples}


def conflicts(inputs: Sequence[str], targets: Sequence[str]) -> list[tuple[int, int]]:
    """Rows whose input occurs earlier in the split with another target: (row, the first row with that input)."""
    first: dict[str, int] = {}
    found = []
    for i, key in enumerate(inputs):
        earlier = first.setdefault(key, i)
        if earlier != i and targets[i] != targets[earlier]:
            found.append((i, earlier))
    return found


def cross_conflicts(reference: dict[str, set[str]], first: dict[str, int], inputs: Sequence[str],
                    targets: Sequence[str]) -> list[tuple[int, int]]:
    """Evaluation rows whose input occurs in the reference split with none of the same targets: (row, reference row)."""
    return [(i, first[key]) for i, key in enumerate(inputs) if key in reference and targets[i] not in reference[key]]


def _percentile(ordered: Sequence[int], q: float) -> int:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0


def _length(value: Any) -> int:
    """A cell's length in words (list cells: items)."""
    if isinstance(value, (list, tuple)):
        return len(value)
    return len(normalise(value).split())


def cells(split: SplitData, settings: CheckSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """(empty cells per role, length distribution per role in words with the longest rows)."""
    empty, lengths = {}, {}
    for role, values in split.columns.items():
        blank = [(i,) for i, v in enumerate(values) if not normalise(v)]
        if blank:
            empty[role] = {"count": len(blank), "examples": [{"where": split.locate(i)} for (i,) in blank[: settings.examples]]}
        sizes = [_length(v) for v in values]
        ordered = sorted(sizes)
        longest = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))[: min(3, settings.examples)]
        unit = "items" if values and isinstance(values[0], (list, tuple)) else "words"
        lengths[role] = {"unit": unit, "p50": _percentile(ordered, 0.5), "p95": _percentile(ordered, 0.95),
                         "p99": _percentile(ordered, 0.99), "max": ordered[-1] if ordered else 0,
                         "longest": [{"where": split.locate(i), "length": sizes[i]} for i in longest]}
    return empty, lengths


def _task_findings(split: SplitData, settings: CheckSettings) -> dict[str, Any]:
    """The task's findings with their row indices turned into file locations."""
    out = {}
    for name, finding in split.task.items():
        rows = finding.get("rows", [])
        entry = {k: v for k, v in finding.items() if k != "rows"}
        if rows:
            entry["examples"] = [{"where": split.locate(i)} for i in rows[: settings.examples]]
        out[name] = entry
    return out


def check_splits(splits: Sequence[SplitData], *, settings: CheckSettings = CheckSettings()) -> dict[str, Any]:
    """The data report of ``splits`` (the first is the reference, usually train); see the module docstring."""
    if not splits:
        return {"normalisation": NORMALISATION, "splits": {}, "warnings": []}
    reference = splits[0]
    ref_inputs = row_keys([reference.columns[r] for r in reference.inputs])
    ref_targets = row_keys([reference.columns[r] for r in reference.targets]) if reference.targets else None
    ref_first = first_rows(ref_inputs)
    ref_target_sets: dict[str, set[str]] = {}
    if ref_targets is not None:
        for key, target in zip(ref_inputs, ref_targets):
            ref_target_sets.setdefault(key, set()).add(target)
    report: dict[str, Any] = {
        "normalisation": NORMALISATION, "reference": reference.name,
        "settings": {"near_duplicate_threshold": settings.near_threshold, "shingle_words": 1, "num_perm": NUM_PERM,
                     "warning_rate": settings.warning_rate, "near_duplicates": settings.near},
        "splits": {}, "warnings": []}
    for index, split in enumerate(splits):
        inputs = ref_inputs if index == 0 else row_keys([split.columns[r] for r in split.inputs])
        targets = (ref_targets if index == 0 else row_keys([split.columns[r] for r in split.targets])) if split.targets else None
        empty, lengths = cells(split, settings)
        entry: dict[str, Any] = {"source": split.source, "rows": len(split),
                                 "duplicates": _found(exact_duplicates(inputs), split, inputs, settings, other=split.locate)}
        if targets is not None:
            entry["conflicts"] = _found(conflicts(inputs, targets), split, inputs, settings, other=split.locate)
        if index > 0:
            entry["leaks"] = _found(leaks(ref_first, inputs), split, inputs, settings, other=reference.locate)
            if settings.near:
                near = near_duplicates(ref_inputs, inputs, threshold=settings.near_threshold)
                entry["near_duplicates"] = _found(near, split, inputs, settings, other=reference.locate)
            if targets is not None:
                crossed = cross_conflicts(ref_target_sets, ref_first, inputs, targets)
                entry["conflicts_with_reference"] = _found(crossed, split, inputs, settings, other=reference.locate)
        entry.update(empty_cells=empty, lengths=lengths, task=_task_findings(split, settings))
        report["splits"][split.name] = entry
        report["warnings"].extend(_warnings(split.name, entry, reference.name, settings.warning_rate))
    return report


_WARNED = {"leaks": "rows whose input also occurs in {ref} (leakage)",
           "near_duplicates": "rows nearly identical to a row of {ref}",
           "conflicts": "rows whose input occurs earlier in the split with another target",
           "conflicts_with_reference": "rows whose input occurs in {ref} with another target"}


def _warnings(name: str, entry: dict[str, Any], reference: str, rate: float) -> list[str]:
    out = []
    for key, what in _WARNED.items():
        found = entry.get(key)
        if found and found["count"] and found["rate"] > rate:
            first = found["examples"][0]["where"] if found["examples"] else ""
            out.append(f"{name}: {found['count']} of {entry['rows']} {what.format(ref=reference)} "
                       f"({found['rate']:.1%}, above {rate:.1%}); first: {first}")
    return out


def summary_lines(report: dict[str, Any], *, examples: int = 3) -> list[str]:
    """A short readable summary: one line of counts per split, a few example rows, then the warnings."""
    lines = []
    for name, entry in report.get("splits", {}).items():
        counts = [f"{entry['rows']} rows"]
        for key in ("duplicates", "leaks", "near_duplicates", "conflicts", "conflicts_with_reference"):
            if key in entry:
                counts.append(f"{key.replace('_', ' ')} {entry[key]['count']}")
        counts += [f"empty {role} {e['count']}" for role, e in entry.get("empty_cells", {}).items()]
        counts += [f"{key.replace('_', ' ')} {f['count']}" for key, f in entry.get("task", {}).items() if "count" in f]
        lengths = ", ".join(f"{role} p50/p95/p99/max {v['p50']}/{v['p95']}/{v['p99']}/{v['max']} {v['unit']}"
                            for role, v in entry.get("lengths", {}).items())
        lines.append(f"{name} ({entry['source']}): {', '.join(counts)}")
        if lengths:
            lines.append(f"  lengths: {lengths}")
        for key in ("leaks", "conflicts_with_reference", "conflicts", "duplicates", "near_duplicates"):
            for example in entry.get(key, {}).get("examples", [])[:examples] if entry.get(key, {}).get("count") else []:
                also = f" = {example['same_as']}" if "same_as" in example else ""
                lines.append(f"  {key.replace('_', ' ')}: {example['where']}{also}: {example['text']!r}")
        for key, finding in entry.get("task", {}).items():
            for example in finding.get("examples", [])[:examples]:
                lines.append(f"  {key.replace('_', ' ')}: {example['where']}")
    lines += [f"WARNING: {w}" for w in report.get("warnings", [])]
    return lines


def log_report(report: dict[str, Any]) -> None:
    """The summary in the log; each warning loud (logging's WARNING level, in capitals)."""
    for line in summary_lines(report):
        if line.startswith("WARNING: "):
            log.warning("DATA CHECK: %s", line[len("WARNING: "):])
        else:
            log.info("data checks: %s", line)
