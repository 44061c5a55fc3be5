"""The run's Lightning Trainer: how it is configured, settled after ``--batch-size auto``, and run.

The recipe (``engine/finetune.py``) builds the trainer before it loads the model:
Lightning's strategy decides the device this process trains on, and that device
decides the attention implementation the model is loaded with, where the batch-size
search runs and where the baselines are evaluated (``engine/placement.py``). The
options that depend on the search (the accumulation under ``--effective-batch-size``,
and so the evaluation period counted in batches) are given to the trainer once it
has answered (:func:`settle`).
"""

from __future__ import annotations

import signal
import time
import warnings
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping

from texttune.config import RunConfig
from texttune.engine.checkpoint_callbacks import BestCheckpoint, LastCheckpoint
from texttune.engine.checkpoint_io import AtomicCheckpointIO
from texttune.engine.distributed import TransformerBlocks, lightning_strategy
from texttune.engine.loggers import log_config, make_loggers
from texttune.engine.progress import progress_bar
from texttune.engine.resumable import resume_callbacks
from texttune.runs import RunDir


def build_trainer(config: RunConfig, run: RunDir, monitor: str, mode: str, *, blocks: TransformerBlocks | None = None,
                  resumed_step: int | None = None) -> pl.Trainer:
    """The run's trainer: checkpoints (best by ``monitor``/``mode``, last), loggers, evaluation period, strategy.

    ``blocks``: FSDP's wrap policy, told the model's blocks once it is loaded (``engine/distributed.py``).
    ``resumed_step``: the step a ``--resume`` continues from (the CSV log keeps its rows up to it).
    """
    t = config.train
    loggers = make_loggers(config, run, resumed_step=resumed_step)
    # best.ckpt only ever holds the best weights; last.ckpt follows training and is also written on
    # Ctrl-C (a hard link to best.ckpt when both hold the same step: see engine/checkpoint_callbacks.py).
    best = BestCheckpoint(dirpath=run.checkpoints, monitor=monitor, mode=mode)
    last = LastCheckpoint(dirpath=run.checkpoints, best=best)
    callbacks: list[Any] = [best, last, *resume_callbacks(t, last=run.checkpoints / "last.ckpt")]
    if t.progress_bar:  # steps of --max-steps when epochs are unbounded, not Lightning's "Epoch 0/-2"
        callbacks.append(progress_bar())
    if t.early_stopping_patience:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=t.early_stopping_patience))
    # With --max-steps only, epochs are unbounded (-1): a run stopped by max_steps counts its
    # epoch as finished, so any derived epoch cap would end a resumed, longer run at once.
    max_epochs = t.max_epochs if t.max_epochs is not None else (3 if t.max_steps is None else -1)
    # A short run still gets a loss curve: at least ~4 points when the step count is known.
    log_every = t.log_every_steps if t.max_steps is None else max(1, min(t.log_every_steps, t.max_steps // 4))
    return pl.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes,
        strategy=lightning_strategy(t.strategy, blocks),
        # The loaders shard themselves (ResumableLoader, ShardSampler): Lightning must not swap in its
        # DistributedSampler, whose padding would repeat validation rows.
        use_distributed_sampler=False, precision=t.precision, max_epochs=max_epochs,
        max_steps=t.max_steps if t.max_steps is not None else -1,
        accumulate_grad_batches=t.accumulate_grad_batches, gradient_clip_val=t.gradient_clip_val or None,
        val_check_interval=eval_interval(config),
        check_val_every_n_epoch=None if t.eval_every_steps or config.data.streaming else 1,
        num_sanity_val_steps=0, log_every_n_steps=log_every, callbacks=callbacks, logger=loggers,
        enable_progress_bar=t.progress_bar, enable_model_summary=False, default_root_dir=run.root,
        plugins=[AtomicCheckpointIO()],  # temp file + fsync + rename: a kill never leaves half a checkpoint
    )


def eval_interval(config: RunConfig) -> int | None:
    """Batches between evaluations: --eval-every-steps, else per epoch; a stream (no epochs) once, at its last step."""
    t = config.train
    if t.eval_every_steps:
        return t.eval_every_steps * t.accumulate_grad_batches
    if config.data.streaming and t.max_steps:
        return t.max_steps * t.accumulate_grad_batches
    return None


def settle(trainer: pl.Trainer, config: RunConfig) -> None:
    """Give the trainer the accumulation the run settled on (``--batch-size auto`` searched after the trainer was
    built) and log the resolved options as hyperparameters.

    ``accumulate_grad_batches`` is the attribute Lightning's own GradientAccumulationScheduler sets on a
    trainer; Lightning reads it, and the evaluation period in batches, only once ``fit`` starts.
    """
    trainer.accumulate_grad_batches = config.train.accumulate_grad_batches
    interval = eval_interval(config)
    if interval is not None:
        trainer.val_check_interval = interval
    log_config(trainer.loggers, config.flat())


def train_until_done(trainer: pl.Trainer, module: Any, train_dl: Any, val_dl: Any, resume_path: str | None) -> float:
    """``trainer.fit``; its seconds. Ctrl-C returns normally with ``trainer.interrupted`` set."""
    with warnings.catch_warnings():
        # A run shorter than one evaluation period has nothing to monitor yet; the final
        # evaluation covers it, so Lightning's warning about it is noise.
        warnings.filterwarnings("ignore", message=".*could not find the monitored key.*")
        warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")
        started = time.perf_counter()
        try:
            trainer.fit(module, train_dl, val_dl, ckpt_path=resume_path)
        except SystemExit:
            # Lightning answers Ctrl-C by saving (save_on_exception), ignoring further
            # SIGINTs and calling sys.exit(1): turn that back into a normal return.
            if not trainer.interrupted:
                raise
            signal.signal(signal.SIGINT, signal.default_int_handler)
    return round(time.perf_counter() - started, 3)
