"""The fine-tuning recipe: trainer -> model -> data -> baselines -> Lightning fit -> best weights -> final eval -> model/.

The trainer comes first because Lightning's strategy decides the device this process
trains on, and the rest follows it: the attention implementation the model is loaded
with, the ``--batch-size auto`` search, the ``--learning-rate auto`` range test
(``engine/lr_find.py``, on the run's own training loader, restored afterwards), the
baselines and the final evaluation all run on that device (``engine/placement.py``).

Each step writes its result into the run directory as soon as it has it, so a
run that dies half-way still tells what it was, what data it saw and what it
had measured.
"""

from __future__ import annotations

import logging
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from texttune.backbones import Backbone
from texttune.backbones.adapters import prepare_model
from texttune.config import RunConfig
from texttune.data import Table, holdout, take
from texttune.data.streaming import Stream
from texttune.engine.features import encode_cached
from texttune.engine.optimizer import head_parameter_count
from texttune.engine.packed import PackingChoice, choose_packing, train_collate
from texttune.engine.recorder import RunRecorder, recorder_for
from texttune.errors import ConfigError, TexttuneError
from texttune.metrics.registry import higher_is_better
from texttune.runs import RunDir
from texttune.tasks import loss_mask
from texttune.tasks.data_checks import check_run_data
from texttune.tasks.saving import save_trained

log = logging.getLogger("texttune")


@dataclass
class FitResult:
    """What ``fit`` returns: where the run is and what it measured."""

    run_dir: Path
    model_dir: Path
    metrics: dict[str, Any]


def monitor_of(task: Any, config: RunConfig) -> tuple[str, str]:
    """(logged metric name, 'min' or 'max') that picks the best checkpoint; the direction is the metric registry's."""
    metric = config.train.checkpoint_metric or task.main_metric
    if metric == "loss":
        return "val_loss", "min"
    ranked = [m for m in task.metric_names if higher_is_better(m) is not None]
    if metric not in task.metric_names:
        raise ConfigError(f"checkpoint_metric {metric!r} is not reported by task {task.name!r}; valid: loss, {', '.join(ranked)}")
    higher = higher_is_better(metric)
    if higher is None:
        raise ConfigError(f"checkpoint_metric {metric!r} is neither better high nor low, so it cannot pick a checkpoint; "
                          f"valid: loss, {', '.join(ranked)}")
    return f"val_{metric}", "max" if higher else "min"


def check_precision(config: RunConfig, backbone: Backbone) -> None:
    """Refuse precisions known to fail before spending any time on them."""
    import torch

    precision = config.train.precision
    if precision == "16-mixed" and backbone.t5_style:
        raise ConfigError(
            f"fp16 (16-mixed) overflows in {backbone.model_type} models and produces NaN losses; use --precision bf16-mixed"
        )
    if precision == "16-mixed" and not torch.cuda.is_available():
        raise ConfigError("16-mixed precision needs a CUDA GPU; on CPU use --precision bf16-mixed or 32")


def split_data(config: RunConfig, train: Table, validation: Table | None) -> tuple[Table, Table]:
    """Apply the held-out split and sample limits; say what was done."""
    d, seed = config.data, config.train.seed
    if validation is None:
        train, validation = holdout(train, d.validation_fraction, seed=seed)
        log.info("no validation data given: held out %d of %d rows (%.0f%%, seed %d) for validation",
                 len(validation), len(train) + len(validation), 100 * d.validation_fraction, seed)
    return take(train, d.max_train_samples, shuffle_seed=seed), take(validation, d.max_eval_samples)


def _trainer(config: RunConfig, run: RunDir, monitor: str, mode: str, *, blocks: Any = None,
             resumed_step: int | None = None) -> Any:
    """The run's Lightning Trainer (engine/trainer.py); the seam tests wrap to add callbacks."""
    from texttune.engine.trainer import build_trainer

    return build_trainer(config, run, monitor, mode, blocks=blocks, resumed_step=resumed_step)


def _stream_of(train: Any, validation: Table | None) -> Any:
    """The training stream when ``train`` is one (``--streaming``), else None."""
    if not isinstance(train, Stream):
        return None
    if validation is None:
        raise ConfigError("--streaming needs a --validation-file: a stream has no rows to hold out")
    return train


