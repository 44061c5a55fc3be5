"""Sharding across processes: the same global batches as one process, disjoint evaluation shards, exact resume."""

from __future__ import annotations

from typing import Any

import pytest

from texttune.engine.distributed import ShardSampler, shard_indices
from texttune.engine.loader import ResumableLoader
from texttune.engine.streaming import StreamLoader


def _batches(loader: Any) -> list[list[int]]:
    return [list(b) for b in loader]


@pytest.mark.parametrize("size, lengths", [(40, None), (37, "varied")])
def test_two_ranks_together_see_one_process_with_the_global_batch(size: int, lengths: str | None) -> None:
    lens = [(i * 7919) % 23 + 1 for i in range(size)] if lengths else None
    one = _batches(ResumableLoader(list(range(size)), batch_size=4, seed=3, collate_fn=list, lengths=lens))
    ranks = [_batches(ResumableLoader(list(range(size)), batch_size=2, seed=3, collate_fn=list, lengths=lens,
                                      rank=r, world_size=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1])  # the same number of steps on every process
    merged = [a + b for a, b in zip(*ranks)]
    # size 37: the last global batch has 1 example, too few for 2 processes: dropped.
    assert merged == one[: len(merged)] and len(one) - len(merged) == (size % 4 == 1)
    assert not set(sum(ranks[0], [])) & set(sum(ranks[1], []))


def test_resume_with_two_ranks_continues_with_the_next_global_batch() -> None:
    full = _batches(ResumableLoader(list(range(40)), batch_size=2, seed=5, collate_fn=list, rank=1, world_size=2))
    resumed = ResumableLoader(list(range(40)), batch_size=2, seed=5, collate_fn=list, rank=1, world_size=2)
    resumed.load_state_dict({"epoch": 0, "batches_done": 3})
    assert _batches(resumed) == full[3:]


@pytest.mark.parametrize("n, world", [(5, 2), (7, 3), (2, 4), (8, 2)])
def test_evaluation_shards_restore_every_row_once_in_order(n: int, world: int) -> None:
    shards = [shard_indices(n, rank=r, world_size=world) for r in range(world)]
    assert len({len(indices) for indices, _ in shards}) == 1  # same number of generate calls everywhere
    assert [i for indices, real in shards for i in indices[:real]] == list(range(n))
    samplers = [list(ShardSampler(n, rank=r, world_size=world)) for r in range(world)]
    assert sorted(sum(samplers, [])) == list(range(n))  # disjoint, no padded duplicates
    padded = [list(ShardSampler(n, rank=r, world_size=world, pad=True)) for r in range(world)]
    assert len({len(p) for p in padded}) == 1
    order = list(reversed(range(n)))  # e.g. longest first
    ordered = [list(ShardSampler(n, rank=r, world_size=world, order=order)) for r in range(world)]
    assert sorted(sum(ordered, [])) == list(range(n))
    assert all(shard == sorted(shard, reverse=True) for shard in ordered)  # each process keeps the given order


def _stream(n: int) -> Any:
    from datasets import Dataset

    return Dataset.from_list([{"text": "x " * (1 + i % 9), "row": i} for i in range(n)]).to_iterable_dataset(num_shards=2)


def _encode(rows: Any) -> tuple[Any, dict[str, Any]]:
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [[r] * len(t.split()) for r, t in zip(rows["row"], rows["text"])]}), {}


def _stream_loader(**kwargs: Any) -> StreamLoader:
    return StreamLoader(_stream(50), encode=_encode, collate=lambda f: [x["input_ids"][0] for x in f], seed=1, buffer=8, **kwargs)


def _take(loader: StreamLoader, n: int) -> list[list[int]]:
    it = iter(loader)
    return [next(it) for _ in range(n)]


def test_stream_ranks_split_the_global_batches_and_resume_exactly(monkeypatch) -> None:
    monkeypatch.setattr("texttune.engine.streaming.BLOCK_BATCHES", 2)
    one = _take(_stream_loader(batch_size=4), 20)  # 50 rows: past one epoch (12 batches + a short one)
    ranks = [_take(_stream_loader(batch_size=2, rank=r, world_size=2), 20) for r in (0, 1)]
    assert [a + b for a, b in zip(*ranks)] == one
    first = _stream_loader(batch_size=2, rank=1, world_size=2)
    it = iter(first)
    seen = [next(it) for _ in range(7)]  # as Lightning does: 6 trained on, the 7th fetched ahead
    again = _stream_loader(batch_size=2, rank=1, world_size=2)
    again.load_state_dict(first.state_dict())
    assert seen[:6] + _take(again, 14) == ranks[1]


def test_large_files_are_memory_mapped_with_the_same_rows(tmp_path, monkeypatch) -> None:
    from texttune.data import load_table

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(f'{{"text": "row {i}", "summary": "s{i}"}}\n' for i in range(30)), encoding="utf-8")
    in_memory = load_table(data)
    monkeypatch.setenv("TEXTTUNE_LARGE_FILE_MB", "0")
    monkeypatch.setenv("TEXTTUNE_HOME", str(tmp_path / "home"))
    mapped = load_table(data)
    assert mapped.rows.cache_files and str(tmp_path / "home") in mapped.rows.cache_files[0]["filename"]
    assert mapped.rows.to_list() == in_memory.rows.to_list()


def test_stream_maps_columns_and_skips_rows_without_text(tmp_path) -> None:
    from texttune.data.streaming import open_stream
    from texttune.tasks.text2text import SummarizationTask

    for part in (0, 1):
        rows = [{"article": f"doc {part}-{i}" if i != 3 else "", "highlights": f"sum {i}"} for i in range(5)]
        (tmp_path / f"part-{part}.jsonl").write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
    stream = open_stream(str(tmp_path / "part-*.jsonl"), roles=SummarizationTask.roles, overrides={})
    got = list(stream.rows)
    assert len(stream.files) == 2 and len(got) == 8  # two files, one empty article each skipped
    assert set(got[0]) == {"input", "target"} and got[0]["input"] == "doc 0-0"
    assert stream.sample.rows.column_names == ["input", "target"]


@pytest.mark.parametrize("options, message", [
    ({"streaming": True}, "--streaming needs --max-steps"),
    ({"streaming": True, "max_steps": 5, "batch_size": "auto"}, "fixed --batch-size"),
    ({"strategy": "fsdp", "accelerator": "cpu"}, "needs --accelerator gpu"),
    ({"devices": 0}, "'devices' must be > 0"),
])
def test_scale_options_refuse_what_cannot_work(options: dict, message: str) -> None:
    from texttune.errors import ConfigError
    from texttune.tasks.registry import run_config

    with pytest.raises(ConfigError, match=message):
        run_config("summarization", options)
