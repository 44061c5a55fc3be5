"""SIGKILL at seeded random points, then ``--resume latest`` until done: nothing is lost or changed.

Training runs in child processes (``crash_child.py``: the real CLI plus a test-only
callback), so every kill is a real SIGKILL: no Python cleanup, no ``finally``, no
checkpoint on the way out. The killed-and-resumed run must end with the same
optimizer steps, the same batches in the same order (and the same random state at
each step), the same evaluations and the same weights and optimizer state as an
uninterrupted run with the same seed. The tiny Llama has no dropout, so an exact
resume reproduces its weights exactly.

Schedule: 12 steps of batch 4 over 40 rows (an epoch boundary after step 10),
evaluation every 4 steps, a periodic checkpoint every 2 steps between evaluations;
so last.ckpt is written after every even step (at an evaluation that improved, as
a hard link to the best.ckpt written just before).
"""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

DATA = Path(__file__).resolve().parents[1] / "data"
CHILD = Path(__file__).with_name("crash_child.py")
#: The kill schedule's seed; TEXTTUNE_CRASH_SEED=N explores other schedules.
SEED = int(os.environ.get("TEXTTUNE_CRASH_SEED", "20261129"))
STEPS, EVAL_EVERY, CHECKPOINT_EVERY = 12, 4, 2
TIMEOUT_S = 300


def kill_schedule(seed: int) -> list[tuple[str, int]]:
    """Five (phase, step) kill points in run order: one mid-checkpoint-write, one mid-evaluation, three after a step."""
    rng = random.Random(seed)
    ckpt = rng.choice(range(CHECKPOINT_EVERY, STEPS + 1, CHECKPOINT_EVERY))  # last.ckpt is written at every even step
    evaluation = rng.choice([s for s in range(EVAL_EVERY, STEPS + 1, EVAL_EVERY) if s != ckpt])
    train = rng.sample([s for s in range(1, STEPS + 1) if s not in (ckpt, evaluation)], 3)
    return sorted([("ckpt", ckpt), ("eval", evaluation), *(("train", s) for s in train)], key=lambda point: point[1])


