"""``--batch-size auto``: run the search, keep the effective batch size, record the choice.

The search itself (``batch_size.find_batch_size``) is a building block; this is
the recipe step that turns its answer into the run's batch size and gradient
accumulation and writes ``batch_size.json`` so the choice is visible later.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from texttune.config import RunConfig
from texttune.runs import RunDir
from texttune.runs.files import read_json, write_json

log = logging.getLogger("texttune")

#: The search never goes above this many examples per step (and never above the training rows).
AUTO_BATCH_CAP = 1024


def resolve_batch_size(config: RunConfig, *, task: Any, model: Any, features: Any, run: RunDir, resuming: bool) -> RunConfig:
    """The config with a concrete batch size (and accumulation) when it asked for ``auto``."""
    t = config.train
    if t.batch_size != "auto":
        return config
    import torch

    from texttune.engine.batch_size import find_batch_size, split_batch

    if resuming and run.batch_search.exists():  # a resumed run must keep its batch size: the data order depends on it
        chosen = read_json(run.batch_search)
        log.info("batch size %d x %d accumulation, as chosen when this run started", chosen["batch_size"], chosen["accumulate"])
        return replace(config, train=replace(t, batch_size=chosen["batch_size"], accumulate_grad_batches=chosen["accumulate"]))
    device = torch.device("cuda" if t.accelerator in {"auto", "gpu"} and torch.cuda.is_available() else "cpu")
    was_on = next(model.parameters()).device
    model.to(device)
    try:
        search = find_batch_size(model=model, loss=task.loss, features=features, collate=task.collate, device=device,
                                 limit=min(len(features), AUTO_BATCH_CAP),
                                 limit_reason="training rows" if len(features) <= AUTO_BATCH_CAP else "texttune's cap")
    finally:
        model.to(was_on)
    batch, accumulate = split_batch(search.chosen, effective=t.effective_batch_size, accumulate=t.accumulate_grad_batches)
    write_json(run.batch_search, {**search.to_json(), "batch_size": batch, "accumulate": accumulate,
                                  "effective_batch_size": batch * accumulate, "device": str(device)})
    log.info("batch size auto: %d fits (%s); training with %d x %d accumulation = %d per optimizer step",
             search.chosen, search.stopped_because, batch, accumulate, batch * accumulate)
    return replace(config, train=replace(t, batch_size=batch, accumulate_grad_batches=accumulate))
