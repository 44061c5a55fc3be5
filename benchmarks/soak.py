"""Soak test of ``texttune serve``: many requests at high concurrency, zero errors, flat memory, each answer its own.

Why: a server runs for weeks. A slow leak (a future, a buffer or an output kept per
request), a race that hands one caller another's output, or an error that appears
only under sustained concurrency does not show in a one-minute functional test.

Top to bottom: take a saved model (``--model-dir``) or build a tiny random BERT
masked-LM (``--tiny``); start ``texttune serve`` on 127.0.0.1 (``--port 0``, one
torch thread); make ``--requests`` distinct inputs (each names its request number);
get every input's reference output in sequential requests (``--reference-batch``
inputs each: 64 for masked-LM, else 1); then ``--concurrency`` asyncio clients send one input per request
until all are answered. Every answer must be 200 and equal its own input's
reference. The server's resident memory (VmRSS of ``/proc/<pid>/status``) is read
when the load starts, after ``--warmup`` answers, every 0.25 s, and at the end; its
growth from the warm-up point to the end must stay under ``--max-rss-growth-mb``.
The server then gets SIGTERM and must exit 0, with no traceback in its log.

Matching is exact for tasks whose outputs do not depend on what else is in the
batch: masked-LM runs each input on its own (the default model). Batched greedy
generation pads inputs, which can flip a near-tie token: for generation models pass
``--max-batch-size 1`` to the server (``--server-arg=--max-batch-size=1``) or expect
rare mismatches (see serve_load.py).

    python benchmarks/soak.py --tiny                         # 5,000 requests at 64 concurrent clients
    python benchmarks/soak.py --model-dir runs/x/model --requests 20000 --out soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "benchmarks" / ".cache"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", type=Path, help="a saved texttune model or run directory to serve")
    source.add_argument("--tiny", action="store_true", help="a tiny random BERT masked-LM (built once into benchmarks/.cache)")
    p.add_argument("--requests", type=int, default=5000, help="requests, each with its own input (default 5000)")
    p.add_argument("--concurrency", type=int, default=64, help="concurrent clients (default 64)")
    p.add_argument("--warmup", type=int, default=500, help="answers before the memory baseline is taken (default 500)")
    p.add_argument("--max-rss-growth-mb", type=float, default=32.0,
                   help="largest allowed server RSS growth from the warm-up point to the end, MiB (default 32)")
    p.add_argument("--reference-batch", type=int, default=None,
                   help="inputs per reference request (default: 64 for masked-LM, which runs each input on its own "
                        "anyway; 1, each input alone, for other tasks)")
    p.add_argument("--server-arg", action="append", default=[], help="extra 'texttune serve' argument (repeatable)")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument("--log", type=Path, default=CACHE / "soak-server.log", help="the server's stderr (default %(default)s)")
    args = p.parse_args(argv)
    positive = [args.requests, args.concurrency] + ([args.reference_batch] if args.reference_batch is not None else [])
    if min(positive) < 1 or not 0 <= args.warmup < args.requests:
        p.error("--requests, --concurrency, --reference-batch must be positive and --warmup below --requests")
    return args


def tiny_model() -> Path:
    """A tiny random BERT saved as a texttune masked-LM model (once; tests/tiny_models.py builds the backbone)."""
    target = CACHE / "tiny-bert-masked-lm"
    if (target / "texttune.json").is_file():
        return target
    sys.path.insert(0, str(REPO / "tests"))
    from texttune.api import MaskedLM
    from tiny_models import build_tiny_model

    backbone = build_tiny_model("bert", CACHE / "tiny-bert-backbone")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    MaskedLM(backbone=str(backbone)).save(partial)
    partial.rename(target)
    return target


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@contextlib.contextmanager
def running_server(model_dir: Path, extra: list[str], log: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``texttune serve`` on a free loopback port; always stopped with SIGTERM (SIGKILL after 60 s)."""
    command = [sys.executable, "-m", "texttune.cli.main", "serve", str(model_dir), "--host", "127.0.0.1", "--port", "0",
               "--threads", "1", *extra]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            line = process.stdout.readline() if process.stdout else ""
            if " on http://" not in line:
                raise SystemExit(f"the server did not start ({line!r}); see {log}")
            yield line.split(" on ", 1)[1].split()[0], process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def make_inputs(info: dict[str, object], count: int) -> list[object]:
    """``count`` distinct inputs for the served task, each naming its own request number."""
    roles = list(info.get("inputs") or ["text"])  # type: ignore[call-overload]
    mask = info.get("mask_token")
    if mask:
        return [f"request {i} is the {mask} of the tool" for i in range(count)]
    if roles == ["text"]:
        return [f"request {i}: a small tool that reads files" for i in range(count)]
    return [{role: f"request {i} {role}: a small tool that reads files" for role in roles} for i in range(count)]


