"""The data checks of a task's splits: which roles are inputs and targets, the task's own checks, ``--dedupe``.

:mod:`texttune.data.checks` does the work on plain columns and knows no task; this module
maps a task's tables to those columns (inputs: the task's input roles; targets: the rest,
an optional ``id`` left out), asks the task's optional ``check_data(rows) -> dict`` hook for
the findings only it understands, and removes leaked training rows for ``--dedupe``. The
helpers below are what the tasks' hooks call: invalid BIO sequences (token classification),
answers not at their offsets (QA), labels seen once and class balance (classification),
targets equal to their source (translation). Each returns ``{name: {"count": n, "rows": [i, ...]}}``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from texttune.config import DataConfig
from texttune.data import Table, drop_rows
from texttune.data.checks import CheckSettings, SplitData, check_splits, log_report
from texttune.data.duplicates import leaked_reference_rows, normalise, row_keys
from texttune.data.large import is_memory_mapped
from texttune.data.squad import parse_answers, span_mismatch
from texttune.errors import ConfigError

log = logging.getLogger("texttune")

#: Row indices kept per finding (the report shows fewer).
MAX_ROWS = 20


def _roles(task: Any, rows: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(input column keys, target column keys) of ``task`` present in ``rows``; an optional non-text ``id`` is neither.
    Optional non-text roles of another name are checked (chat's layouts: messages, or prompt and completion)."""
    present = set(rows.column_names)
    declared = type(task).input_keys  # the class's: an instance may narrow it (text-classification without pairs)
    keys = [r.column_key for r in task.roles
            if r.column_key in present and (r.required or r.kind == "text" or r.role != "id")]
    return tuple(k for k in keys if k in declared), tuple(k for k in keys if k not in declared)


def split_data(task: Any, name: str, table: Table) -> SplitData:
    """One table as the checks see it, with the task's own findings."""
    inputs, targets = _roles(task, table.rows)
    columns = {key: table.rows[key] for key in (*inputs, *targets)}
    hook = getattr(task, "check_data", None)
    return SplitData(name=name, source=table.name, columns=columns, inputs=inputs, targets=targets, locate=table.locate,
                     task=hook(table.rows) if hook is not None else {})


def settings_of(data: DataConfig) -> CheckSettings:
    return CheckSettings(near_threshold=data.near_duplicate_threshold, warning_rate=data.leak_warning_rate)


def check_tables(task: Any, tables: Sequence[tuple[str, Table]], *, settings: CheckSettings) -> dict[str, Any]:
    """The data report of ``tables`` (name, table), the first the reference (train)."""
    return check_splits([split_data(task, name, table) for name, table in tables], settings=settings)


def check_run_data(task: Any, train: Table, validation: Table, *, data: DataConfig,
                   test: Table | None = None) -> tuple[Table, dict[str, Any] | None]:
    """The recipe's checks of its train, validation and (``--test-file``) test rows (as split), logged; with
    ``data.dedupe`` the training rows whose input occurs in the validation or test rows are removed (never
    evaluation rows). (train, report).

    A memory-mapped table (a file over ``TEXTTUNE_LARGE_FILE_MB``) is not checked (report None): the checks
    hold every row's normalised text in memory, which would undo what memory-mapping is for (peak memory
    flat as the data grows, tests/slow/test_large_data.py). ``texttune inspect`` checks such files on their own.
    """
    evaluated = [("validation", validation), *([("test", test)] if test is not None else [])]
    if any(is_memory_mapped(table.rows) for table in (train, *(t for _, t in evaluated))):
        if data.dedupe:
            raise ConfigError(f"option 'dedupe' needs the data checks, which do not run on memory-mapped files "
                              f"({train.name} or {validation.name} is over TEXTTUNE_LARGE_FILE_MB): remove the leaked "
                              "rows beforehand (texttune inspect lists them), or leave --dedupe out")
        log.info("data checks skipped: %s is memory-mapped (over TEXTTUNE_LARGE_FILE_MB) and the checks would hold "
                 "every row in memory; run 'texttune inspect' on the files to check them", train.name)
        return train, None
    report = check_tables(task, [("train", train), *evaluated], settings=settings_of(data))
    log_report(report)
    if data.dedupe:
        inputs, _ = _roles(task, train.rows)
        names = " or ".join(name for name, _ in evaluated)
        leaked = leaked_reference_rows(row_keys([train.rows[k] for k in inputs]),
                                       [row_keys([table.rows[k] for k in inputs]) for _, table in evaluated])
        if len(leaked) == len(train):
            log.warning("--dedupe: every training row occurs in the %s data; nothing removed", names)
            leaked = set()
        train = drop_rows(train, leaked)
        report["dedupe"] = {"removed_train_rows": len(leaked), "train_rows_after": len(train)}
        log.info("--dedupe: removed %d training rows whose input occurs in the %s data (%d rows left)",
                 len(leaked), names, len(train))
    return train, report


