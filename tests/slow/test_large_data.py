"""Training on data larger than memory: the process's own memory stays flat as the data grows.

Each path trains (in a subprocess, tiny Llama, text2text) on generated JSONL of
N rows and of 4N rows, while this process samples the child's anonymous resident
memory (``RssAnon`` in /proc/PID/status: its heap, tensors and Python objects)
every 20 ms. Memory-mapped Arrow pages are page cache, which the kernel reclaims
under pressure; they are file-backed and not in RssAnon, which is the memory a
process cannot give back and the one a larger dataset must not grow.

* memory-mapped: the file is converted to Arrow on disk (datasets' JSON builder),
  tokenized with ``Dataset.map`` into Arrow files, and the loader indexes all rows;
  every row is read, tokenized and written once.
* streaming: ``--streaming`` reads, tokenizes and trains on every row of the file
  (max_steps x batch = rows), a block at a time.

The assertion: peak RssAnon with 4N rows exceeds the N-row peak by less than
GROWTH_LIMIT_MB while the file grew by 3 x its N-row size (~100 MB here); an
in-memory path (the whole file parsed into Python) would grow with the file.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROW_CHARS = 32_000  # ~32 KB of text per row: few rows, many bytes
ROWS = 1_000  # N; the large run has 4N (~128 MB)
BATCH = 32
SHUFFLE_BUFFER = 128  # rows: ~4 MB of text; the buffer, not the data, bounds streaming memory
GROWTH_LIMIT_MB = 25.0
WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ro", "su", "ti") for b in ("ba", "de", "gi", "ko", "mu", "ne", "ri", "so")]


def _write_rows(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            words = rng.choices(WORDS, k=ROW_CHARS // 5)
            f.write(json.dumps({"input": f"row {i}: " + " ".join(words), "target": " ".join(words[:6])}) + "\n")


def _peak_anon_mb(argv: list[str], env: dict[str, str]) -> float:
    """Run ``argv``; the largest RssAnon (MB) seen while it ran."""
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0

    def sample() -> None:
        nonlocal peak
        status = Path(f"/proc/{child.pid}/status")
        while child.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("RssAnon:"):
                        peak = max(peak, int(line.split()[1]))
            except OSError:
                return
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = child.communicate(timeout=900)
    thread.join()
    assert child.returncode == 0, err[-4000:]
    return peak / 1024


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("large")
    files = {"small": root / "small.jsonl", "large": root / "large.jsonl", "val": root / "val.jsonl"}
    _write_rows(files["small"], ROWS, seed=1)
    _write_rows(files["large"], 4 * ROWS, seed=2)
    _write_rows(files["val"], 4, seed=3)
    return files


@pytest.mark.parametrize("streaming", [False, True], ids=["memory-mapped", "streaming"])
def test_peak_memory_stays_flat_as_the_data_grows(tiny_model_dir, data, tmp_path: Path, streaming: bool) -> None:
    tiny = tiny_model_dir("llama")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TEXTTUNE_HOME": str(tmp_path / "home"),
           "TEXTTUNE_LARGE_FILE_MB": "1"}  # both files are "large": the memory-mapped path, not the in-memory parser
    peaks = {}
    for size, rows in (("small", ROWS), ("large", 4 * ROWS)):
        steps = rows // BATCH if streaming else 5  # streaming reads every row; memory-mapped encodes every row
        argv = [str(Path(sys.executable).parent / "texttune"), "-q", "train", "text2text", "--train-file", str(data[size]),
                "--validation-file", str(data["val"]), "--backbone", str(tiny), "--output-dir", str(tmp_path / size),
                "--max-steps", str(steps), "--batch-size", str(BATCH), "--max-source-length", "32", "--max-target-length", "8",
                "--max-new-tokens", "4", "--no-baselines", "--no-progress-bar", "--no-tensorboard", "--samples-per-eval", "0",
                "--accelerator", "cpu", *(["--streaming", "--shuffle-buffer", str(SHUFFLE_BUFFER)] if streaming else [])]
        peaks[size] = _peak_anon_mb(argv, env)
        metrics = json.loads((tmp_path / size / "metrics.json").read_text())
        assert metrics["steps"] == steps
    grown_mb = (data["large"].stat().st_size - data["small"].stat().st_size) / 2**20
    print(f"\n{'streaming' if streaming else 'memory-mapped'}: peak RssAnon {peaks['small']:.0f} MB on "
          f"{data['small'].stat().st_size / 2**20:.0f} MB of data, {peaks['large']:.0f} MB on "
          f"{data['large'].stat().st_size / 2**20:.0f} MB (+{grown_mb:.0f} MB)")
    assert grown_mb > 80
    assert peaks["large"] - peaks["small"] < GROWTH_LIMIT_MB, peaks
