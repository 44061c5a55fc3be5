"""Tokenize a split once per run and keep it on disk, memory-mapped.

A resumed run, or a second look at the same run, reads ``RUN_DIR/features/``
instead of tokenizing again, and the training process holds memory-mapped Arrow
tables rather than Python lists of token ids. The cache key covers everything
the token ids depend on: the rows (the dataset's content fingerprint), the task
and its options (lengths, prefix, labels...), the tokenizer's full definition
and the texttune version. Any change gives a new key, never a stale cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from texttune._version import __version__
from texttune.files import atomic_directory, read_json, write_json

log = logging.getLogger("texttune")


def _tokenizer_identity(tokenizer: Any) -> str:
    """The tokenizer's whole definition when it has one (fast tokenizers), else its name and size."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return hashlib.sha256(backend.to_str().encode()).hexdigest()
    return f"{type(tokenizer).__name__}:{getattr(tokenizer, 'name_or_path', '')}:{len(tokenizer)}"


def cache_key(task: Any, rows: Any, tokenizer: Any) -> str:
    """A short hex digest of what the encoded features of ``rows`` depend on."""
    ingredients = {
        "rows": getattr(rows, "_fingerprint", None) or hashlib.sha256(repr(rows.to_dict()).encode()).hexdigest(),
        "task": task.name,
        "task_state": task.metadata(),
        "tokenizer": _tokenizer_identity(tokenizer),
        "texttune": __version__,
    }
    return hashlib.sha256(json.dumps(ingredients, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encode_cached(task: Any, rows: Any, *, tokenizer: Any, cache_dir: Path, split: str,
                  primary: bool = True) -> tuple[Any, dict[str, Any]]:
    """``task.encode(rows)``, read from ``cache_dir/<split>-<key>`` when it is already there.

    In a distributed run only rank 0 (``primary``) tokenizes and writes; the other
    processes wait for its cache and memory-map the same files.
    """
    from datasets import load_from_disk

    from texttune.engine.distributed import wait_for_file

    target = cache_dir / f"{split}-{cache_key(task, rows, tokenizer)}"
    stats_file = target / "texttune_stats.json"
    if not primary:
        wait_for_file(stats_file, what=f"the tokenized {split} features")
        return load_from_disk(str(target)), read_json(stats_file)
    if stats_file.is_file():
        try:
            features = load_from_disk(str(target))
            log.info("%s: reusing tokenized features from %s", split, target)
            return features, read_json(stats_file)
        except (OSError, ValueError, FileNotFoundError) as exc:  # a damaged cache is rebuilt, never trusted
            log.warning("%s: ignoring unreadable feature cache %s (%s)", split, target, exc)
    features, stats = task.encode(rows)
    with atomic_directory(target) as tmp:
        features.save_to_disk(str(tmp))
        write_json(tmp / "texttune_stats.json", stats)
    # Train from the memory-mapped copy: the token lists need not stay in RAM.
    return load_from_disk(str(target)), stats