def _loaders(task: Any, train_features: Any, val_features: Any, config: RunConfig, *, collate: Any, rank: int = 0,
             world_size: int = 1, stream: Any = None) -> tuple[Any, Any]:
    """Training batches (this process's slice of each global batch, made by ``collate``: packed or not) and this
    process's validation rows (always the task's padded batches)."""
    from torch.utils.data import DataLoader

    from texttune.engine.distributed import ShardSampler, is_sharded
    from texttune.engine.loader import ResumableLoader, feature_lengths, length_sorted

    t = config.train
    lengths = feature_lengths(train_features) if t.group_by_length and stream is None else None
    if stream is not None:
        from texttune.engine.streaming import StreamLoader

        train_dl: Any = StreamLoader(stream.rows, encode=task.encode, collate=collate, batch_size=t.batch_size,
                                     seed=t.seed, buffer=config.data.shuffle_buffer, group_by_length=t.group_by_length,
                                     rank=rank, world_size=world_size)
    else:
        train_dl = ResumableLoader(train_features, batch_size=t.batch_size, seed=t.seed, collate_fn=collate,
                                   num_workers=t.num_workers, lengths=lengths, rank=rank, world_size=world_size)
    # The loss pass of an evaluation pads each batch to its longest example: in length order (longest
    # first, so an out-of-memory shows at once) there is almost no padding. Generation-based metrics
    # are computed on the rows separately, so the order changes nothing else.
    rows = ShardSampler(len(val_features), rank=rank, world_size=world_size, pad=is_sharded(t.strategy),
                        order=length_sorted(feature_lengths(val_features)))
    val_dl = DataLoader(val_features, batch_size=config.generation.generation_batch_size, sampler=rows,
                        collate_fn=task.collate, num_workers=t.num_workers)
    return train_dl, val_dl


def _resume_path(config: RunConfig, run: RunDir) -> str | None:
    resume = config.train.resume
    if resume is None:
        return None
    path = run.checkpoints / "last.ckpt" if resume == "latest" else Path(resume)
    if resume == "latest" and not path.is_file() and (run.root / "config.yaml").is_file():
        # Killed before its first checkpoint: nothing to continue, so the run starts over in place.
        log.warning("no checkpoint in %s yet: starting the run from the beginning", run.checkpoints)
        return None
    if not path.is_file():
        raise ConfigError(f"cannot resume: no checkpoint at {path}")
    return str(path)


