"""benchmarks/gpu_check.py, the GPU check: its refusal without a GPU, its table, and a --smoke run of its rows.

CI has no GPU, so the measurement itself cannot run here; what can is checked: the script refuses
with exit 2 and one line where no GPU is visible, and ``--smoke`` runs real rows (training with
bf16-mixed settings, zero-shot and final evaluation, bf16 predict) with tiny random models on the CPU,
through the same code the GPU side uses.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def no_gpu_env() -> dict[str, str]:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(scope="module")
def gpu_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("texttune_benchmark_gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_refuses_with_exit_2_and_one_line_without_a_gpu() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=no_gpu_env(), timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU is visible" in lines[0] and "--smoke" in lines[0]
    assert done.stdout == ""


def test_plan_runs_each_row_on_both_sides_and_ddp_only_with_two_gpus(gpu_check: ModuleType) -> None:
    one = gpu_check.plan(smoke=False, gpus=1)
    assert ("smollm2-lora", "gpu") in one and ("smollm2-lora", "cpu") in one and ("predict-ct2", "cpu") in one
    assert not any(row.endswith("-ddp") for row, _ in one)
    assert ("smollm2-full-auto-batch", "gpu") in one and ("smollm2-full-auto-batch", "cpu") not in one
    assert gpu_check.plan(smoke=False, gpus=2)[-1] == ("smollm2-lora-ddp", "gpu")
    assert gpu_check.plan(smoke=False, gpus=1, only=["minilm-ner"]) == [("minilm-ner", "gpu"), ("minilm-ner", "cpu")]
    with pytest.raises(SystemExit, match="unknown row"):
        gpu_check.plan(smoke=False, gpus=1, only=["nope"])


def test_table_gives_the_gpu_cpu_ratio_and_names_failed_rows(gpu_check: ModuleType) -> None:
    base = {"ok": True, "steps": 40, "batch_size": 8, "val_rows": 64, "zero_shot_s": 1.0, "final_eval_s": 2.0}
    results = [{"row": "smollm2-full", "side": "gpu", **base, "examples_per_s": 90.0,
                "memory": {"peak_gpu_bytes": 3 * 2**30, "peak_rss_bytes": 2**31}},
               {"row": "smollm2-full", "side": "cpu", **base, "examples_per_s": 3.0, "memory": {"peak_rss_bytes": 2**31}},
               {"row": "predict-ct2", "side": "gpu", "ok": False, "error": "ImportError: no ctranslate2"}]
    lines = gpu_check.table(results).splitlines()
    assert "| smollm2-full | gpu | 90.0 | 30.0x |" in lines[2] and "| 3,072 |" in lines[2]
    assert "| smollm2-full | cpu | 3.0 |  |" in lines[3]
    assert "FAILED: ImportError: no ctranslate2" in lines[4]


@pytest.mark.slow
def test_smoke_runs_training_and_bf16_predict_rows(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    command = [sys.executable, str(SCRIPT), "--smoke", "--only", "minilm-ner,predict-bfloat16", "--work", str(tmp_path / "work"),
               "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=no_gpu_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {(r["row"], r["side"]): r for r in report["rows"]}
    assert set(rows) == {("minilm-ner", "gpu"), ("minilm-ner", "cpu"), ("predict-bfloat16", "gpu"), ("predict-bfloat16", "cpu")}
    train = rows["minilm-ner", "gpu"]
    # No evaluation inside the loop, so the final evaluation really ran (after Lightning's teardown).
    assert train["final_eval_reused"] is False and train["final_eval_s"] > 0 and train["zero_shot_s"] > 0
    assert train["examples_per_s"] > 0 and train["memory"]["peak_rss_bytes"] > 0
    assert rows["predict-bfloat16", "cpu"]["type"] == "bfloat16" and rows["predict-bfloat16", "cpu"]["examples_per_s"] > 0
    assert "| minilm-ner | gpu |" in done.stdout and "not a measurement" in done.stdout
