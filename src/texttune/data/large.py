"""Files larger than memory: converted to Arrow on disk once, then memory-mapped.

Small files are parsed in Python (:mod:`texttune.data.sources`), which is what
lets every error name its line, but holds the whole file in memory. From
``TEXTTUNE_LARGE_FILE_MB`` (default 256 MB) on, JSONL, CSV/TSV and Parquet files go
through ``datasets``' builders instead: they read the file in blocks and write
Arrow files to a cache directory (``$TEXTTUNE_HOME/datasets``, default
``~/.cache/texttune/datasets``; never the network), and the rows are a
memory-mapped view of those files. The operating system pages them in and out as
training reads them, so the process's own memory does not grow with the data.
The cache is keyed by the file's path, size and modification time, so a second
run on the same file skips the conversion.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from texttune.errors import DataError

#: Formats with a streaming ``datasets`` builder, and its name.
BUILDERS = {"jsonl": "json", "csv": "csv", "tsv": "csv", "parquet": "parquet"}


def large_file_bytes() -> int:
    """Files at least this large are memory-mapped rather than parsed into memory."""
    try:
        return int(float(os.environ.get("TEXTTUNE_LARGE_FILE_MB", "256")) * 2**20)
    except ValueError:
        raise DataError(f"TEXTTUNE_LARGE_FILE_MB must be a number of megabytes, got {os.environ['TEXTTUNE_LARGE_FILE_MB']!r}") from None


def arrow_cache_dir() -> Path:
    """Where converted files live: ``$TEXTTUNE_HOME/datasets`` or ``~/.cache/texttune/datasets``."""
    return Path(os.environ.get("TEXTTUNE_HOME") or Path.home() / ".cache" / "texttune") / "datasets"


def is_large(path: Path, fmt: str) -> bool:
    """Whether ``path`` should be memory-mapped (a supported format, and big)."""
    return fmt in BUILDERS and path.stat().st_size >= large_file_bytes()


def is_memory_mapped(rows: Any) -> bool:
    """Whether ``rows`` (a :class:`datasets.Dataset`) lives in Arrow files on disk rather than in memory."""
    return bool(getattr(rows, "cache_files", None))


def builder_options(path: Path, fmt: str) -> dict[str, Any]:
    """``load_dataset`` arguments that read a format as the in-memory readers do (CSV cells stay text)."""
    if fmt not in {"csv", "tsv"}:
        return {}
    import csv

    from datasets import Features, Value

    sep = "\t" if fmt == "tsv" else ","
    with path.open(encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader(f, delimiter=sep), [])
    return {"sep": sep, "keep_default_na": False, "na_values": [""], "encoding": "utf-8-sig",
            "features": Features({name: Value("string") for name in header})}


def load_memory_mapped(path: Path, fmt: str, *, cache_dir: Path | None = None) -> Any:
    """A memory-mapped :class:`datasets.Dataset` of ``path`` (converted to Arrow on first use)."""
    from datasets import load_dataset

    try:
        rows = load_dataset(BUILDERS[fmt], data_files=str(path.resolve()), split="train",
                            cache_dir=str(cache_dir or arrow_cache_dir()), **builder_options(path, fmt))
    except Exception as exc:  # the builders raise pyarrow and pandas errors of many kinds
        raise DataError(f"{path}: cannot read this {fmt.upper()} file as a table ({type(exc).__name__}: "
                        f"{str(exc)[:300]})") from None
    if len(rows) == 0:
        raise DataError(f"{path}: no data rows")
    return rows