def fit(*, task: Any, backbone: Backbone, config: RunConfig, train: Table, validation: Table | None, run: RunDir,
        test: Table | None = None) -> FitResult:
    """Fine-tune ``backbone`` for ``task`` and write everything to ``run``; ``test`` (--test-file) is scored once at
    the end with the best weights, never seen before."""
    import lightning.pytorch as pl

    from texttune.engine import placement
    from texttune.engine.batch_size import resolve_batch_size
    from texttune.engine.checkpoint_io import checkpoint_step
    from texttune.engine.distributed import TransformerBlocks, launch_rank
    from texttune.engine.module import TextModule
    from texttune.engine.trainer import settle, train_until_done

    resume_path = _resume_path(config, run) if config.train.resume else None
    monitor, mode = monitor_of(task, config)  # an unknown --checkpoint-metric is refused before the run directory exists
    if config.train.head_learning_rate is not None and not task.heads:
        raise ConfigError(f"option 'head_learning_rate' does not apply to {task.name}: it adds no new layer to the "
                          "backbone; use --learning-rate")
    # Every process of a distributed run executes this recipe; only rank 0's recorder writes the run directory.
    recorder = recorder_for(run, rank=launch_rank(), samples=config.train.samples_per_eval)
    recorder.start(config, task=task.name, backbone=backbone.name, main_metric=task.main_metric)
    try:
        check_precision(config, backbone)
        pl.seed_everything(config.train.seed, verbose=False)
        stream = _stream_of(train, validation)  # --streaming: the stream trains, its first rows stand for it here
        train, val = split_data(config, stream.sample if stream else train, validation)
        if config.data.data_checks and stream is None:  # duplicates, leaks, conflicts... (--dedupe: leaks leave train)
            train, report = check_run_data(task, train, val, data=config.data, test=test)
            if report is not None:  # None: memory-mapped data, not checked (tasks/data_checks.py says why)
                recorder.data_report(report)
        # Lightning decides the device first; the attention choice, the batch search and the baselines follow it.
        blocks = TransformerBlocks()
        trainer = _trainer(config, run, monitor, mode, blocks=blocks,
                           resumed_step=checkpoint_step(resume_path) if resume_path else None)
        device = placement.training_device(trainer)
        learned, packing = _build_model(task, backbone, config, train, run, recorder, device=device)
        blocks.use(backbone.model)
        cache = {"tokenizer": backbone.tokenizer, "cache_dir": run.features, "primary": recorder.writes}
        train_features, train_stats = encode_cached(task, train.rows, split="train", **cache)
        val_features, val_stats = encode_cached(task, val.rows, split="validation", **cache)
        recorder.data({"train": (train.name, train_features, train_stats),
                       "validation": (val.name, val_features, val_stats)}, learned=learned)
        _audit_loss_mask(task, backbone, train, train_features, recorder)  # before step 1: which tokens train
        config = resolve_batch_size(config, task=task, model=backbone.model, features=train_features, run=run,
                                    resuming=resume_path is not None, primary=recorder.writes, device=device,
                                    loss=placement.as_in_training(task.loss, trainer))
        train_dl, val_dl = _loaders(task, train_features, val_features, config, rank=trainer.global_rank,
                                    world_size=trainer.world_size, stream=stream,
                                    collate=train_collate(task, packing, tokenizer=backbone.tokenizer))
        config, lr_find_s = _auto_learning_rate(config, task, backbone.model, train_dl, run, recorder, trainer, device,
                                                resuming=resume_path is not None)  # the loader is restored afterwards
        settle(trainer, config)
        timing = {"lr_find_s": lr_find_s,
                  "baselines_s": _baselines(task, backbone.model, val, config, recorder, trainer, device)}
        module = TextModule(model=backbone.model, task=task, train_config=config.train,
                            generation=config.generation, eval_rows=val.rows, on_evaluation=recorder.evaluation)
        placement.hand_over(backbone.model, strategy=config.train.strategy, device=device)
        timing["fit_s"] = train_until_done(trainer, module, train_dl, val_dl, resume_path)
        memory = placement.memory_peaks(device)
        if trainer.interrupted:
            recorder.interrupted()
            raise TexttuneError(f"training interrupted at step {trainer.global_step}; continue with: texttune train "
                                f"{task.name} --resume latest --output-dir {shlex.quote(str(run.root))}")
        module = _whole_module(trainer, module, config,
                               rebuild=lambda: _rebuilt_module(task, backbone, config, val, recorder.evaluation, device))
        if not recorder.writes:  # this process is done: rank 0 evaluates the best weights and saves the model
            return FitResult(run.root, run.model, {})
        return _finish(task, module, trainer, config, backbone, val, run, recorder, timing, memory, test=test)
    except BaseException as exc:
        recorder.failed(exc)  # status "failed" (unless interrupted) and plots of what was measured
        raise


def _audit_loss_mask(task: Any, backbone: Backbone, train: Table, features: Any, recorder: RunRecorder) -> None:
    """Refuse labels that train nothing (or are misaligned), warn on rows without loss or an untrained stop token."""
    if not loss_mask.applies(task, features):
        return
    stops = loss_mask.stop_token_ids(tokenizer=backbone.tokenizer, model=backbone.model)
    found = loss_mask.audit(task, features, stop_ids=stops, decoder_only=backbone.family == "causal")
    loss_mask.enforce(found, source=train.name, lines=train.locate)
    recorder.loss_mask(found)


def _auto_learning_rate(config: RunConfig, task: Any, model: Any, loader: Any, run: RunDir, recorder: RunRecorder,
                        trainer: Any, device: Any, *, resuming: bool) -> tuple[RunConfig, float]:
    """``--learning-rate auto``: the range test on the training device (engine/lr_find.py); the config with the
    chosen numbers, which config.yaml now records, and the test's seconds (0 without auto)."""
    from texttune.engine import placement
    from texttune.engine.lr_find import resolve_learning_rate

    if config.train.learning_rate != "auto":
        return config, 0.0
    started = time.perf_counter()
    config = resolve_learning_rate(config, task=task, model=model, loader=loader, run=run, resuming=resuming,
                                   device=device, loss=placement.as_in_training(task.loss, trainer),
                                   primary=recorder.writes)
    recorder.chosen(config)
    return config, round(time.perf_counter() - started, 3)


