"""Fixtures of the slow tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on a 2-core machine shared with other jobs, two threads hand work back and forth and a
    step runs 2-3x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
