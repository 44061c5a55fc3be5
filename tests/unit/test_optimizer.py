"""AdamW groups: weight decay off for biases and norms, the task's new head at its own learning rate."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from texttune.config import TrainConfig
from texttune.engine.optimizer import (
    adamw,
    head_parameter_count,
    is_head_parameter,
    optimizer_and_schedule,
    parameter_groups,
    warmup_steps,
)

HEADS = ("classifier", "score", "pooler")


@pytest.mark.parametrize(("name", "heads", "expected"), [
    ("classifier.weight", ("classifier",), True),
    ("base_model.model.classifier.modules_to_save.default.weight", ("classifier",), True),
    ("_fsdp_wrapped_module.bert.pooler.dense.bias", ("pooler",), True),
    ("bert.encoder.layer.0.attention.self.query.weight", HEADS, False),
    ("bert.classifier_norm.weight", ("classifier",), False),  # a whole component, not a prefix
    ("cls.predictions.transform.dense.weight", ("cls.predictions.transform",), True),
    ("cls.predictions.decoder.weight", ("cls.predictions.transform",), False),
])
def test_head_parameters_are_found_by_whole_name_components(name: str, heads: tuple[str, ...], expected: bool) -> None:
    assert is_head_parameter(name, heads) is expected


def _model() -> torch.nn.Module:
    config = BertConfig(vocab_size=99, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        num_labels=5)
    return BertForSequenceClassification(config)


def _names(model: torch.nn.Module, group: dict) -> set[str]:
    ids = {id(p) for p in group["params"]}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_without_a_head_rate_two_groups_share_the_learning_rate() -> None:
    model = _model()
    groups = parameter_groups(model, heads=HEADS, config=TrainConfig(learning_rate=1e-4, weight_decay=0.01))
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(1e-4, 0.01), (1e-4, 0.0)]
    assert "classifier.weight" in _names(model, groups[0]) and "classifier.bias" in _names(model, groups[1])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_head_rate_moves_exactly_the_head_into_its_own_groups() -> None:
    model = _model()
    model.bert.embeddings.requires_grad_(False)  # frozen parameters are in no group
    config = TrainConfig(learning_rate=1e-4, head_learning_rate=2e-3, weight_decay=0.01)
    groups = parameter_groups(model, heads=HEADS, config=config)
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(1e-4, 0.01), (1e-4, 0.0), (2e-3, 0.01), (2e-3, 0.0)]
    assert _names(model, groups[2]) == {"classifier.weight", "bert.pooler.dense.weight"}
    assert _names(model, groups[3]) == {"classifier.bias", "bert.pooler.dense.bias"}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set().union(*(_names(model, g) for g in groups)) == trainable
    assert head_parameter_count(model, HEADS) == 16 * 5 + 5 + 16 * 16 + 16
    assert head_parameter_count(model, ("score",)) == 0


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
def test_every_group_follows_the_schedule_at_its_own_peak(schedule: str) -> None:
    model = _model()
    config = TrainConfig(learning_rate=1e-4, head_learning_rate=1e-3, warmup_ratio=0.2, lr_schedule=schedule)
    answer = optimizer_and_schedule(model, heads=HEADS, config=config, total_steps=10)
    optimizer, scheduler = answer["optimizer"], answer["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        rates = [g["lr"] for g in optimizer.param_groups]
        seen.append(rates[0])
        if rates[0] > 0:
            assert rates[2] == pytest.approx(10 * rates[0]) and rates[1] == rates[0]
    assert max(seen) == pytest.approx(1e-4)  # warmup reaches the peak, then the schedule takes over


@pytest.mark.parametrize(("ratio", "total", "expected"), [
    (0.1, 1000, 100),  # long runs: the ratio alone
    (0.1, 150, 15),
    (0.1, 60, 10),  # 6 would be too short a ramp: the minimum of 10 steps
    (0.01, 300, 10),
    (0.1, 30, 6),  # but the minimum never takes more than a fifth of the run
    (0.1, 4, 0),
    (0.0, 1000, 0),  # no warmup stays no warmup
    (0.5, 100, 50),
])
def test_warmup_is_a_ratio_with_a_minimum_of_steps(ratio: float, total: int, expected: int) -> None:
    assert warmup_steps(ratio=ratio, total_steps=total) == expected


def test_the_schedule_warms_up_over_the_minimum() -> None:
    answer = optimizer_and_schedule(_model(), heads=HEADS, config=TrainConfig(learning_rate=1e-3, warmup_ratio=0.1),
                                    total_steps=60)
    optimizer, scheduler = answer["optimizer"], answer["lr_scheduler"]["scheduler"]
    rates = []
    for _ in range(12):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:11] == pytest.approx([1e-3 * i / 10 for i in range(10)] + [1e-3])  # 10 steps up, then the peak


def test_adamw_is_fused_where_torch_has_the_kernel_and_updates_as_the_loop_does() -> None:
    torch.manual_seed(0)
    weights = [torch.nn.Parameter(torch.randn(7, 5)), torch.nn.Parameter(torch.randn(5))]
    looped = [torch.nn.Parameter(w.detach().clone()) for w in weights]
    fused = adamw([{"params": weights, "weight_decay": 0.01}], lr=1e-2)
    plain = torch.optim.AdamW([{"params": looped, "weight_decay": 0.01}], lr=1e-2)
    assert fused.defaults["fused"] and not plain.defaults["fused"]
    for _ in range(5):
        grads = [torch.randn_like(w) for w in weights]
        for group, optimizer in ((weights, fused), (looped, plain)):
            for w, g in zip(group, grads):
                w.grad = g.clone()
            optimizer.step()
    for w, v in zip(weights, looped):
        assert torch.allclose(w, v, atol=1e-6)
    # mixed precision: Lightning refuses to clip the gradients of an optimizer that could unscale them itself
    assert not adamw(weights, lr=1e-3, precision="bf16-mixed").defaults["fused"]
    assert not adamw(weights, lr=1e-3, precision="16-mixed").defaults["fused"]
    assert not adamw([torch.nn.Parameter(torch.randn(3, dtype=torch.float64))], lr=1e-3).defaults["fused"]