def _baselines(task: Any, model: Any, val: Table, config: RunConfig, recorder: RunRecorder, trainer: Any,
               device: Any) -> float:
    """Rank 0: baselines and the zero-shot evaluation, on the training device; their seconds. The other ranks wait
    for rank 0 in ``trainer.fit``."""
    from texttune.engine import placement

    started = time.perf_counter()
    if recorder.wants_baselines(config):
        placement.move_model(model, device, purpose="the baselines")  # once: training finds it there
        with placement.evaluation_context(model, trainer):
            recorder.baselines(task, model, val, config)
    return round(time.perf_counter() - started, 3)


def _build_model(task: Any, backbone: Backbone, config: RunConfig, train: Table, run: RunDir,
                 recorder: RunRecorder, *, device: Any) -> tuple[dict[str, Any], PackingChoice]:
    """Bind the task, load the weights with the task's head and the attention for ``device``, add adapters;
    what the task learned from the rows, and whether training packs its batches (engine/packed.py)."""
    from texttune.engine import placement

    # A scratch:SIZE backbone trains its tokenizer and initialises its weights on the training rows here.
    initialised = backbone.initialise(train.rows, directory=run.root / "init-model")
    task.bind(backbone, config)
    learned = {**task.learn(train.rows), **initialised}
    attention = placement.choose_run_attention(auto_class=task.auto_class(backbone.family), config=backbone.config,
                                               device=device, precision=config.train.precision)
    if backbone.model is None:  # the head may depend on what learn() found (e.g. labels)
        _load_model(task, backbone, attention)
    else:  # loaded before the run (the API's zero-shot use)
        placement.apply_attention(backbone.model, attention)
    adapted = prepare_model(backbone, heads=task.heads, options=config.peft)  # LoRA, checkpointing
    if config.train.head_learning_rate is not None and not head_parameter_count(backbone.model, task.heads):
        raise ConfigError(f"option 'head_learning_rate' does not apply: {backbone.name} has none of the layers "
                          f"{task.name} adds ({', '.join(task.heads)}); use --learning-rate")
    record = placement.attention_record(backbone.model, attention)
    log.info("attention: %s (%s)", record["implementation"], attention.reason)
    packing = choose_packing(task, requested=config.train.packing, attention=record["implementation"],
                             grouped=config.train.group_by_length)
    log.info("packing: %s (%s)", "on" if packing.enabled else "off", packing.reason)
    recorder.model(backbone.model, family=backbone.family, extra=adapted,
                   runtime={"training_device": str(device), "attention": record, "packing": packing.record()})
    return learned, packing


def _load_model(task: Any, backbone: Backbone, attention: Any) -> None:
    """``backbone.model``: the task's head, with ``attention`` (backbones/attention.py) as ``attn_implementation``."""
    backbone.load_model(task.auto_class(backbone.family), model_kwargs={**task.model_kwargs(), **attention.model_kwargs()})


def _whole_module(trainer: Any, module: Any, config: RunConfig, *, rebuild: Any) -> Any:
    """The trained module with whole weights: after sharded training (FSDP, ZeRO-3) gathered onto rank 0 alone."""
    from texttune.engine.distributed import is_sharded, unshard

    if not (is_sharded(config.train.strategy) and trainer.world_size > 1):
        return module
    whole = unshard(trainer, rebuild=rebuild)  # None on every rank but 0
    if whole is not None:
        for name in ("eval_seconds", "evaluations", "train_examples", "train_tokens", "train_slots", "last_evaluation"):
            setattr(whole, name, getattr(module, name))
    return whole


def _rebuilt_module(task: Any, backbone: Backbone, config: RunConfig, val: Table, on_evaluation: Any, device: Any) -> Any:
    """A fresh, unwrapped module (base weights, adapters as configured) for the weights gathered after sharded training."""
    from texttune.engine import placement
    from texttune.engine.module import TextModule

    backbone.model = None
    _load_model(task, backbone, placement.choose_run_attention(
        auto_class=task.auto_class(backbone.family), config=backbone.config, device=device, precision=config.train.precision))
    prepare_model(backbone, heads=task.heads, options=config.peft)
    return TextModule(model=backbone.model, task=task, train_config=config.train, generation=config.generation,
                      eval_rows=val.rows, on_evaluation=on_evaluation)


