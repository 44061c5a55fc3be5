"""Where the model runs outside Lightning's loop, with which attention, and the memory training took.

Lightning decides the device training runs on (``--accelerator``, ``--devices``, the
launcher's ``LOCAL_RANK``); :func:`training_device` asks the trainer's strategy
(``root_device``) rather than repeating that logic. The recipe's own work on the model
runs there too:

* before ``trainer.fit`` (rank 0): the ``--batch-size auto`` search and the baselines
  (zero-shot evaluation). The model moves there once (:func:`move_model`); a
  single-device or DDP strategy then finds it in place. FSDP and DeepSpeed get it back
  on the CPU before fit (:func:`strategy_places_weights` says why).
* during ``trainer.fit`` every evaluation runs where Lightning put the model.
* after ``trainer.fit``: Lightning's teardown has moved the module to the CPU, so the
  final evaluation of the best weights (when it is not reused) moves it back once.

Nothing moves weights back and forth per evaluation. On a machine without a GPU the
training device is the CPU and every move is a no-op.

FlashAttention computes in fp16/bf16 only: a model running with it is evaluated outside
Lightning's steps under the precision plugin's autocast (:func:`evaluation_context`), as
the steps themselves are. The ``--batch-size auto`` trials always run their forward pass
that way (:func:`as_in_training`): they must measure what a training step costs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import torch

from texttune.backbones.attention import AttentionChoice, actual_attention, choose_attention, model_class_for
from texttune.engine.batch_probe import peak_rss_bytes

log = logging.getLogger("texttune")

CPU = torch.device("cpu")


def training_device(trainer: Any) -> torch.device:
    """The device this process trains on, as Lightning's strategy decided it (``cpu``, ``cuda:0``, ...)."""
    return torch.device(trainer.strategy.root_device)


def model_device(model: Any) -> torch.device:
    """Where ``model``'s (first) parameter is."""
    first = next(model.parameters(), None)
    return first.device if first is not None else CPU


def move_model(model: Any, device: torch.device, *, purpose: str) -> None:
    """Put ``model`` on ``device`` unless it is there already (then nothing happens)."""
    if model_device(model) == device:
        return
    log.info("model moved to %s for %s", device, purpose)
    model.to(device)


def strategy_places_weights(strategy: str) -> bool:
    """Whether ``--strategy`` must receive the model on the CPU: FSDP and DeepSpeed.

    They place the parameters themselves while wrapping the model: FSDP moves (and shards)
    one wrapped block at a time onto the device, DeepSpeed partitions them (ZeRO-3) or keeps
    them in CPU memory (the ``_offload`` variants). The other processes hand them a CPU
    model; a whole copy left on rank 0's GPU from the baselines would be an extra replica
    there, at the moment memory is tightest (sharding and optimizer state), and the offload
    variants expect CPU parameters. So the recipe moves the model back after the baselines.
    """
    return strategy.startswith(("fsdp", "deepspeed"))


def hand_over(model: Any, *, strategy: str, device: torch.device) -> None:
    """Just before ``trainer.fit``: the model back on the CPU for FSDP and DeepSpeed (see
    :func:`strategy_places_weights`), and the GPU peak-memory counter restarted, so it measures training."""
    if strategy_places_weights(strategy):
        move_model(model, CPU, purpose=f"--strategy {strategy}, which places the weights itself")
    reset_peak_memory(device)


def evaluation_context(model: Any, trainer: Any) -> contextlib.AbstractContextManager[Any]:
    """The context ``task.evaluate`` runs in outside Lightning's steps: the precision plugin's autocast when the model
    runs with FlashAttention (fp16/bf16 only), else nothing (evaluations stay as they were, e.g. float32 on CPU)."""
    if (actual_attention(model) or "").startswith("flash_attention"):
        return trainer.precision_plugin.forward_context()
    return contextlib.nullcontext()


def as_in_training(loss: Callable[[Any, dict], Any], trainer: Any) -> Callable[[Any, dict], Any]:
    """``loss`` under the precision plugin's training-step context (autocast for mixed precision), as Lightning runs it."""
    def step_loss(model: Any, batch: dict) -> Any:
        with trainer.precision_plugin.train_step_context():
            return loss(model, batch)
    return step_loss


def choose_run_attention(*, auto_class: str, config: Any, device: torch.device, precision: str) -> AttentionChoice:
    """The attention implementation for the model ``auto_class`` builds from ``config``, trained on ``device``."""
    return choose_attention(model_class_for(auto_class, config), device_type=device.type, precision=precision)


def apply_attention(model: Any, choice: AttentionChoice) -> None:
    """A model loaded before the run (the API's zero-shot use): switch it to the run's choice where transformers can."""
    if choice.implementation is None or actual_attention(model) == choice.implementation:
        return
    try:
        model.set_attn_implementation(choice.implementation)
    except (AttributeError, ValueError, ImportError) as exc:
        log.warning("keeping attention %s: cannot switch the loaded model to %s (%s)", actual_attention(model),
                    choice.implementation, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def attention_record(model: Any, choice: AttentionChoice) -> dict[str, Any]:
    """environment.json's "attention": what the model runs with, what was asked for and why."""
    return {"implementation": actual_attention(model), "requested": choice.implementation, "reason": choice.reason}


def reset_peak_memory(device: torch.device) -> None:
    """Start the GPU peak-memory counter afresh (training's peak, not the baselines' or the batch search's)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def memory_peaks(device: torch.device) -> dict[str, Any]:
    """metrics.json "memory": peak resident memory of this process and, on CUDA, torch's peak allocated and reserved
    bytes since :func:`reset_peak_memory` (None without CUDA)."""
    cuda = device.type == "cuda"
    return {"device": str(device), "peak_rss_bytes": peak_rss_bytes(),
            "peak_gpu_bytes": int(torch.cuda.max_memory_allocated(device)) if cuda else None,
            "peak_gpu_reserved_bytes": int(torch.cuda.max_memory_reserved(device)) if cuda else None}
