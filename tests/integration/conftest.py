"""Fixtures for the integration tests: real training runs on the tiny test models.

Why one torch thread: the tiny models do matrix products of a few thousand
numbers, which gain nothing from intra-op threads; on a 2-core machine that is
busy with anything else, OpenMP's thread hand-offs then cost ~15 ms per product
and a two-step training run takes 30 s instead of one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"

#: Options that keep every training run to a couple of seconds on the tiny models.
FAST: dict[str, object] = {"max_steps": 2, "batch_size": 4, "max_eval_samples": 6}


@pytest.fixture(scope="session", autouse=True)
def single_torch_thread() -> Iterator[None]:
    """Run torch with one intra-op thread for the session (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The sample data files (see tests/data/README.md)."""
    return DATA


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``texttune`` in-process: ``cli("train", ...) -> (exit code, stdout, stderr)``."""
    from texttune.cli.main import main

    def run(*argv: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run
