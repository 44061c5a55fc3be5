"""Checkpoint files that are either complete or absent, whatever moment the process dies.

``AtomicCheckpointIO`` is the Lightning ``CheckpointIO`` plugin the trainer
writes every checkpoint through (``pl.Trainer(plugins=[AtomicCheckpointIO()])``).
A checkpoint is streamed into a temporary file beside its target
(``checkpoints/.last.ckpt.tmp-XXXX``), flushed and fsynced, renamed over the
target (atomic on POSIX), and the directory is fsynced so the rename itself
survives a power cut. A SIGKILL at any instant therefore leaves the previous
``last.ckpt``/``best.ckpt`` intact plus, at worst, a stale temporary file,
which :func:`remove_stale_temp_files` deletes on the next start.

A full disk during a write (ENOSPC, EDQUOT) removes the partial temporary file
and raises a :class:`~texttune.errors.TexttuneError` that names the file and the
free space, and says the previous checkpoint is intact.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from texttune.errors import TexttuneError
from texttune.files import fsync_directory

log = logging.getLogger("texttune")

#: Temporary checkpoint files are named ``.<target name><TEMP_MARK><random>``.
TEMP_MARK = ".tmp-"
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class CheckpointWriteError(TexttuneError):
    """A checkpoint could not be written (disk full, quota, permissions); the previous one is intact."""


def _torch_save(checkpoint: dict[str, Any], handle: IO[bytes]) -> None:
    """Serialise ``checkpoint`` into an open file (a seam the crash tests use to die mid-write)."""
    import torch

    torch.save(checkpoint, handle)


def write_atomically(target: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``target`` through ``write(handle)`` into a temp file, fsync it, rename it over ``target``."""
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}{TEMP_MARK}", dir=target.parent)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        cause = _os_error(exc)
        if cause is not None and cause.errno in (*_DISK_FULL, errno.EACCES, errno.EPERM, errno.EROFS):
            raise CheckpointWriteError(_write_failure(target, cause)) from exc
        raise
    fsync_directory(target.parent)


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``: torch.save reports a failed write as a RuntimeError whose context is the OSError."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None or isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _write_failure(target: Path, exc: OSError) -> str:
    """The message for a failed checkpoint write: what, where, why, what is left, what to do."""
    kept = f"the previous {target.name} is intact" if target.exists() else f"no {target.name} was written"
    if exc.errno in _DISK_FULL:
        free = shutil.disk_usage(target.parent).free if target.parent.exists() else 0
        return (f"no space left on the device holding {target.parent} while writing checkpoint {target.name} "
                f"({free:,} bytes free); {kept}. Free some space, then continue with --resume latest")
    return f"cannot write checkpoint {target} ({exc.strerror}); {kept}"


def remove_stale_temp_files(directory: Path) -> list[Path]:
    """Delete temporary checkpoint files a killed write left in ``directory``; return what was removed."""
    removed = []
    if directory.is_dir():
        # .link-: the temporary name of a hard link (engine/checkpoint_callbacks.py) a kill left behind.
        for path in [*directory.glob(f".*{TEMP_MARK}*"), *directory.glob(".*.ckpt.link-*")]:
            if path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        log.info("removed %d incomplete checkpoint file(s) left by an interrupted write in %s", len(removed), directory)
        fsync_directory(directory)
    return removed


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves are atomic and durable on local disks.

    Why not Lightning's own ``_atomic_save`` (what ``TorchCheckpointIO`` uses in
    Lightning 2.6.6): it first serialises the whole checkpoint into an in-memory
    ``BytesIO`` (a second copy of the weights and optimizer state in RAM), then
    writes it through an fsspec transaction whose temporary file is created by
    ``tempfile.mkstemp()`` in the *system* temp directory, not beside the
    checkpoint. The commit is ``shutil.move``: when that directory is on another
    file system than the run (tmpfs /tmp, a container overlay, a mounted data
    disk: the usual case) the "rename" becomes copy-then-delete, and a kill during
    the copy leaves a truncated ``last.ckpt`` at the final path. Nothing is
    fsynced, neither the file nor the directory, so after a power loss the
    renamed file can be empty. And a killed write leaves its temporary file in the
    system temp directory for ever. Here the temporary file sits beside the target
    (same file system, so ``os.replace`` is a real atomic rename), the data is
    streamed straight into it, both file and directory are fsynced, and leftovers
    are recognisable by name and removed on the next start.

    Remote paths (``s3://...``) keep Lightning's behaviour, which suits object stores.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        write_atomically(Path(path), lambda handle: _torch_save(checkpoint, handle))

    def load_checkpoint(self, path: Any, map_location: Any = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        """Read a checkpoint as data only: ``weights_only=True`` whatever the caller or the environment asks.

        A checkpoint may come from someone else (``--resume PATH``); a full unpickle would run any code
        it names. Lightning passes ``None`` here, which ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` turns into
        a full unpickle: an explicit ``True`` cannot be overridden. Texttune's own checkpoints hold only
        tensors, numbers, strings and containers, so nothing legitimate is refused.
        """
        import pickle

        if "://" not in str(path):
            remove_stale_temp_files(Path(path).parent)
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as exc:
            raise _holds_objects(path, exc) from None


def _holds_objects(path: Any, exc: Exception) -> TexttuneError:
    """The error for a checkpoint that a weights-only load refused."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TexttuneError(
        f"cannot resume from {path}: it holds Python objects, not only tensors and plain data, and texttune "
        f"does not unpickle those (they could run code); nothing in it was run ({first})")


def checkpoint_step(path: str | Path) -> int:
    """The optimizer step a checkpoint was written at: read memory-mapped and weights-only (data, never code)."""
    import pickle

    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("global_step", 0))
    except pickle.UnpicklingError as exc:
        raise _holds_objects(path, exc) from None
