"""Length-grouped, resumable training order, and the on-disk feature cache."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import datasets
import pytest

from texttune.engine.features import cache_key, encode_cached
from texttune.engine.loader import MEGA_BATCHES, EpochShuffleSampler, ResumableLoader, feature_lengths


def _lengths(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [max(1, int(rng.lognormvariate(4, 0.8))) for _ in range(n)]  # skewed, like real text


def _batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def _padded_tokens(order: list[int], lengths: list[int], size: int) -> int:
    return sum(max(lengths[i] for i in b) * len(b) for b in _batches(order, size))


@pytest.mark.parametrize("n,size", [(1000, 8), (997, 16), (30, 4), (5, 8)])
def test_grouped_order_is_a_permutation_with_full_batches_first(n: int, size: int) -> None:
    lengths = _lengths(n)
    order = EpochShuffleSampler(n, seed=3, batch_size=size, lengths=lengths).epoch_order()
    assert sorted(order) == list(range(n))
    batches = _batches(order, size)
    assert all(len(b) == size for b in batches[:-1])  # only the last batch may be short


def test_grouping_cuts_padding_and_puts_the_longest_batch_first() -> None:
    n, size = 2000, 16
    lengths = _lengths(n)
    grouped = EpochShuffleSampler(n, seed=1, batch_size=size, lengths=lengths).epoch_order()
    plain = EpochShuffleSampler(n, seed=1, batch_size=size).epoch_order()
    real = sum(lengths)
    assert _padded_tokens(grouped, lengths, size) < real * 1.15  # < 15% padding
    assert _padded_tokens(plain, lengths, size) > real * 1.5  # random batches pad far more
    assert max(lengths) in [lengths[i] for i in grouped[:size]]


def test_grouped_batches_still_come_in_random_length_order() -> None:
    n, size = 4000, 8
    lengths = _lengths(n)
    order = EpochShuffleSampler(n, seed=5, batch_size=size, lengths=lengths).epoch_order()
    widths = [max(lengths[i] for i in b) for b in _batches(order, size)][1:]
    # Not sorted overall: consecutive batches go up about as often as down.
    ups = sum(b > a for a, b in zip(widths, widths[1:]))
    assert 0.35 < ups / (len(widths) - 1) < 0.65
    # Grouping only happens within mega-batches: an example's batch comes from its own mega-batch.
    assert MEGA_BATCHES * size < n


def test_order_is_a_function_of_seed_and_epoch() -> None:
    lengths = _lengths(300)
    a = EpochShuffleSampler(300, seed=9, batch_size=8, lengths=lengths)
    b = EpochShuffleSampler(300, seed=9, batch_size=8, lengths=lengths)
    assert a.epoch_order() == b.epoch_order()
    b.set_epoch(1)
    assert a.epoch_order() != b.epoch_order()
    assert EpochShuffleSampler(300, seed=10, batch_size=8, lengths=lengths).epoch_order() != a.epoch_order()


def test_grouped_loader_resumes_with_the_remaining_batches() -> None:
    data = list(range(100))
    lengths = _lengths(100, seed=2)
    full = list(ResumableLoader(data, batch_size=6, seed=4, collate_fn=list, lengths=lengths))
    resumed = ResumableLoader(data, batch_size=6, seed=4, collate_fn=list, lengths=lengths)
    resumed.load_state_dict({"epoch": 0, "batches_done": 5})
    resumed.order.set_epoch(0)
    assert list(resumed) == full[5:]


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="3 lengths for 4 examples"):
        EpochShuffleSampler(4, seed=0, batch_size=2, lengths=[1, 2, 3])


def test_feature_lengths_count_inputs_and_sequence_labels() -> None:
    seq = datasets.Dataset.from_list([{"input_ids": [1] * i, "labels": [2] * (i % 3)} for i in range(1, 6)])
    assert feature_lengths(seq) == [2, 4, 3, 5, 7]
    assert feature_lengths(seq.select([4, 0])) == [7, 2]
    spans = datasets.Dataset.from_list([{"input_ids": [1] * i, "labels": 0} for i in range(1, 4)])
    assert feature_lengths(spans) == [1, 2, 3]  # integer labels (QA positions) add nothing


class _CountingTask:
    name = "demo"

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.calls = 0

    def metadata(self) -> dict[str, Any]:
        return {"prefix": self.prefix}

    def encode(self, rows: Any) -> tuple[Any, dict[str, Any]]:
        self.calls += 1
        features = rows.map(lambda r: {"input_ids": [len(self.prefix + r["text"])]}, remove_columns=["text"])
        return features, {"rows": len(features)}


class _Tok:
    name_or_path = "tok"

    def __len__(self) -> int:
        return 10


def test_feature_cache_tokenizes_once_and_keys_on_what_matters(tmp_path: Path) -> None:
    rows = datasets.Dataset.from_list([{"text": "ab"}, {"text": "abcd"}])
    task = _CountingTask()
    first, stats = encode_cached(task, rows, tokenizer=_Tok(), cache_dir=tmp_path, split="train")
    again, stats_again = encode_cached(task, rows, tokenizer=_Tok(), cache_dir=tmp_path, split="train")
    assert task.calls == 1 and first["input_ids"] == again["input_ids"] == [[2], [4]] and stats == stats_again
    assert cache_key(_CountingTask("x: "), rows, _Tok()) != cache_key(task, rows, _Tok())
    other_rows = datasets.Dataset.from_list([{"text": "ab"}, {"text": "abce"}])
    assert cache_key(task, other_rows, _Tok()) != cache_key(task, rows, _Tok())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp directories left


def test_a_damaged_feature_cache_is_rebuilt(tmp_path: Path) -> None:
    rows = datasets.Dataset.from_list([{"text": "ab"}])
    task = _CountingTask()
    encode_cached(task, rows, tokenizer=_Tok(), cache_dir=tmp_path, split="train")
    cached = next(tmp_path.iterdir())
    for arrow in cached.glob("*.arrow"):
        arrow.write_bytes(b"garbage")
    features, _ = encode_cached(task, rows, tokenizer=_Tok(), cache_dir=tmp_path, split="train")
    assert task.calls == 2 and features["input_ids"] == [[2]]
