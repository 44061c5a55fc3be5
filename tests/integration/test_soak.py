"""The soak benchmark (benchmarks/soak.py) as a test: sustained concurrent load on a real ``texttune serve``.

1,000 requests, each with its own input, from 64 concurrent clients on loopback,
against a tiny random BERT masked-LM (it runs each input on its own, so every answer
must equal the reference of its own input exactly): zero errors, zero mismatches,
server RSS growth after 200 warm-up answers under 32 MiB, a clean SIGTERM exit.
The full 5,000-request soak is in tests/slow/test_soak_slow.py (about 2.5 minutes on
2 busy cores). The pass/fail logic is checked on its own first, so the soak can be
seen to fail.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("texttune_benchmark_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_the_verdict_fails_on_errors_mismatches_growth_and_exit_code(soak: ModuleType) -> None:
    args = soak.parse_args(["--tiny", "--max-rss-growth-mb", "10"])

    def verdict(**changes: object) -> list[str]:
        run = soak.Soak(requests=4, concurrency=2, seconds=1.0, latencies_ms=[1.0, 2.0, 3.0, 4.0],
                        rss_mib={"start": 500.0, "after_warmup": 510.0, "end": 515.0, "peak": 516.0})
        returncode = changes.pop("returncode", 0)
        for key, value in changes.items():
            setattr(run, key, value)
        result = soak.summary(run, args=args, model_dir=Path("m"), returncode=returncode, tracebacks=0,
                              reference_seconds=0.5)
        assert result["passed"] == (not result["problems"])
        return result["problems"]

    assert verdict() == []
    assert verdict(errors={"503: queue full": 2}) == ["2 x 503: queue full"]
    assert "were not their request's" in verdict(mismatches=[3])[0]
    assert "RSS grew 11.0 MiB" in verdict(rss_mib={"start": 500.0, "after_warmup": 510.0, "end": 521.0, "peak": 521.0})[0]
    assert "exited with 1" in verdict(returncode=1)[0]


def run_soak(soak: ModuleType, model_dir: Path, out: Path, *, requests: int, warmup: int) -> dict[str, object]:
    """The soak against ``model_dir`` at 64 concurrent clients; asserts it passed and returns its results."""
    result = soak.main(["--model-dir", str(model_dir), "--requests", str(requests), "--concurrency", "64",
                        "--warmup", str(warmup), "--reference-batch", "64", "--log", str(out / "server.log"),
                        "--out", str(out / "soak.json")])
    assert result["problems"] == [], result
    assert result["requests"] == requests and result["errors"] == 0 and result["mismatches"] == 0
    assert json.loads((out / "soak.json").read_text())["passed"] is True
    return result


@pytest.fixture(scope="session")
def masked_lm_dir(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from texttune.api import MaskedLM

    return MaskedLM(backbone=str(tiny_model_dir("bert"))).save(tmp_path_factory.mktemp("soak") / "masked-lm")


def test_soak_1000_requests_at_64_concurrent_clients(soak: ModuleType, masked_lm_dir: Path, tmp_path: Path) -> None:
    run_soak(soak, masked_lm_dir, tmp_path, requests=1000, warmup=200)
