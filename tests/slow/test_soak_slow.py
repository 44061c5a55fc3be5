"""Slow tier: the full soak, 5,000 requests (each its own input) from 64 concurrent clients on loopback.

Same checks as tests/integration/test_soak.py (zero errors, every answer its own
request's, server RSS growth after 500 warm-up answers under 32 MiB, clean SIGTERM
exit), five times longer: about 2.5 minutes on 2 busy cores.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"

pytestmark = pytest.mark.slow


def test_soak_5000_requests_at_64_concurrent_clients(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    from texttune.api import MaskedLM

    spec = importlib.util.spec_from_file_location("texttune_benchmark_soak", SOAK)
    assert spec is not None and spec.loader is not None
    soak = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = soak  # dataclasses look their module up while the class is built
    spec.loader.exec_module(soak)
    model_dir = MaskedLM(backbone=str(tiny_model_dir("bert"))).save(tmp_path / "masked-lm")
    result = soak.main(["--model-dir", str(model_dir), "--requests", "5000", "--concurrency", "64", "--warmup", "500",
                        "--reference-batch", "64", "--log", str(tmp_path / "server.log"), "--out", str(tmp_path / "soak.json")])
    print("\nsoak:", json.dumps({k: v for k, v in result.items() if k != "command"}))
    assert result["problems"] == [], result
    assert result["requests"] == 5000 and result["errors"] == 0 and result["mismatches"] == 0
