"""``--learning-rate auto``: a learning-rate range test before training, its pick, and its application to the run.

The range test (Smith, "Cyclical Learning Rates for Training Neural Networks", 2017, section
3.3; fastai's and Lightning's ``lr_find``): :data:`PROBE_STEPS` optimizer steps on the run's
own first batches (its training loader: same order, batch size and accumulation), each a
real training step (dropout on, the precision's autocast, gradient clipping, AdamW with the
run's parameter groups and weight decay), while the rate rises exponentially from
:data:`MIN_LR` to :data:`MAX_LR` (x1.43 per step). It stops early once the loss diverges
(:func:`divergence`): not finite, its running average above :data:`DIVERGENCE` times its
lowest, or, once it has fallen by :data:`FELL` (10%) of where it started, back above the
start or without a new low for :data:`PATIENCE` steps (the rate has grown 17-fold since).

The pick (:func:`pick`): the losses smoothed without lag (a centred moving average of
:data:`SMOOTHING` points), kept up to the divergence; the rate where the smoothed loss
falls fastest against log(rate) before its minimum (the "steepest descent": the fastest
learning the model showed), but at most a third of the rate at the smoothed minimum
(:data:`BELOW_MINIMUM`; the minimum is where the loss stops improving, the edge of what
training survives, and a noisy or abrupt curve can put its steepest point right beside it).
Rounded to 3 significant digits. Why a third and not fastai's tenth: on CoNLL-2003 with
MiniLM (150 x 32) the steepest descent was 4 grid steps below the minimum (2.03e-4 vs
8.38e-4) and trained to 82.8 F1; a tenth of the minimum (8.38e-5) gave 73.2 (one case:
docs/recipes.md). A curve that never falls by :data:`MIN_DESCENT` of its start (flat), or
diverges before :data:`MIN_POINTS` steps, says nothing: the run then takes the rate it
would have had without auto (the task's default) and says why (logged, and ``fallback``
in ``lr_find.json``).

The layers a task adds (``task.heads``) keep their ratio to the backbone's rate: with the
task's default head rate (text-classification: 10x) every step raises both, and the head
gets that multiple of the pick (``tasks/registry.auto_head_ratio``).

The run is unchanged by the probe: the trainable weights and buffers are copied (to the CPU)
before and copied back after; the probe's AdamW is thrown away (the run builds its own in
``configure_optimizers``); gradients are cleared; every submodule's train/eval mode and the
torch/CUDA/Python/NumPy random states are restored (``batch_probe.untouched``: dropout and
masking draw from them); the loader's position (``state_dict``) is put back, so training
starts from the same first batch. A run with auto therefore trains exactly as a run given
the picked rate as a number (tests/integration/test_lr_find_run.py checks the losses step for step).

Why not Lightning's ``Tuner.lr_find``: it sets every parameter group to one rate (the head's
ratio would be lost), runs a whole ``trainer.fit`` on the run's trainer with its callbacks
and loggers swapped out, restores the weights through a checkpoint file written into the
run directory, and leaves the random streams where the probe left them (dropout after it
differs from a run without it). Outside Lightning, as ``--batch-size auto`` does
(``engine/batch_size.py``), none of that arises.

:func:`resolve_learning_rate` is the recipe's step: rank 0 runs the test on the training
device, writes ``lr_find.json`` (the curve, the pick, why) and the config gets numbers,
which ``config.yaml`` records; the other ranks, and a resumed run whose config still says
auto, read the pick from ``lr_find.json`` instead of probing again.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch

from texttune.config import RunConfig
from texttune.engine.batch_probe import untouched
from texttune.engine.distributed import wait_for_file
from texttune.engine.optimizer import adamw, parameter_groups
from texttune.engine.placement import move_model
from texttune.files import read_json, write_json
from texttune.runs import RunDir
from texttune.tasks.registry import auto_head_ratio, default_learning_rate

log = logging.getLogger("texttune")

MIN_LR, MAX_LR, PROBE_STEPS = 1e-6, 1.0, 40
#: Running average (bias-corrected EMA) that watches for divergence during the test.
EMA_BETA = 0.8
#: Divergence: the running average above this many times its lowest value.
DIVERGENCE = 4.0
#: Points of the centred moving average the pick is made on.
SMOOTHING = 5
#: The smoothed loss must fall by this fraction of its start, or the curve counts as flat.
MIN_DESCENT = 0.03
#: The pick is at most the rate of the smoothed minimum divided by this.
BELOW_MINIMUM = 3.0
#: Fewest points before the divergence the pick needs; the start of the curve is the mean of its first this many.
MIN_POINTS = 5
#: Divergence also: having fallen by this fraction of the start, the running loss is back above it, or has made
#: no new low for PATIENCE steps.
FELL, PATIENCE = 0.1, 8

Loss = Callable[[torch.nn.Module, dict], torch.Tensor]


@dataclass(frozen=True)
class Pick:
    """What the curve says: the rate (None: no usable descent, see ``reason``) and the points it rests on."""

    rate: float | None
    by: str  # "steepest descent", "minimum / 3" or "fallback"
    reason: str  # how the rate was found, or why there is none
    smoothed: tuple[float, ...]  # the centred moving average of the losses before the divergence
    steepest: int | None  # index of the steepest descent
    minimum: int | None  # index of the smoothed minimum


def divergence(losses: Sequence[float]) -> str:
    """Why the curve has diverged at its last point (empty while it has not)."""
    if not losses:
        return ""
    if not math.isfinite(losses[-1]):
        return f"the loss became {losses[-1]} at step {len(losses)}"
    ema, average = 0.0, []
    for i, loss in enumerate(losses):
        ema = EMA_BETA * ema + (1 - EMA_BETA) * loss
        average.append(ema / (1 - EMA_BETA ** (i + 1)))
    lowest, now = min(average), average[-1]
    if now > DIVERGENCE * lowest:
        return f"the running loss {now:.4g} exceeded {DIVERGENCE:g}x its lowest {lowest:.4g} at step {len(losses)}"
    start = sum(losses[:MIN_POINTS]) / min(len(losses), MIN_POINTS)  # several batches: one can be an outlier
    if len(losses) <= MIN_POINTS or lowest > (1 - FELL) * start:  # no real descent yet: noise cannot end the test
        return ""
    if now > start:
        return f"the running loss {now:.4g} rose back above its start {start:.4g} at step {len(losses)}"
    since = len(average) - 1 - average.index(lowest)
    if since >= PATIENCE:  # PATIENCE steps raise the rate 17-fold: far past anything the pick can take
        return f"the running loss made no new low for {since} steps (its lowest {lowest:.4g} at step {len(losses) - since})"
    return ""


def _centred_average(values: Sequence[float], width: int = SMOOTHING) -> list[float]:
    half = width // 2
    return [sum(values[max(0, i - half):i + half + 1]) / len(values[max(0, i - half):i + half + 1])
            for i in range(len(values))]


def pick(rates: Sequence[float], losses: Sequence[float]) -> Pick:
    """The steepest descent of the smoothed loss before its minimum, at most a third of the minimum's rate (see the
    module docstring); a pure function of the curve."""
    finite = list(itertools.takewhile(math.isfinite, losses))
    kept = len(losses)
    for end in range(1, len(losses) + 1):  # the curve up to (not including) its first diverged point
        if divergence(losses[:end]):
            kept = end - 1
            break
    # Smoothed over every finite point, the diverged ones too: the last kept points then show the rise they lead to.
    smoothed = _centred_average(finite)[:kept]
    if kept < MIN_POINTS:
        why = (f"the loss diverged after {kept} steps (at rate {rates[kept]:.3g})" if kept < len(losses)
               else f"the test took only {kept} steps")
        return Pick(None, "fallback", f"{why}, too few to see a descent (needs {MIN_POINTS})", tuple(smoothed), None, None)
    minimum = min(range(kept), key=smoothed.__getitem__)
    fell = (smoothed[0] - smoothed[minimum]) / max(abs(smoothed[0]), 1e-12)
    if fell < MIN_DESCENT or minimum == 0:
        return Pick(None, "fallback", f"the loss is flat: it fell by {100 * max(fell, 0.0):.1f}% (less than "
                    f"{100 * MIN_DESCENT:g}%) between rates {rates[0]:.3g} and {rates[kept - 1]:.3g}",
                    tuple(smoothed), None, minimum)
    logs = [math.log(r) for r in rates[:minimum + 1]]
    slopes = [(smoothed[min(i + 1, minimum)] - smoothed[max(i - 1, 0)]) / (logs[min(i + 1, minimum)] - logs[max(i - 1, 0)])
              for i in range(minimum)]  # d(smoothed loss) / d(log rate), the minimum itself left out
    steepest = min(range(minimum), key=slopes.__getitem__)
    steep, low = f"{rates[steepest]:.3g} (step {steepest + 1})", f"{rates[minimum]:.3g} (step {minimum + 1})"
    cap = rates[minimum] / BELOW_MINIMUM
    if rates[steepest] <= cap:
        return Pick(float(f"{rates[steepest]:.3g}"), "steepest descent",
                    f"the steepest descent, at {steep}; the smoothed minimum at {low}", tuple(smoothed), steepest, minimum)
    return Pick(float(f"{cap:.3g}"), f"minimum / {BELOW_MINIMUM:g}", f"a third of the smoothed minimum at {low}; the "
                f"steepest descent, at {steep}, was above that", tuple(smoothed), steepest, minimum)


def rates_of(steps: int = PROBE_STEPS, low: float = MIN_LR, high: float = MAX_LR) -> list[float]:
    """The test's rates: ``steps`` of them, exponentially from ``low`` to ``high``."""
    return [low * (high / low) ** (i / (steps - 1)) for i in range(steps)]


