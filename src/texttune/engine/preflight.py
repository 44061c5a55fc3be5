"""Checks before training starts: can the run directory take what the run will write?

A read-only output directory or a disk too small for the checkpoints would
otherwise surface as a traceback after the baselines, or hours in at the first
checkpoint. Both are detectable up front: the directory is probed by creating,
writing, fsyncing and deleting a file, and the free space is compared with an
estimate of what the checkpoints need.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from texttune.errors import ConfigError

#: Checkpoint files that coexist on disk: last.ckpt, best.ckpt, and the temporary copy an atomic write makes.
CHECKPOINTS_ON_DISK = 3
#: AdamW keeps two float32 moments per trainable parameter.
OPTIMIZER_BYTES_PER_TRAINABLE = 8


def check_writable(directory: Path) -> None:
    """Create ``directory`` if needed and prove a file can be written, synced and deleted in it."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"output directory {directory} is a file")
    probe = directory / ".texttune-write-probe"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"texttune write probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"output directory {directory} is not writable ({exc.strerror or exc}); "
                          f"choose another --output-dir") from None


def checkpoint_bytes(model: Any) -> int:
    """Estimated size of one training checkpoint: trainable weights, buffers and AdamW's state.

    Frozen weights (the backbone under LoRA) are left out of checkpoints (``TextModule.on_save_checkpoint``).
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    weights = sum(p.numel() * p.element_size() for p in trainable)
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return weights + buffers + sum(p.numel() for p in trainable) * OPTIMIZER_BYTES_PER_TRAINABLE


def check_free_space(directory: Path, *, model: Any) -> int:
    """Refuse to start when ``directory`` cannot hold the run's checkpoints; return the bytes needed.

    Checkpoints already there (a resumed run) are replaced in place, so their size counts as available.
    """
    one = checkpoint_bytes(model)
    present = sum(p.stat().st_size for p in directory.glob("*.ckpt") if p.is_file())
    needed = max(one, CHECKPOINTS_ON_DISK * one - present)
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise ConfigError(
            f"not enough free space for checkpoints in {directory}: {_size(needed)} ({needed:,} bytes) needed "
            f"({CHECKPOINTS_ON_DISK} checkpoints of ~{_size(one)}: last, best and the copy being written"
            f"{', less those already there' if present else ''}), {_size(free)} ({free:,} bytes) free; "
            f"free some space or choose another --output-dir")
    return needed


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
