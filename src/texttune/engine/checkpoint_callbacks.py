"""The two checkpoint callbacks of a run, and why the second one is often a hard link.

``best.ckpt`` only ever holds the best weights by the monitored metric; ``last.ckpt``
follows training (it is what ``--resume latest`` reads) and is also written on Ctrl-C.
Both are written at the end of an evaluation, so whenever the evaluation just scored
a new best, Lightning would serialise the same state twice: for SmolLM2-135M with
AdamW that is 2 x 1.6 GB and ~5 s each on the 2-core machine, 6% of a short run's
training time. Instead, ``last.ckpt`` becomes a hard link to the ``best.ckpt`` just
written at the same optimizer step: same bytes, no second write. A hard link, not a
symlink: when ``best.ckpt`` is later replaced (a new file renamed over it), the link
keeps pointing at the old file, which is still exactly the state of that step.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

from texttune.files import fsync_directory

log = logging.getLogger("texttune")


class BestCheckpoint(ModelCheckpoint):
    """``best.ckpt`` by ``monitor``; remembers the step and file of its latest write."""

    def __init__(self, *, dirpath: Path, monitor: str, mode: str) -> None:
        super().__init__(dirpath=dirpath, filename="best", monitor=monitor, mode=mode, save_top_k=1,
                         enable_version_counter=False)
        self.written: tuple[int, str] | None = None  # (global step, path) of the latest write

    def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        self.written = (int(trainer.global_step), filepath)


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` at every evaluation and on Ctrl-C; a hard link when ``best`` holds this very step."""

    def __init__(self, *, dirpath: Path, best: BestCheckpoint) -> None:
        super().__init__(dirpath=dirpath, filename="last", save_top_k=1, save_on_exception=True,
                         enable_version_counter=False)
        self.best = best

    def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
        written = self.best.written
        # Every rank takes the same branch (same step), so collective saves (FSDP, DeepSpeed) stay in step.
        if written is not None and written[0] == trainer.global_step and Path(written[1]).is_file():
            if not trainer.is_global_zero or _hard_link(Path(written[1]), Path(filepath)):
                self._last_global_step_saved = trainer.global_step
                self._last_checkpoint_saved = filepath
                return
        super()._save_checkpoint(trainer, filepath)


def _hard_link(source: Path, target: Path) -> bool:
    """Make ``target`` another name of ``source`` (atomically replacing it); False where links are unsupported."""
    temporary = target.with_name(f".{target.name}.link-{os.getpid()}")
    try:
        temporary.unlink(missing_ok=True)
        os.link(source, temporary)
        os.replace(temporary, target)
        fsync_directory(target.parent)  # the new name survives a power cut, like every checkpoint write
    except OSError as exc:  # e.g. a file system without hard links: write the file instead
        temporary.unlink(missing_ok=True)
        log.debug("could not hard-link %s to %s (%s): writing it", source, target, exc)
        return False
    return True
