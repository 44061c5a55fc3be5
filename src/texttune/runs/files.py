"""Atomic file writes for the run directory: the shared helpers of :mod:`texttune.files`, re-exported.

The helpers live at level 0 (``texttune/files.py``) so that every layer (backbones, inference, runs, ...)
writes through the same code; importers of ``texttune.runs.files`` keep working.
"""

from __future__ import annotations

from texttune.files import (
    append_jsonl,
    atomic_directory,
    atomic_file,
    read_json,
    read_jsonl_records,
    write_bytes,
    write_json,
    write_jsonl,
    write_text,
)

__all__ = ["append_jsonl", "atomic_directory", "atomic_file", "read_json", "read_jsonl_records", "write_bytes", "write_json",
           "write_jsonl", "write_text"]
