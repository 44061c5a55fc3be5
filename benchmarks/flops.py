"""Model FLOPs of a training run and the machine's matmul peak, for model FLOPs utilisation (MFU).

Model FLOPs are what the model needs per example, whatever the implementation:
one forward and backward of the plain transformers model, ``model(**batch).loss``
with logits at every position, on the example alone (no padding). Both sides of a
comparison train on the same examples, so they are credited the same FLOPs;
padding, or logits texttune skips (target-only loss), are not counted as work.

Counting every example with ``torch.utils.flop_counter`` would cost as much as
training, so the cost is probed at a few lengths and fitted. For a transformer the
count is exactly polynomial in the lengths: linear layers grow with the number of
tokens, attention with their products. Decoder-only: ``a*L + b*L^2`` (L = input
tokens). Encoder-decoder: ``a*S + b*S^2 + c*T + d*T^2 + e*S*T`` (S = source,
T = target tokens: encoder self-attention, decoder self-attention, cross-attention).
The fit is checked on a held-out probe.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch


def matmul_peak_flops(*, threads: int, size: int = 2048, seconds: float = 3.0) -> float:
    """Best measured fp32 FLOP/s of a square matmul on this CPU with ``threads`` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(2):
        a @ b  # warm-up: thread pool and caches
    best, started = 0.0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - t0))
    return best


def _count(model: Any, batch: dict[str, torch.Tensor]) -> int:
    """FLOPs of one forward + backward of ``model(**batch).loss`` (matmuls and attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.zero_grad(set_to_none=True)
    counter = FlopCounterMode(display=False)
    with counter:
        model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def _probe(model: Any, *, family: str, source: int, target: int, vocab: int) -> int:
    ids = torch.randint(5, vocab - 1, (1, source))
    if family == "causal":
        return _count(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids})
    labels = torch.randint(5, vocab - 1, (1, target))
    return _count(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})


def _terms(family: str, source: float, target: float) -> list[float]:
    if family == "causal":
        return [source, source**2]
    return [source, source**2, target, target**2, source * target]


def probe_model(model_dir: str, *, auto_class: str) -> Any:
    """The architecture of ``model_dir`` with eager attention (so attention matmuls are counted).

    On the meta device when the model's forward allows it (shapes only: seconds, no memory);
    some models call ``.item()`` in their forward, and those get real, randomly initialised weights.
    """
    import transformers

    config = transformers.AutoConfig.from_pretrained(model_dir)
    cls = getattr(transformers, auto_class)
    with torch.device("meta"):
        model = cls.from_config(config, attn_implementation="eager")
    try:
        with torch.device("meta"):
            _probe(model, family="causal" if "Causal" in auto_class else "seq2seq", source=4, target=4, vocab=100)
        return model
    except RuntimeError:
        return cls.from_config(config, attn_implementation="eager")


class FlopModel:
    """Fitted training FLOPs per example as a function of its token lengths."""

    def __init__(self, model: Any, *, family: str) -> None:
        self.family = family
        self.device = next(model.parameters()).device
        vocab = int(model.get_output_embeddings().weight.shape[0]) if model.get_output_embeddings() is not None else 1000
        model.train()
        if family == "causal":
            points = [(s, s) for s in (8, 24, 48, 96)]
            check = (64, 64)
        else:
            points = [(s, t) for s in (8, 32, 64) for t in (4, 16, 32)]
            check = (48, 24)
        rows = [_terms(family, s, t) for s, t in points]
        with torch.device(self.device):
            counts = [_probe(model, family=family, source=s, target=t, vocab=vocab) for s, t in points]
        solution = torch.linalg.lstsq(torch.tensor(rows, dtype=torch.float64),
                                      torch.tensor(counts, dtype=torch.float64).unsqueeze(1)).solution
        self.coefficients = solution.squeeze(1).tolist()
        with torch.device(self.device):
            measured = _probe(model, family=family, source=check[0], target=check[1], vocab=vocab)
        self.fit_error = abs(self.per_example(*check) - measured) / measured  # relative error on an unseen length

    def per_example(self, source: int, target: int) -> float:
        return sum(c * x for c, x in zip(self.coefficients, _terms(self.family, source, target)))

    def total(self, sources: Sequence[int], targets: Sequence[int]) -> float:
        """Model FLOPs of training once on examples with these lengths."""
        return sum(self.per_example(s, t) for s, t in zip(sources, targets))
