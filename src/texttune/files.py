"""Atomic file and directory writes: a reader (or a crash) never sees half a file.

A file is written to a temporary file beside its target (``.<name>.tmp-XXXX``,
same file system, so the rename is a real one), flushed and fsynced, then
renamed over the target; rename is atomic on POSIX file systems, and the
directory is fsynced afterwards so the new name survives a power cut. A
failure at any point removes the temporary file and leaves the previous
target (or nothing) in place.

A directory (a saved model, a converted backbone, an export) is built in a
sibling temporary directory and renamed into place only when the build
finished; a failure removes the temporary directory.

Generic on purpose (level 0 of the layer diagram in DEVELOPERS.md): it knows
nothing of runs, models or backbones, so every layer can use it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

#: Temporary files and directories are named ``.<target name><TEMP_MARK><random>``.
TEMP_MARK = ".tmp-"


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename or unlink in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directory entries are durable with the file
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Yield a handle on a temporary file that replaces ``path`` only if the block finishes.

    ``mode`` is ``"w"`` (UTF-8 text) or ``"wb"``. The file is fsynced, made world-readable
    (0644, like a file ``open`` creates) and renamed over ``path``; on any exception, a
    KeyboardInterrupt included, the temporary file is removed and ``path`` is untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file mode must be 'w' or 'wb', not {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}{TEMP_MARK}", dir=target.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_file(path, "wb") as handle:
        handle.write(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_file(path, "w") as handle:
        handle.write(text)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def write_jsonl(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records))


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one line; a crash can lose only the line being written, never earlier ones."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_jsonl_records(path: str | os.PathLike[str]) -> list[dict[str, Any]] | None:
    """The JSON objects in a JSONL file, skipping lines that do not parse (a crash can cut off the last one).

    None when the file is missing or unreadable: such files are read by tools that must cope with any of them.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    records = []
    for line in text.split("\n"):  # not splitlines(): U+0085 and friends may sit inside JSON strings
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


@contextmanager
def atomic_directory(path: str | os.PathLike[str], *,
                     keep_existing: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield a sibling temporary directory that replaces ``path`` only if the block finishes.

    A failure half-way through (saving a model, converting a backbone) leaves the previous
    directory (or nothing) in place, never a directory with weights but no tokenizer, and
    removes the temporary directory. An existing ``path`` is moved aside, the new one renamed
    in, then the old one deleted. ``keep_existing``: asked about an existing ``path`` once the
    block finished; True keeps it and discards the new build (another process finished the
    same build first).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{TEMP_MARK}", dir=target.parent))
    try:
        yield tmp
        if target.exists() and keep_existing is not None and keep_existing(target):
            return
        os.chmod(tmp, 0o755)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(old, target)  # put the previous directory back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        fsync_directory(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["TEMP_MARK", "append_jsonl", "atomic_directory", "atomic_file", "fsync_directory", "read_json",
           "read_jsonl_records", "write_bytes", "write_json", "write_jsonl", "write_text"]
