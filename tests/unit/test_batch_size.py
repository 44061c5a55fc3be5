"""The ``--batch-size auto`` search: what it tries, where it stops, and what it leaves untouched."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from texttune.engine import batch_probe
from texttune.engine import batch_size as bs
from texttune.engine.batch_size import find_batch_size, longest_example, split_batch
from texttune.errors import ConfigError
from texttune.tasks.base import pad_batch

CPU = torch.device("cpu")


class TinyLM(torch.nn.Module):
    """Embedding -> dropout -> linear; enough to have weights, gradients and RNG use."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(50, 16)
        self.drop = torch.nn.Dropout(0.1)
        self.head = torch.nn.Linear(16, 50)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.drop(self.embed(input_ids)))  # (B, T, V)
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)


def tiny_features(lengths: list[int]) -> list[dict[str, Any]]:
    return [{"input_ids": [(i + j) % 50 for j in range(n)], "labels": [(i + j) % 50 for j in range(n)]}
            for i, n in enumerate(lengths)]


def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
    return pad_batch(features, pad_token_id=0)


def plain_loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    return model(batch["input_ids"], batch["labels"])


def search(loss: Any = plain_loss, *, features: list[dict] | None = None, limit: int = 64,
           **kwargs: Any) -> bs.BatchSizeSearch:
    torch.manual_seed(0)
    return find_batch_size(model=TinyLM(), loss=loss, features=features or tiny_features([3, 9, 5]),
                           collate=collate, device=CPU, limit=limit, **kwargs)


def oom_above(n: int) -> Any:
    def loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
        if batch["input_ids"].shape[0] > n:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return plain_loss(model, batch)
    return loss


def test_out_of_memory_keeps_the_last_size_that_fit(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="texttune"):
        result = search(oom_above(8), limit=64)
    assert result.chosen == 8
    assert [t.batch_size for t in result.trials] == [1, 2, 4, 8, 16]
    assert [t.fits for t in result.trials] == [True, True, True, True, False]
    assert "16" in result.stopped_because and "8" in result.stopped_because
    assert "out of memory" in result.trials[-1].error
    assert any(r.getMessage().startswith("batch 4: fits (") for r in caplog.records)
    assert any("batch 16: out of memory" in r.getMessage() for r in caplog.records)


def test_cuda_oom_error_class_and_cpu_allocator_message_are_caught() -> None:
    def loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
        if batch["input_ids"].shape[0] == 4:
            raise torch.OutOfMemoryError("CUDA error")
        if batch["input_ids"].shape[0] > 4:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        return plain_loss(model, batch)

    result = search(loss)
    assert result.chosen == 2 and result.stopped_because == "out of memory at 4 (largest that fit: 2)"
    with pytest.raises(ConfigError, match="DefaultCPUAllocator"):
        search(loss, start=8)


def test_limit_reached_gives_the_largest_power_of_two_within_it() -> None:
    result = search(limit=13, limit_reason="training rows")
    assert result.chosen == 8
    assert [t.batch_size for t in result.trials] == [1, 2, 4, 8]
    assert result.stopped_because == "reached the limit 13 (training rows)"
    assert search(limit=16).chosen == 16
    assert search(limit=1).chosen == 1
    assert search(limit=40, start=3).chosen == 24  # 3, 6, 12, 24


def test_start_that_does_not_fit_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="even a batch of 2 .*smaller backbone"):
        search(oom_above(1), start=2)


def test_other_errors_are_not_mistaken_for_out_of_memory() -> None:
    model = TinyLM().eval()
    rng = torch.get_rng_state()

    def loss(m: torch.nn.Module, batch: dict) -> torch.Tensor:
        plain_loss(m, batch).backward()  # gradients and RNG draws before the failure
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        find_batch_size(model=model, loss=loss, features=tiny_features([3]), collate=collate, device=CPU, limit=4)
    assert all(p.grad is None for p in model.parameters())  # restored on the way out too
    assert not model.training and torch.equal(torch.get_rng_state(), rng)


