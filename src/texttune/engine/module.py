"""The one LightningModule: optimisation and logging here, everything task-specific in the task.

Lightning owns the loop (devices, precision, accumulation, clipping, checkpoints,
resume); this module only says how to get a loss (``task.loss``), how to score
an evaluation (``task.evaluate``) and which optimizer and schedule to use.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch

from texttune.config import GenerationConfig, TrainConfig
from texttune.engine.distributed import evaluate_everywhere, is_sharded
from texttune.engine.optimizer import optimizer_and_schedule
from texttune.engine.placement import evaluation_context


class TextModule(pl.LightningModule):
    """Wraps a transformers model and a task for the Lightning Trainer."""

    def __init__(
        self,
        *,
        model: Any,
        task: Any,
        train_config: TrainConfig,
        generation: GenerationConfig,
        eval_rows: Any | None,
        on_evaluation: Callable[[int, dict[str, float], list[dict[str, Any]]], None] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.task = task
        self.train_config = train_config
        self.generation = generation
        self.eval_rows = eval_rows  # raw validation rows, for generation-based metrics
        self.on_evaluation = on_evaluation
        # Where the time went (metrics.json "timing"): evaluation wall time, and what training saw.
        # The token count is a device tensor, read once at the end: no per-step host sync.
        self.eval_seconds = 0.0
        self.evaluations = 0
        self.train_examples = 0
        self.train_tokens = torch.zeros((), dtype=torch.long)
        self.train_slots = 0  # token positions computed, padding included (a host int: shapes need no sync)
        # (step, metrics, predictions) of the latest evaluation: the final evaluation reuses it
        # when the best checkpoint is those very weights, instead of generating everything again.
        self.last_evaluation: tuple[int, dict[str, float], list[dict[str, Any]]] | None = None
        self._val_sum = torch.zeros(())  # validation loss x rows, this process's share of this evaluation
        self._val_count = 0
        self._loss_in_evaluation = False  # this evaluation's loss comes from the generation pass (inference/scored.py)

    def on_train_epoch_start(self) -> None:
        # from_pretrained returns models in eval mode and Lightning keeps each module's
        # mode as it finds it: without this, dropout would be off during fine-tuning.
        self.model.train()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._batch_started = time.perf_counter()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.task.loss(self.model, batch)
        # Logged values stay on the device; Lightning syncs them only when it writes a log line.
        self.log("train_loss", loss, prog_bar=True, batch_size=batch.get("examples", batch["input_ids"].shape[0]))
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.trainer.optimizers:
            self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], prog_bar=False)
        # Throughput of this batch (forward, backward and, on a stepping batch, the optimizer), wall clock.
        # The token count stays a device tensor: no host sync here.
        seconds = max(time.perf_counter() - getattr(self, "_batch_started", time.perf_counter()), 1e-9)
        ids = batch["input_ids"]  # (B, T); packed (tasks/packing.py): (R, W), the counts beside it
        if "tokens" in batch:
            examples, tokens = batch["examples"], batch["tokens"]
        else:
            examples = ids.shape[0]
            tokens = batch["attention_mask"].sum() if "attention_mask" in batch else torch.tensor(ids.numel())
        self.train_examples += examples
        self.train_slots += ids.numel()
        self.train_tokens = self.train_tokens.to(tokens.device) + tokens
        self.log("examples_per_s", examples / seconds, prog_bar=False)
        self.log("tokens_per_s", tokens.float() / seconds, prog_bar=False)

    def on_validation_epoch_start(self) -> None:
        self._eval_started = time.perf_counter()
        self._loss_in_evaluation = self._scores_loss_while_generating()

    def _scores_loss_while_generating(self) -> bool:
        """Whether this evaluation takes its loss from the generation pass instead of a loss pass of its own.

        A text-to-text model otherwise runs every input twice (the loss pass, then generation's prefill or
        encoder); the task can do both in one pass over each input. Only where the two passes would run alike: one
        process (the loss pass's batches are sharded differently from generation's rows), and no mixed precision
        (the loss pass runs under Lightning's autocast, generation outside it).
        """
        loss_in_evaluation = getattr(self.task, "loss_in_evaluation", None)
        return (loss_in_evaluation is not None and not self.trainer.sanity_checking and self.eval_rows is not None
                and self.trainer.world_size == 1 and "mixed" not in str(self.trainer.precision)
                and loss_in_evaluation(self.model, generation=self.generation))

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if self._loss_in_evaluation:
            return  # summed by the evaluation at the end of the epoch, on its one pass over each prompt
        # Summed and counted here, reduced once at the end: the mean loss per target token over the
        # whole validation set, the same whatever the batch size and however the rows are shared
        # between processes (a mean of batch or process means would weight them by accident).
        loss = self.task.loss(self.model, batch)
        labels = batch.get("labels")
        weight = (labels != -100).sum() if labels is not None and labels.dim() == 2 else batch["input_ids"].shape[0]
        self._val_sum = self._val_sum.to(loss.device) + loss.detach().float() * weight
        self._val_count += int(weight)

    def on_validation_epoch_end(self) -> None:
        totals = torch.stack([self._val_sum, torch.tensor(float(self._val_count), device=self._val_sum.device)])
        totals = self.trainer.strategy.reduce(totals, reduce_op="sum") if self.trainer.world_size > 1 else totals
        self._val_sum, self._val_count = torch.zeros(()), 0
        logged: dict[str, Any] = {}
        if totals[1] > 0:
            logged["val_loss"] = totals[0] / totals[1]
        if self.trainer.sanity_checking or self.eval_rows is None:
            self._log_validation(logged)
            return
        # Every process generates for its share of the rows; the same metrics come back on every rank.
        # Where training put the model; under the precision's autocast when FlashAttention needs it (placement.py).
        with evaluation_context(self.model, self.trainer):
            if self._loss_in_evaluation:
                metrics, predictions, loss_sum, tokens = self.task.evaluate_with_loss(
                    self.model, self.eval_rows, generation=self.generation)
                if tokens:
                    logged["val_loss"] = torch.tensor(loss_sum / tokens)
            else:
                metrics, predictions = evaluate_everywhere(self.task, self.model, self.eval_rows,
                                                           generation=self.generation,
                                                           sharded=is_sharded(self.train_config.strategy))
        # A task metric named "loss" (masked-lm, causal-lm: the loss that perplexity is exp() of, on the task's
        # fixed evaluation, e.g. masked once with a fixed seed) replaces the loss pass's val_loss: one number
        # per name, the one evals.jsonl and metrics.json record and --checkpoint-metric loss compares.
        logged.update({f"val_{name}": float(value) for name, value in metrics.items()})
        self._log_validation(logged)
        self.last_evaluation = (int(self.global_step), metrics, predictions)
        self.evaluations += 1
        self.eval_seconds += time.perf_counter() - getattr(self, "_eval_started", time.perf_counter())
        if self.on_evaluation is not None and self.trainer.is_global_zero:  # only rank 0 writes the run directory
            self.on_evaluation(int(self.global_step), metrics, predictions)

    def _log_validation(self, values: dict[str, Any]) -> None:
        """Log each value once per evaluation, always with the same arguments for the same name.

        Lightning refuses a second ``self.log`` of one name in one hook with different arguments
        (``MisconfigurationException``, at the first evaluation inside ``fit``), and a second one with
        the same arguments would average the two values: so every name is logged exactly once.
        """
        progress = {"val_loss", f"val_{self.task.main_metric}"}
        for name, value in values.items():
            # Already the same on every process; sync_dist (a mean of equal values) only keeps Lightning quiet.
            self.log(name, value, prog_bar=name in progress, sync_dist=True)

    # -- checkpoints: with frozen weights (LoRA), only what training changes ----------------------
    def frozen_keys(self) -> set[str]:
        """State-dict names of parameters that do not train (the backbone under LoRA); empty for full fine-tuning."""
        return {name for name, param in self.named_parameters(remove_duplicate=False) if not param.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Frozen weights equal the backbone's, which the run reloads anyway: leaving them out makes a
        # LoRA checkpoint megabytes instead of the whole model. Buffers stay (they are small).
        frozen = self.frozen_keys()
        if frozen:
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in frozen}

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """As torch's, except that a checkpoint may leave out the frozen weights (see :meth:`on_save_checkpoint`).

        Anything else missing or unexpected still fails under ``strict`` (a checkpoint of another model).
        """
        frozen = self.frozen_keys()
        if not frozen:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [k for k in result.missing_keys if k not in frozen]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"checkpoint does not match the model: missing {missing[:5]}, "
                               f"unexpected {list(result.unexpected_keys)[:5]}")
        return result

    def configure_optimizers(self) -> Any:
        return optimizer_and_schedule(self.model, heads=self.task.heads, config=self.train_config,
                                      total_steps=int(self.trainer.estimated_stepping_batches))
