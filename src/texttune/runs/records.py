"""What a run records about its data and model, as plain JSON-able dicts.

Computed from what the engine already has (tokenized features, the loaded
model), so every task gets the same statistics without code of its own:
"input" lengths are the token ids the model reads; "target" lengths count the
positions that carry a label (decoder targets, the completion of a prompt, the
tagged words, the masked tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

IGNORE_INDEX = -100
HISTOGRAM_BINS = 30


def length_stats(lengths: Sequence[int]) -> dict[str, Any]:
    """count/min/mean/percentiles/max and a histogram (``edges`` has one more entry than ``counts``)."""
    import numpy as np

    if len(lengths) == 0:
        return {"count": 0}
    values = np.asarray(lengths, dtype=np.int64)
    low, high = int(values.min()), int(values.max())
    bins = max(1, min(HISTOGRAM_BINS, high - low + 1))
    counts, edges = np.histogram(values, bins=bins, range=(low, high + 1))
    p50, p90, p99 = (round(float(v), 2) for v in np.percentile(values, [50, 90, 99]))
    return {
        "count": int(values.size), "min": low, "mean": round(float(values.mean()), 2),
        "p50": p50, "p90": p90, "p99": p99, "max": high,
        "histogram": {"edges": [round(float(e), 2) for e in edges], "counts": [int(c) for c in counts]},
    }


def _target_count(labels: Sequence[Any]) -> int:
    return sum(1 for label in labels if label != IGNORE_INDEX)


def feature_lengths(features: Any) -> dict[str, Any]:
    """Input and target token length statistics of tokenized features (a datasets.Dataset or a list of dicts)."""
    if len(features) == 0:
        return {}
    columns = features.column_names if hasattr(features, "column_names") else list(features[0])
    rows = features.to_dict() if hasattr(features, "to_dict") else {c: [f[c] for f in features] for c in columns}
    out = {"input": length_stats([len(ids) for ids in rows["input_ids"]])}
    if "labels" in rows and rows["labels"] and isinstance(rows["labels"][0], (list, tuple)):
        out["target"] = length_stats([_target_count(labels) for labels in rows["labels"]])
    return out


def model_summary(model: Any, *, family: str) -> dict[str, Any]:
    """Architecture, parameter counts and attention implementation (the size on disk is added once the model is saved)."""
    params = list(model.parameters())
    unique = {id(p): p for p in params}.values()  # tied embeddings count once
    return {
        "architecture": type(model).__name__,
        "model_type": getattr(getattr(model, "config", None), "model_type", None),
        "family": family,
        "parameters": int(sum(p.numel() for p in unique)),
        "trainable_parameters": int(sum(p.numel() for p in unique if p.requires_grad)),
        "dtype": str(next(iter(unique)).dtype).replace("torch.", "") if params else None,
        # what transformers settled on (backbones/attention.py chooses; environment.json says why)
        "attn_implementation": getattr(getattr(model, "config", None), "_attn_implementation", None),
    }


def directory_size(path: Path) -> int:
    """Bytes of all files under ``path``."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