async def references(client: httpx.AsyncClient, inputs: list[object], batch: int) -> list[object]:
    """Each input's output from sequential requests of ``batch`` inputs: the answers to compare with."""
    outputs: list[object] = []
    for start in range(0, len(inputs), batch):
        response = await client.post("/v1/predict", json={"inputs": inputs[start:start + batch]})
        if response.status_code != 200:
            raise SystemExit(f"reference request failed: {response.status_code} {response.text[:300]}")
        outputs.extend(response.json()["outputs"])
    return outputs


@dataclass
class Soak:
    """What the load phase saw."""

    requests: int
    concurrency: int
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)  # "status: first line" -> count
    mismatches: list[int] = field(default_factory=list)  # request numbers whose answer was not their own
    latencies_ms: list[float] = field(default_factory=list)
    rss_mib: dict[str, float] = field(default_factory=dict)  # start, after_warmup, end, peak


async def load(client: httpx.AsyncClient, *, inputs: list[object], expected: list[object], concurrency: int,
               warmup: int, pid: int) -> Soak:
    """``concurrency`` clients send every input once; memory is sampled all along."""
    soak = Soak(requests=len(inputs), concurrency=concurrency, rss_mib={"start": rss_mib(pid)})
    peak = soak.rss_mib["start"]
    pending = iter(range(len(inputs)))
    done = 0

    async def client_loop() -> None:
        nonlocal done
        for index in pending:  # a shared iterator: each request number is sent exactly once
            started = time.perf_counter()
            try:
                response = await client.post("/v1/predict", json={"inputs": inputs[index]})
                status, body = response.status_code, response.text
            except httpx.HTTPError as exc:
                status, body = 0, f"{type(exc).__name__}: {exc}"
            soak.latencies_ms.append((time.perf_counter() - started) * 1000)
            if status != 200:
                key = f"{status}: {body.splitlines()[0][:200] if body else ''}"
                soak.errors[key] = soak.errors.get(key, 0) + 1
            elif json.loads(body)["outputs"] != [expected[index]]:
                soak.mismatches.append(index)
            done += 1
            if done == warmup:
                soak.rss_mib["after_warmup"] = rss_mib(pid)

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_mib(pid))
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    soak.seconds = time.perf_counter() - started
    sampler.cancel()
    soak.rss_mib["end"] = rss_mib(pid)
    soak.rss_mib["peak"] = max(peak, soak.rss_mib["end"])
    soak.rss_mib.setdefault("after_warmup", soak.rss_mib["start"])
    return soak


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round((len(ordered) - 1) * q / 100)))]


