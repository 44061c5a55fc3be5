"""The soak benchmark (benchmarks/soak.py) as a test: sustained concurrent load on a real ``texttune serve``.

5,000 requests, each with its own input, from 64 concurrent clients on loopback,
against a tiny random BERT masked-LM (it runs each input on its own, so every answer
must equal the reference of its own input exactly). Zero errors, zero mismatches,
server RSS growth after 500 warm-up answers under 32 MiB, and a clean SIGTERM exit.
The pass/fail logic is checked on its own first, so the soak can be seen to fail.
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


def test_soak_5000_requests_at_64_concurrent_clients(soak: ModuleType, tiny_model_dir: Callable[[str], Path],
                                                     tmp_path: Path) -> None:
    from texttune.api import MaskedLM

    model_dir = MaskedLM(backbone=str(tiny_model_dir("bert"))).save(tmp_path / "masked-lm")
    result = soak.main(["--model-dir", str(model_dir), "--requests", "5000", "--concurrency", "64", "--warmup", "500",
                        "--reference-batch", "64", "--log", str(tmp_path / "server.log"), "--out", str(tmp_path / "soak.json")])
    assert result["problems"] == [], result
    assert result["requests"] == 5000 and result["errors"] == 0 and result["mismatches"] == 0
    assert json.loads((tmp_path / "soak.json").read_text())["passed"] is True
