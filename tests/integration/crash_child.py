"""``texttune train`` in a child process, with test-only fault injection (used by test_crash_resume.py).

Usage: ``python crash_child.py <texttune arguments...>``, or ``python crash_child.py --serve``
for a fork server that runs many such processes without importing torch each time
(see ``serve``). Nothing here is part of
texttune: the script adds one Lightning callback to the trainer the recipe builds
and then runs the real CLI, so the process dies exactly where a real one would.

Environment:
- ``CRASH_LOG``: a JSONL file; every training batch appends ``{"pid", "step",
  "batch", "rng"}``: the optimizer steps done before it, a hash of its tensors and a
  hash of the torch random state at that moment (fsynced, so a kill loses nothing).
- ``CRASH_KILL``: ``<phase>:<step>``: SIGKILL this process
  ``train``  right after optimizer step ``step`` (after any periodic checkpoint of that step),
  ``eval``   during the evaluation that follows step ``step`` (its first batch),
  ``ckpt``   while writing the first checkpoint of step ``step`` (``last.ckpt`` between evaluations,
             ``best.ckpt`` at an evaluation that improved, ``last.ckpt`` then being a hard link to it):
             half the bytes are in the temp file.
- ``CRASH_SIGINT``: ``<step>``: send this process a real SIGINT when the batch after
  optimizer step ``step`` starts (before its forward pass), as a Ctrl-C would.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

from texttune.cli.main import main
from texttune.engine import checkpoint_io, finetune


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _digest(value: Any) -> str:
    sha = hashlib.sha256()
    if isinstance(value, dict):
        for key in sorted(value):
            sha.update(key.encode())
            sha.update(_digest(value[key]).encode())
    elif isinstance(value, torch.Tensor):
        sha.update(value.detach().cpu().contiguous().numpy().tobytes())
    else:
        sha.update(repr(value).encode())
    return sha.hexdigest()[:16]


class FaultInjector(Callback):
    """Records every training batch; kills or interrupts the process where the environment says."""

    def __init__(self, log: Path | None, kill: str | None, sigint: str | None) -> None:
        self.record_file = log
        self.phase, _, step = (kill or "none:-1").partition(":")
        self.step = int(step)
        self.sigint = int(sigint) if sigint else None

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if self.record_file is not None:
            record = {"pid": os.getpid(), "step": step, "batch": _digest(batch), "rng": _digest(torch.get_rng_state())}
            with open(self.record_file, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        if self.sigint is not None and step == self.sigint:
            self.sigint = None
            os.kill(os.getpid(), signal.SIGINT)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.phase == "train" and trainer.global_step == self.step:
            _kill()

    def on_validation_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int,
                                  dataloader_idx: int = 0) -> None:
        if self.phase == "eval" and trainer.global_step == self.step and not trainer.sanity_checking:
            _kill()


def _install(injector: FaultInjector) -> None:
    real_trainer = finetune._trainer
    real_save = checkpoint_io.AtomicCheckpointIO.save_checkpoint

    def trainer_with_injector(*args: Any, **kwargs: Any) -> Any:
        trainer = real_trainer(*args, **kwargs)
        trainer.callbacks.append(injector)
        return trainer

    def dying_save(self: Any, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if injector.phase == "ckpt" and checkpoint.get("global_step") == injector.step:
            def half_then_die(handle: Any) -> None:
                buffer = io.BytesIO()
                torch.save(checkpoint, buffer)
                data = buffer.getvalue()
                handle.write(data[: len(data) // 2])
                handle.flush()
                os.fsync(handle.fileno())
                _kill()

            checkpoint_io.write_atomically(Path(path), half_then_die)
        real_save(self, checkpoint, path, storage_options)

    finetune._trainer = trainer_with_injector
    checkpoint_io.AtomicCheckpointIO.save_checkpoint = dying_save  # type: ignore[method-assign]


def run(argv: list[str]) -> int:
    """``texttune`` with the injector the environment asks for."""
    torch.set_num_threads(1)  # tiny model: threads only add hand-off cost (see tests/integration/conftest.py)
    log = os.environ.get("CRASH_LOG")
    _install(FaultInjector(Path(log) if log else None, os.environ.get("CRASH_KILL"), os.environ.get("CRASH_SIGINT")))
    return main(argv)


#: What a training run imports; the fork server imports it once, so each run starts in well under a second.
WARM = ("lightning.pytorch", "transformers", "transformers.models.llama.modeling_llama", "datasets", "pyarrow",
        "safetensors.torch", "matplotlib.pyplot", "texttune.api", "texttune.engine.module", "texttune.engine.loggers",
        "texttune.tasks.registry", "texttune.runs.plots")


def serve() -> None:
    """Fork server: for each JSON request on stdin (argv, env, stdout, stderr), fork a child that runs ``run``.

    Each run is still its own process, killed for real; only the imports (~70% of
    a tiny run's time) are shared. The server itself never runs a torch operation,
    so forking it is safe (no thread pools yet). Replies ``RESULT <exit status>``,
    negative for a signal as in ``subprocess``.
    """
    import importlib
    import traceback

    os.environ.setdefault("MPLBACKEND", "Agg")
    for name in WARM:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    print("READY", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the run
            code = 1
            try:
                os.environ.update(request["env"])
                for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
                    os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
                code = run(request["argv"])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - reported like an uncaught exception in a process
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(f"RESULT {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        sys.exit(run(sys.argv[1:]))