def _cycle(loader: Any) -> Iterator[Any]:
    """The loader's batches in its order, starting over when it ends (a tiny training set)."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the training loader yields no batches")


def _trained_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What a training step can change: the trainable parameters and the buffers (running statistics)."""
    tensors = {f"p:{n}": p for n, p in model.named_parameters() if p.requires_grad}
    return {**tensors, **{f"b:{n}": b for n, b in model.named_buffers()}}


@contextmanager
def restored(model: torch.nn.Module, loader: Any, device: torch.device) -> Iterator[None]:
    """Put back whatever happens inside: trainable weights and buffers (bit for bit), gradients, modes, random
    states and the loader's position."""
    saved = {name: tensor.detach().to("cpu", copy=True) for name, tensor in _trained_tensors(model).items()}
    position = loader.state_dict()
    with untouched(model, device):
        try:
            yield
        finally:
            with torch.no_grad():
                for name, tensor in _trained_tensors(model).items():
                    tensor.copy_(saved[name])
            loader.load_state_dict(position)


@dataclass(frozen=True)
class RangeTest:
    """The test's curve: the backbone's rate and the training loss of each step it took, why it stopped, its time."""

    rates: tuple[float, ...]
    losses: tuple[float, ...]
    stopped_because: str
    seconds: float