def summary(soak: Soak, *, args: argparse.Namespace, model_dir: Path, returncode: int | None,
            tracebacks: int, reference_seconds: float) -> dict[str, object]:
    """The results as one JSON-able dict, with ``passed`` and the reasons it did not."""
    growth = soak.rss_mib["end"] - soak.rss_mib["after_warmup"]
    problems = [f"{n} x {k}" for k, n in soak.errors.items()]
    problems += [f"{len(soak.mismatches)} answers were not their request's (first: {soak.mismatches[:5]})"] if soak.mismatches else []
    problems += [f"RSS grew {growth:.1f} MiB after warm-up (bound {args.max_rss_growth_mb:g})"] if growth > args.max_rss_growth_mb else []
    problems += [f"the server exited with {returncode} after SIGTERM"] if returncode != 0 else []
    problems += [f"{tracebacks} traceback(s) in the server log"] if tracebacks else []
    return {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]), "model_dir": str(model_dir),
        "requests": soak.requests, "concurrency": soak.concurrency, "seconds": round(soak.seconds, 2),
        "throughput_rps": round(soak.requests / soak.seconds, 1), "reference_seconds": round(reference_seconds, 2),
        "p50_ms": round(percentile(soak.latencies_ms, 50), 1), "p99_ms": round(percentile(soak.latencies_ms, 99), 1),
        "errors": sum(soak.errors.values()), "error_kinds": soak.errors, "mismatches": len(soak.mismatches),
        "rss_mib": {k: round(v, 1) for k, v in soak.rss_mib.items()}, "rss_growth_mib": round(growth, 1),
        "max_rss_growth_mib": args.max_rss_growth_mb, "server_exit": returncode, "server_tracebacks": tracebacks,
        "passed": not problems, "problems": problems,
    }


def table(result: dict[str, object]) -> str:
    rss = result["rss_mib"]
    assert isinstance(rss, dict)
    return "\n".join([
        "| requests | concurrency | seconds | req/s | p50 ms | p99 ms | errors | mismatches | RSS start | RSS after warm-up "
        "| RSS end | RSS peak | growth (bound) MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {result['requests']} | {result['concurrency']} | {result['seconds']} | {result['throughput_rps']} "
        f"| {result['p50_ms']} | {result['p99_ms']} | {result['errors']} | {result['mismatches']} | {rss['start']} "
        f"| {rss['after_warmup']} | {rss['end']} | {rss['peak']} | {result['rss_growth_mib']} ({result['max_rss_growth_mib']:g}) |",
    ])


async def soak_server(args: argparse.Namespace, model_dir: Path, log: Path) -> tuple[Soak, int | None, float]:
    """Start the server, take references, run the load; (what the load saw, the server's exit code, reference s)."""
    limits = httpx.Limits(max_connections=args.concurrency + 4, max_keepalive_connections=args.concurrency + 4)
    with running_server(model_dir, args.server_arg, log) as (url, process):
        async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(120.0, connect=10.0), limits=limits) as client:
            deadline = time.monotonic() + 300
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/ready")).status_code == 200:
                        break
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit(f"the model did not load; see {log}")
                await asyncio.sleep(0.1)
            info = (await client.get("/v1/model")).json()
            inputs = make_inputs(info, args.requests)
            batch = args.reference_batch or (64 if info.get("task") == "masked-lm" else 1)
            started = time.perf_counter()
            expected = await references(client, inputs, batch)
            reference_seconds = time.perf_counter() - started
            if len({json.dumps(e, sort_keys=True) for e in expected}) != len(expected):
                raise SystemExit("two inputs share a reference output: matching answers to requests would prove nothing")
            soak = await load(client, inputs=inputs, expected=expected, concurrency=args.concurrency,
                              warmup=args.warmup, pid=process.pid)
    return soak, process.returncode, reference_seconds


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run the soak, print the table and any problems; the results dict (``passed``) is returned."""
    args = parse_args(argv)
    model_dir = tiny_model() if args.tiny else args.model_dir
    log = args.log
    soak, returncode, reference_seconds = asyncio.run(soak_server(args, model_dir, log))
    tracebacks = log.read_text(encoding="utf-8", errors="replace").count("Traceback")
    result = summary(soak, args=args, model_dir=model_dir, returncode=returncode, tracebacks=tracebacks,
                     reference_seconds=reference_seconds)
    print("\n" + table(result) + "\n")
    print(f"model {model_dir}; references in {result['reference_seconds']} s; server log {log}; command: {result['command']}")
    for problem in result["problems"]:  # type: ignore[union-attr]
        print(f"FAILED: {problem}")
    if args.out is not None:
        args.out.write_text(json.dumps({**result, "args": {k: str(v) for k, v in vars(args).items()}}, indent=2) + "\n")
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["passed"] else 1)