def test_memory_budget_stops_before_a_doubling_that_would_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    if not batch_probe.reset_peak_rss():
        pytest.skip("needs a resettable peak RSS (/proc/self/clear_refs)")
    row = 16 * 2**20

    def hungry(model: torch.nn.Module, batch: dict) -> torch.Tensor:
        held = torch.ones(batch["input_ids"].shape[0] * row // 4)  # 16 MiB per row, written so it is resident
        return plain_loss(model, batch) + held[0] * 0

    monkeypatch.setattr(batch_probe, "mem_available_bytes", lambda: 100 * 2**20)  # 80 MiB budget at 0.8
    result = search(hungry, limit=64)
    assert 2 <= result.chosen < 64  # stopped by the budget after extrapolating from two trials
    assert result.stopped_because.startswith(f"memory budget: {2 * result.chosen} would need ~")
    assert all(t.fits for t in result.trials)
    growth = [t.peak_bytes for t in result.trials]
    assert growth[-1] >= result.chosen * row * 0.9  # the measured peak saw the allocation


def test_budget_extrapolates_linearly_from_the_last_two_trials() -> None:
    mib = 2**20

    class Fake(batch_probe.Memory):
        held = 0

        def growth(self, peak: int | None) -> int | None:
            return peak

        def room(self) -> tuple[int, int] | None:
            return self.held, 1000 * mib  # budget at 0.8: held + 800 MiB

    memory = Fake()
    trials = [batch_probe.Trial(1, True, 0.1, 300 * mib, None), batch_probe.Trial(2, True, 0.1, 400 * mib, None)]
    assert bs._over_budget(memory, trials, 4, 0.8) == ""  # 400 + 100 * 2 = 600 <= 800
    trials.append(batch_probe.Trial(4, True, 0.1, 600 * mib, None))
    assert bs._over_budget(memory, trials, 8, 0.8) == "memory budget: 8 would need ~1000 MiB of 800 MiB available"
    # one trial: what it freed again scales with the batch, what it kept does not
    assert bs._over_budget(memory, trials[:1], 4, 0.8).startswith("memory budget: 4 ")  # 0 + 300 * 4 > 800
    memory.held = 200 * mib
    assert bs._over_budget(memory, trials[:1], 4, 0.8) == ""  # 200 + 100 * 4 = 600 <= 1000
    assert bs._over_budget(memory, trials[:1], 16, 0.8).startswith("memory budget: 16 would need ~1.76 GiB of")
    assert bs._over_budget(batch_probe.Memory(), trials, 8, 0.8) == ""  # nothing known: no budget
    assert bs._over_budget(memory, [batch_probe.Trial(1, True, 0.1, None, None)], 2, 0.8) == ""  # no peak measured


def test_search_leaves_a_real_t5_untouched(tiny_model_dir: Any) -> None:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    path = tiny_model_dir("t5")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path)
    model.eval()
    model.encoder.train()  # a mixed state must come back as it was
    texts = [("summarize: the cat sat on the mat", "a cat"),
             ("summarize: a long sentence about the weather in the north of the country today", "weather"),
             ("summarize: short", "a somewhat longer target sentence than the others here")]
    features = [{"input_ids": tokenizer(s).input_ids, "labels": tokenizer(t).input_ids} for s, t in texts]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = {name: m.training for name, m in model.named_modules()}
    torch.manual_seed(123)
    rng = torch.get_rng_state()

    def loss(m: torch.nn.Module, batch: dict) -> torch.Tensor:
        return m(**batch).loss

    result = find_batch_size(model=model, loss=loss, features=features,
                             collate=lambda f: pad_batch(f, pad_token_id=tokenizer.pad_token_id),
                             device=CPU, limit=4)
    assert result.chosen == 4 and all(t.fits and t.seconds > 0 for t in result.trials)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert {name: m.training for name, m in model.named_modules()} == modes
    longest_input = max(len(f["input_ids"]) for f in features)
    longest_target = max(len(f["labels"]) for f in features)
    assert result.longest_tokens == longest_input + longest_target
    assert json.loads(json.dumps(result.to_json()))["chosen"] == 4


def test_every_trial_batch_is_the_worst_case_shape() -> None:
    # seq2seq-like: the longest input (row 1) and the longest target (row 2) are different rows
    features = [{"input_ids": [1] * 4, "labels": [2] * 3}, {"input_ids": [1] * 11, "labels": [2] * 2},
                {"input_ids": [1] * 5, "labels": [2] * 7}]
    seen: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def recording(model: torch.nn.Module, batch: dict) -> torch.Tensor:
        seen.append((tuple(batch["input_ids"].shape), tuple(batch["labels"].shape)))
        return model.head(model.embed(batch["input_ids"])).sum() * 0

    result = search(recording, features=features, limit=4)
    assert seen == [((1, 11), (1, 7)), ((2, 11), (2, 7)), ((4, 11), (4, 7))]
    assert result.longest_tokens == 18


def test_aligned_labels_pick_the_longest_input_row() -> None:
    example, tokens = longest_example(tiny_features([3, 9, 5]))
    assert tokens == 9 and len(example["labels"]) == 9
    classes = [{"input_ids": [1] * n, "labels": n % 2} for n in (4, 8, 2)]
    example, tokens = longest_example(classes)
    assert tokens == 8 and example["labels"] == 0