def _restore_best(trainer: Any, module: Any) -> tuple[str, int | None]:
    """Load the best checkpoint's weights into ``module``; (its path, its step) or ("", None)."""
    import torch

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if not (best and Path(best).is_file()):
        return "", None
    # weights_only: a checkpoint is data, never code (see RELIABILITY in the docs). mmap: only the
    # weights are read from disk; the optimizer state (2x the weights for AdamW) never enters memory.
    checkpoint = torch.load(best, map_location="cpu", weights_only=True, mmap=True)
    step = int(checkpoint.get("global_step", -1))
    if step == trainer.global_step:
        log.info("the best checkpoint %s holds the final weights", best)  # already in memory
    else:
        module.load_state_dict(checkpoint["state_dict"])
        log.info("restored the best checkpoint %s (step %d of %d)", best, step, trainer.global_step)
    del checkpoint
    return best, step


def _timing(module: Any, timing: dict[str, Any], final_eval_s: float) -> dict[str, Any]:
    """metrics.json "timing": where this process spent its time (a resumed run counts its own part)."""
    fit_s = timing.get("fit_s", 0.0)
    train_s = max(fit_s - module.eval_seconds, 1e-9)
    tokens = int(module.train_tokens)
    # The share of computed token positions that were padding: what --packing and length grouping save.
    padding = 1 - tokens / module.train_slots if module.train_slots else 0.0
    return {**timing, "train_s": round(train_s, 3), "eval_s": round(module.eval_seconds, 3), "evaluations": module.evaluations,
            "final_eval_s": round(final_eval_s, 3), "train_examples": module.train_examples, "train_tokens": tokens,
            "train_padding": round(padding, 4), "train_examples_per_s": round(module.train_examples / train_s, 3),
            "train_tokens_per_s": round(tokens / train_s, 1)}


def _test_evaluation(task: Any, module: Any, trainer: Any, config: RunConfig, test: Table, recorder: RunRecorder) -> None:
    """The best weights on the test rows (--test-file), on the training device: metrics.json "test"."""
    from texttune.engine import placement

    placement.move_model(module.model, placement.training_device(trainer), purpose="the test evaluation")
    with placement.evaluation_context(module.model, trainer):
        metrics, predictions = task.evaluate(module.model, test.rows, generation=config.generation)
    recorder.test_evaluation(metrics, predictions, task=task, config=config, rows=test.rows)


def _finish(task: Any, module: Any, trainer: Any, config: RunConfig, backbone: Backbone, val: Table, run: RunDir,
            recorder: RunRecorder, timing: dict[str, Any], memory: dict[str, Any], test: Table | None = None) -> FitResult:
    """Rank 0: restore the best weights, evaluate them on the training device, save model/ and the final metrics."""
    from texttune.engine import placement

    best, best_step = _restore_best(trainer, module)
    started = time.perf_counter()
    reused = bool(best) and module.last_evaluation is not None and module.last_evaluation[0] == best_step
    timing["final_eval_reused"] = reused
    if reused:
        # The best weights are the ones evaluated last: their metrics and predictions are already known.
        _, metrics, predictions = module.last_evaluation
        log.info("the best checkpoint is the last evaluation (step %d): reusing its predictions", best_step)
    else:
        # Lightning's teardown left the module on the CPU: back to the training device, once, for this evaluation.
        placement.move_model(module.model, placement.training_device(trainer), purpose="the final evaluation")
        with placement.evaluation_context(module.model, trainer):
            metrics, predictions = task.evaluate(module.model, val.rows, generation=config.generation)
    final_eval_s = time.perf_counter() - started
    log.info("fine-tuned: %s", metrics)
    recorder.final_evaluation(predictions, task=task, config=config, rows=val.rows)  # intervals, paired tests
    if test is not None:  # --test-file: once, with the best weights; nothing was chosen on it
        _test_evaluation(task, module, trainer, config, test, recorder)
    model_dir = save_trained(task, backbone, run.model, columns=config.data.columns, peft=config.peft,
                             trained_steps=trainer.global_step)  # save_pretrained copies GPU weights to the CPU itself
    all_metrics = recorder.completed(model_dir, fine_tuned=metrics, best_checkpoint=best or None,
                                     steps=int(trainer.global_step), timing=_timing(module, timing, final_eval_s),
                                     memory=memory)
    recorder.model_card(model_dir, pipeline_tag=getattr(task, "pipeline_tag", None))  # from the final metrics.json
    return FitResult(run.root, model_dir, all_metrics)