# --------------------------------------------------------------------------- the tasks' own checks


def _finding(rows: list[int], **extra: Any) -> dict[str, Any]:
    return {"count": len(rows), "rows": rows[:MAX_ROWS], **extra}


def bio_errors(tags: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Sentences with an invalid IOB2/BIO sequence: an ``I-X`` after ``O`` or at the start, or after ``B-Y``/``I-Y``
    of another type (the type switches mid-entity). Tag ids (not strings) are not checked."""
    bad, wrong_tags = [], 0
    for i, sentence in enumerate(tags):
        previous, errors = "O", 0
        for tag in sentence:
            if not isinstance(tag, str):
                break
            if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
                errors += 1
            previous = tag if tag[:2] in ("B-", "I-") else "O"
        if errors:
            bad.append(i)
            wrong_tags += errors
    return {"invalid_bio": _finding(bad, tags=wrong_tags)}


def answer_offset_errors(contexts: Sequence[Any], answers: Sequence[Any]) -> dict[str, Any]:
    """QA rows whose answer text is not at its ``answer_start`` in the context (or whose answers cell is unreadable)."""
    bad = []
    for i, (context, cell) in enumerate(zip(contexts, answers)):
        try:
            texts, starts = parse_answers(cell)
        except ValueError:
            bad.append(i)
            continue
        if span_mismatch(str(context), texts, starts) is not None:
            bad.append(i)
    return {"answers_not_at_offset": _finding(bad)}


def label_checks(labels: Sequence[Any]) -> dict[str, Any]:
    """Labels seen once (rows holding one) and the class balance: counts per label, most common first. A list cell
    is a multi-label row; numbers (regression) are not labels and give nothing."""
    per_row = [[str(x) for x in v] if isinstance(v, (list, tuple)) else [str(v)] for v in labels
               if not isinstance(v, float) or isinstance(v, bool)]
    if len(per_row) < len(labels):
        return {}
    counts = Counter(label for row in per_row for label in row)
    once = {label for label, n in counts.items() if n == 1}
    rows = [i for i, row in enumerate(per_row) if once & set(row)]
    common = counts.most_common()
    balance = {"classes": len(counts), "most": list(common[0]) if common else None,
               "least": list(common[-1]) if common else None,
               "ratio": round(common[0][1] / common[-1][1], 2) if common else None, "counts": dict(common[:50])}
    return {"labels_seen_once": _finding(rows, labels=sorted(once)[:MAX_ROWS]), "class_balance": balance}


def copied_targets(sources: Sequence[Any], targets: Sequence[Any]) -> dict[str, Any]:
    """Pairs whose target equals the source after normalisation (untranslated strings)."""
    return {"target_equals_source": _finding([i for i, (s, t) in enumerate(zip(sources, targets))
                                              if normalise(s) == normalise(t)])}