def range_test(*, model: torch.nn.Module, loss: Loss, loader: Any, device: torch.device, groups: list[dict[str, Any]],
               accumulate: int = 1, clip: float | None = None, scaler: Any = None, precision: str = "32",
               rates: Sequence[float] | None = None) -> RangeTest:
    """Train on ``loader``'s batches at each of ``rates`` (default :func:`rates_of`) in turn until the loss diverges.

    ``groups``: AdamW's parameter groups with ``lr`` as each group's share of the rate (1 for the backbone, the
    head's ratio for the head). ``accumulate`` batches make one step (their mean loss); ``clip``: the gradient norm
    cap; ``scaler``: a ``torch.amp.GradScaler`` for float16; ``precision``: the run's (which AdamW it uses). Nothing
    is restored here: see :func:`restored`.
    """
    rates = list(rates if rates is not None else rates_of())
    shares = [group["lr"] for group in groups]
    optimizer = adamw(groups, precision=precision)  # the run's kind of AdamW (engine/optimizer.py)
    params = [p for group in groups for p in group["params"]]
    batches, losses, stopped = _cycle(loader), [], f"reached the last rate {rates[-1]:.3g}"
    began = time.perf_counter()
    model.train()  # dropout on, as in training
    try:
        for rate in rates:
            for group, share in zip(optimizer.param_groups, shares):
                group["lr"] = rate * share
            losses.append(_step(model, loss, batches, device, optimizer, params, accumulate, clip, scaler))
            why = divergence(losses)
            if why:
                stopped = why
                break
    finally:
        batches.close()  # the loader's iterator (and any worker processes) ends here
        del optimizer
        model.zero_grad(set_to_none=True)
    seconds = round(time.perf_counter() - began, 3)
    return RangeTest(rates=tuple(rates[:len(losses)]), losses=tuple(losses), stopped_because=stopped, seconds=seconds)