def test_a_datasets_dataset_is_measured_in_arrow() -> None:
    from datasets import Dataset

    rows = {"input_ids": [[1] * 4, [1] * 11, [1] * 5], "labels": [[2] * 3, [2] * 2, [2] * 7]}
    example, tokens = longest_example(Dataset.from_dict(rows))
    assert tokens == 18 and len(example["input_ids"]) == 11 and len(example["labels"]) == 7
    classes = Dataset.from_dict({"input_ids": [[1] * 4, [1] * 9], "labels": [0, 1]})
    example, tokens = longest_example(classes)
    assert tokens == 9 and example["labels"] == 1


@pytest.mark.parametrize(("found", "effective", "accumulate", "expected"), [
    (24, 64, 1, (16, 4)),
    (32, 48, 1, (24, 2)),
    (16, 10, 1, (10, 1)),
    (1, 7, 1, (1, 7)),
    (12, None, 3, (12, 3)),
])
def test_split_batch(found: int, effective: int | None, accumulate: int, expected: tuple[int, int]) -> None:
    batch, steps = split_batch(found, effective=effective, accumulate=accumulate)
    assert (batch, steps) == expected
    if effective is not None:
        assert batch * steps == effective and batch <= found


def test_resolve_records_the_choice_and_other_ranks_and_resumes_read_it(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from texttune.runs import RunDir
    from texttune.tasks.registry import run_config

    config = run_config("summarization", {"batch_size": "auto", "effective_batch_size": 8, "accelerator": "cpu"})
    run, features = RunDir(tmp_path / "run"), tiny_features([3, 9, 5, 4])
    task = SimpleNamespace(loss=plain_loss, collate=collate)
    assert bs.resolve_batch_size(run_config("summarization", {}), task=task, model=TinyLM(), features=features,
                                 run=run, resuming=False, device=CPU) == run_config("summarization", {})  # a number: kept
    chosen = bs.resolve_batch_size(config, task=task, model=TinyLM(), features=features, run=run, resuming=False,
                                   device=CPU)
    assert (chosen.train.batch_size, chosen.train.accumulate_grad_batches) == (4, 2)  # 4 rows: the limit
    recorded = json.loads(run.batch_search.read_text())
    assert (recorded["chosen"], recorded["batch_size"], recorded["accumulate"], recorded["device"]) == (4, 4, 2, "cpu")
    recorded.update(batch_size=2, accumulate=4)  # what rank 0 chose: the other ranks and a resumed run take it
    run.batch_search.write_text(json.dumps(recorded))
    for kwargs in ({"resuming": False, "primary": False}, {"resuming": True}):
        taken = bs.resolve_batch_size(config, task=task, model=TinyLM(), features=features, run=run, device=CPU, **kwargs)
        assert (taken.train.batch_size, taken.train.accumulate_grad_batches) == (2, 4)


def test_the_cuda_path_resets_the_peak_and_empties_the_cache_around_every_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.cuda's counters replaced by fakes (no GPU here): each trial starts from a fresh peak, and what it
    allocated goes back to the driver before the next one, also after an out-of-memory error."""
    calls: list[str] = []
    fake = {"synchronize": lambda device=None: calls.append("synchronize"),
            "memory_allocated": lambda device=None: 100,
            "memory_reserved": lambda device=None: 200,
            "max_memory_allocated": lambda device=None: 100 + 10 * len(calls),
            "mem_get_info": lambda device=None: (2**40, 2**41),
            "reset_peak_memory_stats": lambda device=None: calls.append("reset"),
            "empty_cache": lambda: calls.append("empty_cache")}
    for name, function in fake.items():
        monkeypatch.setattr(torch.cuda, name, function)
    memory = batch_probe.memory_for(torch.device("cuda"))
    assert type(memory).__name__ == "_CudaMemory"
    monkeypatch.setattr(bs, "memory_for", lambda device: memory)  # the tensors stay on the CPU, the counters are CUDA's
    result = search(oom_above(4), limit=64)
    assert [t.batch_size for t in result.trials] == [1, 2, 4, 8] and result.chosen == 4
    assert all(t.peak_bytes is not None and t.peak_bytes > 100 for t in result.trials)
    trials = [c for c in calls if c != "synchronize"]
    assert trials == ["reset", "empty_cache"] * 4  # per trial: peak reset before, cache emptied after
    assert calls.count("synchronize") == 1 + 3  # at the start, and after each step that fitted


def test_a_cublas_allocation_failure_counts_as_out_of_memory() -> None:
    def loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
        if batch["input_ids"].shape[0] > 2:
            raise RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")
        return plain_loss(model, batch)

    assert search(loss).chosen == 2
