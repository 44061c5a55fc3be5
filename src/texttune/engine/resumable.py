"""What makes a killed run resumable exactly: periodic checkpoints, random state, a clean Ctrl-C.

Lightning restores the weights, the optimizer and scheduler, the loop counters
and (through ``ResumableLoader.state_dict``) the data position. Three things it
leaves out are added here as callbacks:

- ``PeriodicCheckpoint`` writes ``checkpoints/last.ckpt`` every N optimizer
  steps and/or M minutes between evaluations, so a SIGKILL costs minutes. It
  never writes on a step that will be evaluated: the evaluation's own
  checkpoint follows it, and a checkpoint taken just before it would make
  Lightning skip that evaluation on resume. Which steps Lightning evaluates is
  worked out from public Trainer attributes (``_validation_due``); a Lightning
  without them is refused when training starts, never skipped in silence.
- ``RandomState`` stores the torch / CUDA / numpy / Python random generators in
  every checkpoint and restores them on resume, so dropout and sampling continue
  the same random stream.
- ``DeferredInterrupt`` turns the first Ctrl-C into a stop at the end of the
  current step (or evaluation batch), where the checkpoint Lightning then writes
  resumes exactly; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from texttune.errors import TexttuneError

log = logging.getLogger("texttune")


#: What :func:`_validation_due` reads: public Trainer attributes and public properties of its training loop.
_TRAINER_ATTRIBUTES = ("enable_validation", "check_val_every_n_epoch", "current_epoch", "should_stop", "val_check_batch",
                       "fit_loop")
_LOOP_ATTRIBUTES = ("total_batch_idx", "batch_progress")


def _validation_due(trainer: Any, batch_idx: int) -> bool:
    """Whether Lightning validates right after training batch ``batch_idx`` (of this epoch), which just ended.

    Lightning's own rule (``_should_check_val_fx`` of its training epoch loop, a private method) for
    the ways texttune configures it (``build_trainer`` in engine/trainer.py): validation every
    ``val_check_batch`` batches of the epoch (``check_val_every_n_epoch`` set: once per epoch, at its
    last batch) or of the whole run (``check_val_every_n_epoch=None``: ``--eval-every-steps``, a stream),
    at the last batch of a training set without a length, and before any requested stop. Computed
    from public attributes only, so a Lightning that renames its internals cannot silently turn
    every periodic save off; tests/unit/test_resumable_hook.py checks it against what Lightning
    actually does.
    """
    if not trainer.enable_validation:
        return False
    every_epochs = trainer.check_val_every_n_epoch
    if every_epochs is not None and (trainer.current_epoch + 1) % every_epochs:
        return False
    if trainer.should_stop:  # an early stop validates first (or ends the run): no save worth taking now
        return True
    loop = trainer.fit_loop.epoch_loop
    interval = trainer.val_check_batch
    if interval is None or interval == float("inf"):  # no length known (e.g. a stream): at its last batch
        return bool(loop.batch_progress.is_last_batch)
    iteration = loop.total_batch_idx if every_epochs is None else batch_idx
    return (iteration + 1) % int(interval) == 0


def check_lightning(trainer: Any) -> None:
    """Fail at the start of training when this Lightning lacks what :func:`_validation_due` reads.

    A periodic checkpoint must not be skipped, or written just before an evaluation, in silence.
    """
    missing = [name for name in _TRAINER_ATTRIBUTES if not hasattr(trainer, name)]
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    missing += [f"fit_loop.epoch_loop.{name}" for name in _LOOP_ATTRIBUTES if not hasattr(loop, name)]
    if missing:
        import lightning

        raise TexttuneError(
            f"periodic checkpoints (--checkpoint-every-steps / --checkpoint-every-minutes) do not support Lightning "
            f"{lightning.__version__}: its Trainer has no {', '.join(missing)}. Install a Lightning release texttune "
            "supports (lightning>=2.6,<3), or turn periodic checkpoints off (--checkpoint-every-minutes 0 and no "
            "--checkpoint-every-steps)")


class PeriodicCheckpoint(Callback):
    """Write ``path`` every ``every_steps`` optimizer steps and/or ``every_minutes`` of training."""

    def __init__(self, path: Path, *, every_steps: int | None = None, every_minutes: float | None = None) -> None:
        self.path = path
        self.every_steps = every_steps or 0
        self.every_seconds = 60.0 * (every_minutes or 0.0)
        self._step = -1
        self._saved_at = time.monotonic()

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self.every_steps or self.every_seconds:
            check_lightning(trainer)
        self._step = trainer.global_step
        self._saved_at = time.monotonic()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self._saved_at = time.monotonic()  # the evaluation's checkpoint restarts the clock

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if step == self._step:  # accumulating gradients: no optimizer step to save yet
            return
        self._step = step
        due = (self.every_steps and step % self.every_steps == 0) or (
            self.every_seconds and time.monotonic() - self._saved_at >= self.every_seconds)
        due = bool(trainer.strategy.broadcast(bool(due)))  # every process takes the same decision
        if not due or _validation_due(trainer, batch_idx):
            return
        # weights_only=False, said explicitly: a full checkpoint (optimizer, loops, callbacks) to resume from.
        # Left unset, Lightning logs "`weights_only` was not set, defaulting to `False`" at every save, which
        # reads like an unsafe *load*; loads stay weights-only (AtomicCheckpointIO.load_checkpoint).
        trainer.save_checkpoint(self.path, weights_only=False)
        self._saved_at = time.monotonic()


def _numpy_state() -> Any:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return None
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]  # plain types: weights_only loads


def _set_numpy_state(state: Any) -> None:
    if state is None:
        return
    import numpy as np

    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


class RandomState(Callback):
    """Saves and restores the global random generators with each checkpoint."""

    def state_dict(self) -> dict[str, Any]:
        import torch

        version, internal, gauss = random.getstate()
        return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": _numpy_state(), "python": [version, list(internal), gauss]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        import torch

        torch.set_rng_state(state_dict["torch"])
        if state_dict["cuda"] and torch.cuda.is_available() and len(state_dict["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
        _set_numpy_state(state_dict["numpy"])
        version, internal, gauss = state_dict["python"]
        random.setstate((version, tuple(internal), gauss))


class DeferredInterrupt(Callback):
    """First Ctrl-C: stop after the current step (or evaluation batch); second Ctrl-C: stop now.

    An interrupt in the middle of a step would checkpoint a batch as read but not
    trained, and the resumed run would skip it. Raising ``KeyboardInterrupt`` at a
    step boundary instead lets Lightning's own handling (the "last" checkpoint's
    ``save_on_exception``) write a checkpoint that resumes exactly.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("Ctrl-C: saving a checkpoint after the current step (press Ctrl-C again to stop at once)")

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)

    def _restore(self) -> None:
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _stop_now(self, trainer: Any) -> bool:
        # Every process stops at the same step, even if the signal reached them a step apart.
        return bool(trainer.strategy.reduce_boolean_decision(self.requested, all=False))

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._stop_now(trainer):
            self._restore()
            raise KeyboardInterrupt

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        # Alone, stop inside a long evaluation (a resume runs it again). With several processes, wait for the
        # step boundary: processes may hold different numbers of validation batches, so no collective here.
        if self.requested and trainer.world_size == 1 and not trainer.sanity_checking:
            self._restore()
            raise KeyboardInterrupt

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._restore()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._restore()


def resume_callbacks(train: Any, *, last: Path) -> list[Callback]:
    """The callbacks above, configured from a ``TrainConfig``; ``last`` is the run's last.ckpt."""
    periodic = PeriodicCheckpoint(last, every_steps=train.checkpoint_every_steps,
                                  every_minutes=train.checkpoint_every_minutes)
    return [periodic, RandomState(), DeferredInterrupt()]