class ForkServer:
    """Starts ``crash_child.py --serve`` once; each call runs one training in a fresh process forked from it.

    A forked run is a real process (its own pid, killed for real) that skips the ~5 s
    of imports a fresh interpreter spends; the whole test takes half as long.
    """

    def __init__(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen([sys.executable, str(CHILD), "--serve"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env)
        self._reply("READY")

    def _reply(self, prefix: str) -> str:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        raise AssertionError(f"the fork server exited ({self.process.wait()}) without answering {prefix}")

    def run(self, argv: list[str], env: dict[str, str], logs: Path) -> subprocess.CompletedProcess[str]:
        assert self.process.stdin is not None
        out, err = logs.with_suffix(".out"), logs.with_suffix(".err")
        request = {"argv": argv, "env": env, "stdout": str(out), "stderr": str(err)}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        code = int(self._reply("RESULT "))
        return subprocess.CompletedProcess(argv, code, out.read_text(), err.read_text())

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def server() -> Iterator[ForkServer]:
    forks = ForkServer()
    yield forks
    forks.close()


def _train(server: ForkServer, tiny: Path, out: Path, log: Path, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    args = ["-q", "train", "summarization", "--train-file", str(DATA / "summarization.jsonl"),
            "--validation-file", str(DATA / "summarization-val.jsonl"), "--backbone", str(tiny),
            "--max-steps", str(STEPS), "--eval-every-steps", str(EVAL_EVERY),
            "--checkpoint-every-steps", str(CHECKPOINT_EVERY), "--checkpoint-metric", "loss", "--seed", "7",
            "--batch-size", "4", "--max-eval-samples", "4", "--max-new-tokens", "4", "--samples-per-eval", "0",
            "--no-baselines", "--no-progress-bar", "--no-tensorboard", "--max-source-length", "64",
            "--max-target-length", "16", "--output-dir", str(out), *extra]
    child_env = {"CRASH_LOG": str(log), "CRASH_KILL": "", "CRASH_SIGINT": "", **env}
    runs = len(list(log.parent.glob(f"{log.stem}-*.err")))
    return server.run(args, child_env, log.with_name(f"{log.stem}-{runs}.log"))


def _records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _last_evals(run: Path) -> dict[int, dict[str, Any]]:
    """evals.jsonl by step; an evaluation a resumed run repeated counts once (its last record)."""
    return {r["step"]: r for r in map(json.loads, (run / "evals.jsonl").read_text().splitlines())}


def _temp_files(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob(".*.tmp-*"))


def _assert_same_tensors(a: dict[str, Any], b: dict[str, Any], what: str) -> None:
    assert a.keys() == b.keys(), what
    for key in a:
        if isinstance(a[key], dict):
            _assert_same_tensors(a[key], b[key], f"{what}.{key}")
        elif isinstance(a[key], torch.Tensor):
            assert torch.allclose(a[key].float(), b[key].float(), rtol=1e-6, atol=1e-7), f"{what}.{key}"
        else:
            assert a[key] == b[key], f"{what}.{key}"


@pytest.fixture(scope="module")
def straight(server: ForkServer, tiny_model_dir, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """The uninterrupted run: its directory and its batch records."""
    out = tmp_path_factory.mktemp("straight")
    done = _train(server, tiny_model_dir("llama"), out / "run", out / "batches.jsonl")
    assert done.returncode == 0, done.stderr
    records = _records(out / "batches.jsonl")
    assert [r["step"] for r in records] == list(range(STEPS))
    return out / "run", records


def _assert_matches_straight(run: Path, records: list[dict[str, Any]], straight: tuple[Path, list[dict[str, Any]]]) -> None:
    """Same steps, batches, random state, evaluations, weights and optimizer state as the uninterrupted run."""
    reference_run, reference = straight
    assert json.loads((run / "status.json").read_text())["state"] == "completed"
    assert json.loads((run / "metrics.json").read_text())["steps"] == STEPS
    assert json.loads((run / "model" / "texttune.json").read_text())["trained_steps"] == STEPS
    # Data order: each batch any process trained on is the one the straight run trained on at that step.
    for record in records:
        expected = reference[record["step"]]
        assert (record["batch"], record["rng"]) == (expected["batch"], expected["rng"]), record
    assert {r["step"] for r in records} == set(range(STEPS))
    evals, reference_evals = _last_evals(run), _last_evals(reference_run)
    assert sorted(evals) == sorted(reference_evals) == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
    for step, expected in reference_evals.items():
        scores = {k: v for k, v in expected.items() if isinstance(v, float) and not k.endswith("_s")}  # not timings
        assert scores and {k: evals[step][k] for k in scores} == pytest.approx(scores, rel=1e-6, abs=1e-7), step
    final, reference_final = _checkpoint(run / "checkpoints" / "last.ckpt"), _checkpoint(reference_run / "checkpoints" / "last.ckpt")
    assert final["global_step"] == reference_final["global_step"] == STEPS
    _assert_same_tensors(final["state_dict"], reference_final["state_dict"], "weights")
    _assert_same_tensors(final["optimizer_states"][0], reference_final["optimizer_states"][0], "optimizer")
    assert final["lr_schedulers"] == reference_final["lr_schedulers"]
    _assert_same_tensors(load_file(run / "model" / "model.safetensors"),
                         load_file(reference_run / "model" / "model.safetensors"), "model/")
    assert not _temp_files(run)


@pytest.mark.timeout(TIMEOUT_S)
def test_sigkill_at_five_random_points_then_resume_matches_an_uninterrupted_run(
        server: ForkServer, tiny_model_dir, straight, tmp_path: Path) -> None:
    tiny, run, log = tiny_model_dir("llama"), tmp_path / "run", tmp_path / "batches.jsonl"
    schedule = kill_schedule(SEED)
    assert len(schedule) >= 5 and {"ckpt", "eval", "train"} == {phase for phase, _ in schedule}
    started = time.perf_counter()
    for attempt, (phase, step) in enumerate(schedule):
        resume = ("--resume", "latest") if attempt else ()
        killed = _train(server, tiny, run, log, *resume, CRASH_KILL=f"{phase}:{step}")
        assert killed.returncode == -signal.SIGKILL, (phase, step, killed.stderr[-3000:])
        assert _records(log)[-1]["step"] == step - 1  # it died in step `step`, as planned
        for complete in (run / "checkpoints").glob("*.ckpt"):  # last.ckpt and best.ckpt: always whole
            _checkpoint(complete)
        last = run / "checkpoints" / "last.ckpt"
        saved = _checkpoint(last)["global_step"] if last.exists() else 0
        if phase == "ckpt":
            assert _temp_files(run), "the kill did not land inside the checkpoint write"
            assert saved == step - CHECKPOINT_EVERY  # the previous checkpoint, intact
        else:
            assert saved <= step
    done = _train(server, tiny, run, log, "--resume", "latest")
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_matches_straight(run, _records(log), straight)
    elapsed = time.perf_counter() - started
    print(f"\n{len(schedule)} SIGKILLs survived {schedule}; kill-and-resume runs took {elapsed:.1f}s")


@pytest.mark.timeout(TIMEOUT_S)
def test_ctrl_c_saves_a_checkpoint_exits_cleanly_and_resumes_exactly(server: ForkServer, tiny_model_dir, straight,
                                                                    tmp_path: Path) -> None:
    tiny, run, log = tiny_model_dir("llama"), tmp_path / "run", tmp_path / "batches.jsonl"
    # A real SIGINT arrives as step 6 starts (before its forward pass): step 6 finishes, then the run stops.
    stopped = _train(server, tiny, run, log, CRASH_SIGINT="5")
    assert stopped.returncode == 2, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    assert ("training interrupted at step 6; continue with: texttune train summarization --resume latest "
            f"--output-dir {shlex.quote(str(run))}") in stopped.stderr
    assert json.loads((run / "status.json").read_text())["state"] == "interrupted"
    assert _checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 6
    assert not (run / "model").exists()
    resumed = _train(server, tiny, run, log, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = _records(log)
    assert [r["step"] for r in records] == list(range(STEPS))  # nothing repeated, nothing skipped
    _assert_matches_straight(run, records, straight)
