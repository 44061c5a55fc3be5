"""Where the recipe runs the model outside Lightning's loop, the memory it records, and FSDP's block policy.

No GPU needed: CUDA's counters are replaced by fakes that count their calls, and a
"model on the GPU" is a model whose reported device the test chooses.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from texttune.engine import placement
from texttune.engine.distributed import TransformerBlocks, lightning_strategy

CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")


class SpyModel(torch.nn.Module):
    """A linear layer whose ``to`` calls are recorded (and not carried out: there is no GPU here)."""

    def __init__(self, attention: str = "sdpa") -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 2)
        self.config = SimpleNamespace(_attn_implementation=attention)
        self.moves: list[torch.device] = []

    def to(self, device: Any, *args: Any, **kwargs: Any) -> SpyModel:  # type: ignore[override]
        self.moves.append(torch.device(device))
        return self


def fake_trainer(root: torch.device = CPU) -> Any:
    entered: list[str] = []

    @contextlib.contextmanager
    def context(name: str) -> Any:
        entered.append(name)
        yield

    plugin = SimpleNamespace(forward_context=lambda: context("forward"), train_step_context=lambda: context("train"))
    return SimpleNamespace(strategy=SimpleNamespace(root_device=root), precision_plugin=plugin, entered=entered)


def test_the_training_device_is_the_strategys_root_device() -> None:
    assert placement.training_device(fake_trainer(CUDA)) == CUDA
    import lightning.pytorch as pl

    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert placement.training_device(trainer) == torch.device("cpu")


def test_a_model_already_there_is_not_moved() -> None:
    model = SpyModel()
    placement.move_model(model, torch.device("cpu"), purpose="test")
    assert model.moves == []
    placement.move_model(model, CUDA, purpose="test")
    assert model.moves == [CUDA]


@pytest.mark.parametrize("strategy, places", [("auto", False), ("ddp", False), ("ddp_find_unused_parameters_true", False),
                                              ("fsdp", True), ("fsdp_cpu_offload", True), ("deepspeed_stage_2", True),
                                              ("deepspeed_stage_3_offload", True)])
def test_fsdp_and_deepspeed_get_the_model_back_on_the_cpu(strategy: str, places: bool,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert placement.strategy_places_weights(strategy) is places
    model, resets = SpyModel(), []
    monkeypatch.setattr(placement, "model_device", lambda m: CUDA)  # as after the baselines on a GPU
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: resets.append(device))
    placement.hand_over(model, strategy=strategy, device=CUDA)
    assert model.moves == ([torch.device("cpu")] if places else [])
    assert resets == [CUDA]  # training's GPU peak starts here
    placement.hand_over(SpyModel(), strategy=strategy, device=torch.device("cpu"))
    assert resets == [CUDA]  # no CUDA, no counter


def test_flash_attention_evaluates_under_the_precision_plugins_autocast() -> None:
    trainer = fake_trainer()
    with placement.evaluation_context(SpyModel("sdpa"), trainer):
        pass
    assert trainer.entered == []  # evaluations stay as they were (float32 on CPU)
    with placement.evaluation_context(SpyModel("flash_attention_2"), trainer):
        pass
    assert trainer.entered == ["forward"]


def test_the_batch_search_loss_runs_as_a_training_step() -> None:
    trainer, seen = fake_trainer(), []
    loss = placement.as_in_training(lambda model, batch: seen.append(list(trainer.entered)) or 1.0, trainer)
    assert loss(None, {}) == 1.0 and seen == [["train"]]


def test_memory_peaks_without_cuda() -> None:
    peaks = placement.memory_peaks(torch.device("cpu"))
    assert peaks["peak_rss_bytes"] > 0 and peaks["peak_gpu_bytes"] is None and peaks["peak_gpu_reserved_bytes"] is None
    assert peaks["device"] == "cpu"


def test_memory_peaks_on_cuda_read_torchs_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 3 * 2**30)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 4 * 2**30)
    peaks = placement.memory_peaks(CUDA)
    assert (peaks["peak_gpu_bytes"], peaks["peak_gpu_reserved_bytes"], peaks["device"]) == (3 * 2**30, 4 * 2**30, "cuda:0")


def test_a_loaded_model_switches_to_the_runs_attention() -> None:
    import transformers

    from texttune.backbones.attention import AttentionChoice

    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=50))
    placement.apply_attention(model, AttentionChoice("eager", "test"))
    assert model.config._attn_implementation == "eager"
    placement.apply_attention(model, AttentionChoice(None, "transformers decides"))
    assert model.config._attn_implementation == "eager"
    assert placement.attention_record(model, AttentionChoice("eager", "why")) == {
        "implementation": "eager", "requested": "eager", "reason": "why"}


def test_fsdp_wraps_the_blocks_of_the_model_named_after_the_trainer_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers
    from torch.distributed.fsdp.wrap import _recursive_wrap

    blocks = TransformerBlocks()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # Lightning's FSDP is refused without CUDA
    strategy = lightning_strategy("fsdp", blocks)
    assert strategy.kwargs["auto_wrap_policy"] is blocks and lightning_strategy("ddp", blocks) == "ddp"
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, vocab_size=50))

    class Wrapped(torch.nn.Module):
        def __init__(self, module: torch.nn.Module, **kwargs: Any) -> None:
            super().__init__()
            self.inner = module

    def wrapped_names(policy: Any) -> list[str]:
        copy = transformers.LlamaForCausalLM(model.config)
        _recursive_wrap(copy, auto_wrap_policy=policy, wrapper_cls=Wrapped, ignored_modules=set(), ignored_params=set(),
                        only_wrap_children=True)
        return [type(m.inner).__name__ for m in copy.modules() if isinstance(m, Wrapped)]

    assert wrapped_names(blocks) == []  # before the model is known: one unit, as without a policy
    blocks.use(model)
    assert wrapped_names(blocks) == ["LlamaDecoderLayer", "LlamaDecoderLayer"]
