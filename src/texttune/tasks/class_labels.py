"""Reading the label column of text classification: one label, a set of labels, or one number per row.

Every cell is checked while rows still map to file lines, so a bad label is reported as
``train.csv line 812: ...`` before any model loads. Labels become strings (the names that
go into ``config.id2label``): integers are ids into ``--label-list`` (or a ``ClassLabel``
feature) when one is given, else their own names ("0", "1"...).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from texttune.errors import ConfigError, DataError, choices

SINGLE, MULTI, REGRESSION = "single-label", "multi-label", "regression"
PROBLEM_TYPES = (SINGLE, MULTI, REGRESSION)
#: transformers' ``config.problem_type`` for each (what its pipelines and losses read).
HF_PROBLEM_TYPES = {SINGLE: "single_label_classification", MULTI: "multi_label_classification", REGRESSION: "regression"}


def parse_label_list(value: str) -> list[str]:
    """``--label-list "neg,pos"`` -> labels in id order, refusing empty or repeated labels (both classification tasks)."""
    labels = [part.strip() for part in value.split(",")]
    if any(not label for label in labels):
        raise ConfigError(f"option 'label_list' has an empty label in {value!r}; give labels separated by commas, "
                          "e.g. neg,pos or O,B-PER,I-PER")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"option 'label_list' repeats {choices(repeated)}; each label must appear once")
    return labels


def sort_labels(labels: Sequence[str]) -> list[str]:
    """Id order of inferred labels: numerically when every label is an integer ("2" before "10"), else alphabetically."""
    unique = set(labels)
    if unique and all(re.fullmatch(r"-?\d+", label) for label in unique):
        return sorted(unique, key=int)
    return sorted(unique)


@dataclass(frozen=True)
class LabelReader:
    """How label cells are read: the problem type, the separator of multi-label text, and names for integer ids."""

    problem: str
    separator: str | None = None
    names: Sequence[str] | None = None  # --label-list or a ClassLabel feature: integer cells are ids into it
    column: str = "label"

    def read(self, values: Sequence[Any], locate: Callable[[int], str]) -> list[Any]:
        """Every cell as a label (str), a list of labels, or a float; DataError naming the first bad cell."""
        if self.problem == MULTI:
            return self._read_sets(values, locate)
        read = self._number if self.problem == REGRESSION else self._label
        return [read(value, locate(i)) for i, value in enumerate(values)]

    def _label(self, value: Any, where: str) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip()):
            raise DataError(f"{where}: the {self.column} cell is empty; single-label classification needs one label per row "
                            "(remove the row, or use --problem-type multi-label where rows may have none)")
        if isinstance(value, (list, tuple)):
            raise DataError(f"{where}: the {self.column} cell is a list ({str(value)[:40]}); for several labels per row "
                            "pass --problem-type multi-label")
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # an integer column with a gap reads as floats
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise DataError(f"{where}: the {self.column} cell is not a label ({type(value).__name__}: {str(value)[:40]!r}); "
                            "expected text or an integer id")
        return self._name(value, where) if isinstance(value, int) else value.strip()

    def _name(self, value: int, where: str) -> str:
        if self.names is None:
            return str(value)
        if not 0 <= value < len(self.names):
            raise DataError(f"{where}: label id {value} is outside the {len(self.names)} labels {choices(self.names)}")
        return str(self.names[value])

    def _read_sets(self, values: Sequence[Any], locate: Callable[[int], str]) -> list[list[str]]:
        out: list[list[str]] = []
        kinds: dict[str, int] = {}  # "list" / "text" -> first row of that kind
        for i, value in enumerate(values):
            where = locate(i)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                value = [] if self.separator is None else ""
            kind = "list" if isinstance(value, (list, tuple)) else "text" if isinstance(value, str) else "other"
            kinds.setdefault(kind, i)
            if len(kinds) > 1:
                other = next(k for k in kinds if k != kind)
                raise DataError(f"{where}: the {self.column} cell is {'a list' if kind == 'list' else repr(str(value)[:40])} "
                                f"but {locate(kinds[other])} holds {'a list' if other == 'list' else 'text'}: one column "
                                "must hold either lists of labels or text split by --label-separator, not both")
            if kind == "text" and self.separator is None:
                raise DataError(f"{where}: the {self.column} cell is text ({value[:40]!r}) but multi-label labels must be lists "
                                "(JSON, Parquet) or text split by --label-separator, e.g. --label-separator '|'")
            if kind == "list" and self.separator is not None:
                raise DataError(f"{where}: the {self.column} cell is a list but --label-separator is given: drop the option "
                                "for list cells")
            if kind == "other":
                raise DataError(f"{where}: the {self.column} cell is {type(value).__name__} ({str(value)[:40]!r}); expected a "
                                "list of labels or text split by --label-separator")
            parts = value.split(self.separator) if kind == "text" else list(value)
            labels = [self._label(p, where) for p in parts if not (isinstance(p, str) and not p.strip())]
            out.append(sorted(set(labels), key=labels.index))
        return out

    def _number(self, value: Any, where: str) -> float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise DataError(f"{where}: the {self.column} cell {value[:40]!r} is not a number; regression needs one "
                                "number per row") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise DataError(f"{where}: the {self.column} cell is {str(value)[:40]!r}; regression needs one finite number per row")
        return float(value)


def label_set(read: Sequence[Any], problem: str) -> list[str]:
    """The labels a column uses (for multi-label, of every row's set)."""
    if problem == MULTI:
        return [label for labels in read for label in labels]
    return list(read) if problem == SINGLE else []


def check_training_labels(read: Sequence[Any], problem: str, *, name: str) -> None:
    """Refuse training labels a model cannot learn from: one class, one value, or no label at all."""
    if problem == REGRESSION:
        if len(set(read)) < 2:
            raise DataError(f"{name}: every {len(read)} rows have the target {read[0]!r}; regression needs varying values")
        return
    used = set(label_set(read, problem))
    if problem == SINGLE and len(used) < 2:
        raise DataError(f"{name}: the label column holds one value ({next(iter(used))!r}) in all {len(read)} rows; a classifier "
                        "needs at least two classes")
    if problem == MULTI and not used:
        raise DataError(f"{name}: no row has any label; multi-label classification needs labels to learn")
    if problem == MULTI and len({tuple(sorted(labels)) for labels in read}) < 2:
        raise DataError(f"{name}: every row has the same labels {sorted(used)}; there is nothing to tell apart")


def check_known(read: Sequence[Any], problem: str, known: Sequence[str], *, locate: Callable[[int], str],
                source: str) -> None:
    """Every label is among ``known`` (the training data's or --label-list's); else DataError naming label and row."""
    if problem == REGRESSION:
        return
    allowed = set(known)
    for i, value in enumerate(read):
        for label in value if problem == MULTI else [value]:
            if label not in allowed:
                shown = choices(known) if len(known) <= 30 else f"{len(known)} labels ({', '.join(map(repr, known[:10]))}, ...)"
                raise DataError(f"{locate(i)}: label {label!r} is not {source}; known labels: {shown}")


def balanced_weights(counts: Counter[str], rows: int, *, labels: Sequence[str], multi_label: bool) -> list[float]:
    """``--class-weights balanced``: scikit-learn's rows / (classes x count) per class; for multi-label, each label's
    negatives / positives (BCE's ``pos_weight``), capped at 100 so a label seen once does not swamp the loss."""
    if multi_label:
        return [min(100.0, (rows - counts[label]) / max(counts[label], 1)) for label in labels]
    return [rows / (len(labels) * max(counts[label], 1)) for label in labels]