def _step(model: torch.nn.Module, loss: Loss, batches: Iterator[Any], device: torch.device, optimizer: Any,
          params: list[torch.Tensor], accumulate: int, clip: float | None, scaler: Any) -> float:
    """One optimizer step over ``accumulate`` batches, as Lightning takes it; the mean loss (not finite: no step)."""
    total = 0.0
    for _ in range(accumulate):
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in next(batches).items()}
        value = loss(model, batch) / accumulate
        total += float(value.detach())
        if not math.isfinite(total):
            return total
        (scaler.scale(value) if scaler is not None else value).backward()
    if scaler is not None:
        scaler.unscale_(optimizer)
    if clip:
        torch.nn.utils.clip_grad_norm_(params, clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total


def resolve_learning_rate(config: RunConfig, *, task: Any, model: torch.nn.Module, loader: Any, run: RunDir,
                          resuming: bool, device: torch.device, loss: Loss | None = None,
                          primary: bool = True) -> RunConfig:
    """The config with numbers for ``learning_rate`` (and the head's rate) when it asked for ``auto``.

    Rank 0 (``primary``) runs the range test on ``device`` with the run's training ``loader`` (restored
    afterwards) and writes ``lr_find.json``; the other processes, and a resumed run, read that file.
    ``loss`` should run as a training step does (the precision's autocast).
    """
    t = config.train
    if t.learning_rate != "auto":
        return config
    if not primary:
        wait_for_file(run.lr_find, what="the --learning-rate auto choice")
        resuming = True
    if resuming and run.lr_find.exists():  # the run keeps its rate: no new probe
        chosen = read_json(run.lr_find)
        log.info("learning rate %g, as the range test chose it when this run started (lr_find.json)",
                 chosen["learning_rate"])
        return _with_rates(config, chosen["learning_rate"], chosen["head_learning_rate"])
    ratio = auto_head_ratio(type(task), t.head_learning_rate)
    move_model(model, device, purpose="the learning-rate range test")
    probe = config_for_probe(t, ratio)
    groups = parameter_groups(model, heads=task.heads, config=probe)
    scaler = torch.amp.GradScaler(device.type) if t.precision == "16-mixed" else None
    with restored(model, loader, device):
        test = range_test(model=model, loss=loss or task.loss, loader=loader, device=device, groups=groups,
                          accumulate=t.accumulate_grad_batches, clip=t.gradient_clip_val, scaler=scaler,
                          precision=t.precision)
    found = pick(test.rates, test.losses)
    rate = found.rate if found.rate is not None else default_learning_rate(type(task), peft=config.peft.peft)
    head = float(f"{rate * ratio:.3g}") if ratio is not None else None
    if found.rate is None:
        log.warning("learning rate auto: the range test gives no rate (%s); using %s's default %g", found.reason,
                    task.name, rate)
    write_json(run.lr_find, _record(test, found, rate=rate, head=head, ratio=ratio, device=device, config=t))
    log.info("learning rate auto: %g%s (%s); range test: %d steps in %.1f s (stopped: %s); recorded in lr_find.json",
             rate, f", head {head:g}" if head is not None else "", found.reason if found.rate else "the default",
             len(test.losses), test.seconds, test.stopped_because)
    return _with_rates(config, rate, head)


def config_for_probe(train: Any, ratio: float | None) -> Any:
    """The training options whose parameter groups carry each group's share of the rate as ``lr``."""
    return replace(train, learning_rate=1.0, head_learning_rate=ratio)


def _with_rates(config: RunConfig, rate: float, head: float | None) -> RunConfig:
    return replace(config, train=replace(config.train, learning_rate=float(rate),
                                         head_learning_rate=None if head is None else float(head)))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no NaN or infinity


def _record(test: RangeTest, found: Pick, *, rate: float, head: float | None, ratio: float | None,
            device: torch.device, config: Any) -> dict[str, Any]:
    """lr_find.json: the curve, the pick and how it was made, the rates the run takes."""
    smoothed = list(found.smoothed) + [None] * (len(test.losses) - len(found.smoothed))
    return {
        "learning_rate": rate, "head_learning_rate": head, "head_ratio": ratio,
        "picked_by": found.by,
        "reason": found.reason, "fallback": None if found.rate is not None else found.reason,
        "steepest_lr": test.rates[found.steepest] if found.steepest is not None else None,
        "minimum_lr": test.rates[found.minimum] if found.minimum is not None else None,
        "stopped_because": test.stopped_because, "seconds": test.seconds, "device": str(device),
        "batch_size": config.batch_size, "accumulate": config.accumulate_grad_batches,
        "settings": {"min_lr": MIN_LR, "max_lr": MAX_LR, "steps": PROBE_STEPS, "smoothing": SMOOTHING,
                     "divergence": DIVERGENCE, "min_descent": MIN_DESCENT, "below_minimum": BELOW_MINIMUM},
        "curve": [{"step": i + 1, "lr": r, "loss": _finite(v), "smoothed": s}
                  for i, (r, v, s) in enumerate(zip(test.rates, test.losses, smoothed))],
    }
