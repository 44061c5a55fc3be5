"""Load test of ``texttune serve``: throughput and latency with and without micro-batching.

Why: the server batches concurrent requests on the claim that shared model calls raise
throughput under load. This measures that claim on a real model and real inputs, and checks
that every caller gets *its own* output back (misrouted outputs would be fast and useless).

Top to bottom: build or take a servable model (zero-shot SmolLM2-135M summarization
by default, a tiny random T5 with ``--tiny``); pick real Debian descriptions of similar
length; for each batching mode start ``texttune serve`` on 127.0.0.1, get each input's
reference output alone, then let 1, 8, 64 concurrent clients send requests until a count
or a time budget is reached; stop the server (SIGTERM, SIGKILL if it hangs); print a
Markdown table. Details and caveats (the load generator shares the cores; padded greedy
batches can flip a near-tie token, so matches are counted, not required): README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import select
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import httpx

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "benchmarks" / ".cache"
DATASETS = (REPO.parent / "shared/datasets/summarization/debian-descriptions/validation.jsonl",
            REPO / "src/texttune/demo_data/debian/validation.jsonl")  # the shared set, else the packaged sample
MODES: dict[str, list[str]] = {"batching on": ["--max-batch-size", "16", "--max-wait-ms", "10"],
                               "batching off": ["--max-batch-size", "1"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line; the defaults are the bounds of the published run."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model-dir", type=Path, help="a saved texttune model or run directory to serve")
    source.add_argument("--backbone", default="smollm2-135m", help="zero-shot summarization backbone (default smollm2-135m)")
    source.add_argument("--tiny", action="store_true", help="a tiny random T5 (quick check of the script, gibberish outputs)")
    p.add_argument("--requests", type=int, default=64, help="requests per concurrency level (upper bound)")
    p.add_argument("--max-seconds", type=float, default=90.0, help="time budget per level; in-flight requests still finish")
    p.add_argument("--concurrency", default="1,8,64", help="comma-separated numbers of concurrent clients")
    p.add_argument("--inputs", type=int, default=24, help="distinct inputs (each gets a sequential reference run)")
    p.add_argument("--min-chars", type=int, default=250, help="shortest description used")
    p.add_argument("--max-chars", type=int, default=450, help="longest description used")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="server torch threads (default: all cores)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from: {', '.join(MODES)}")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    args.levels = [int(c) for c in args.concurrency.split(",")]
    args.mode_names = [m.strip() for m in args.modes.split(",")]
    if min(args.levels) < 1 or args.requests < 1 or args.inputs < 1 or not set(args.mode_names) <= set(MODES):
        p.error("--concurrency, --requests and --inputs must be positive; --modes must name known modes")
    return args


def machine() -> dict[str, object]:
    """What the numbers were measured on (they mean little without it)."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def load_inputs(*, count: int, min_chars: int, max_chars: int) -> list[str]:
    """The first ``count`` validation descriptions within the length window: real text, similar work per request."""
    path = next((p for p in DATASETS if p.is_file()), None)
    if path is None:
        raise SystemExit(f"no Debian descriptions found at {' or '.join(map(str, DATASETS))}")
    texts: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            document = json.loads(line)["document"]
            if min_chars <= len(document) <= max_chars:
                texts.append(document)
            if len(texts) == count:
                return texts
    raise SystemExit(f"{path}: only {len(texts)} descriptions of {min_chars}-{max_chars} characters, {count} wanted")


def prepare_model(args: argparse.Namespace) -> Path:
    """The directory to serve; a zero-shot model is saved once and reused (saving a backbone takes a while)."""
    if args.model_dir is not None:
        return args.model_dir
    from texttune.api import Summarization

    name = "tiny-t5" if args.tiny else args.backbone.replace("/", "_")
    target = CACHE / f"{name}-summarization"
    if (target / "texttune.json").is_file():
        return target
    backbone = args.backbone
    if args.tiny:
        sys.path.insert(0, str(REPO / "tests"))
        from tiny_models import build_tiny_model

        backbone = str(build_tiny_model("t5", CACHE / "tiny-t5-backbone"))
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    Summarization(backbone=backbone).save(partial)
    partial.rename(target)  # only a complete model dir ever carries the final name
    return target


def server_command(model_dir: Path, mode: str, threads: int) -> list[str]:
    """``texttune serve`` from this interpreter's environment, loopback, a free port."""
    exe = Path(sys.executable).parent / "texttune"
    return [str(exe) if exe.exists() else "texttune", "serve", str(model_dir), "--host", "127.0.0.1", "--port", "0",
            "--threads", str(threads), *MODES[mode]]


def _drain(stream: IO[str], log: Path) -> None:
    """Keep reading the server's stdout so it can never block on a full pipe."""
    with log.open("a", encoding="utf-8") as sink:
        shutil.copyfileobj(stream, sink)


@contextlib.contextmanager
def running_server(command: list[str], *, log: Path,
                   start_timeout: float = 60.0) -> Iterator[tuple[str, int, dict[str, float]]]:
    """Start the server, yield (its URL, its pid, a dict that gets the shutdown time), and always stop it."""
    stderr = log.open("w", encoding="utf-8")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
    shutdown: dict[str, float] = {}
    try:
        ready, _, _ = select.select([proc.stdout], [], [], start_timeout)
        first = proc.stdout.readline() if ready and proc.stdout else ""
        if " on http://" not in first:
            raise SystemExit(f"the server did not announce its URL (got {first!r}); see {log}")
        threading.Thread(target=_drain, args=(proc.stdout, log.with_suffix(".stdout")), daemon=True).start()
        yield first.split(" on ", 1)[1].split()[0], proc.pid, shutdown
    finally:
        started = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            print(f"  ! the server ignored SIGTERM for 90 s; killing it (see {log})", file=sys.stderr)
            proc.kill()
            proc.wait()
        shutdown.update(seconds=round(time.perf_counter() - started, 2), returncode=proc.returncode)
        stderr.close()


async def wait_ready(client: httpx.AsyncClient, *, timeout: float) -> float:
    """Seconds until ``/ready`` says ok (the model loads in the background)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        with contextlib.suppress(httpx.TransportError):
            if (await client.get("/ready")).status_code == 200:
                return time.perf_counter() - started
        await asyncio.sleep(0.2)
    raise SystemExit(f"the model was not ready after {timeout:g} s")


async def batch_counters(client: httpx.AsyncClient) -> tuple[float, float]:
    """(sum, count) of the server's batch-size histogram; deltas give the mean batch of a level."""
    values = {"texttune_batch_size_sum": 0.0, "texttune_batch_size_count": 0.0}
    for line in (await client.get("/metrics")).text.splitlines():
        name, _, value = line.partition(" ")
        if name in values:
            values[name] = float(value)
    return values["texttune_batch_size_sum"], values["texttune_batch_size_count"]


def cpu_ticks(server_pid: int) -> tuple[int, int] | None:
    """(busy ticks of the machine, ticks of the server and this script), or None off Linux: the
    difference says how much of the cores other people's jobs took during a level."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        busy = sum(int(fields[i]) for i in (0, 1, 2, 5, 6))  # user, nice, system, irq, softirq
        ours = 0
        for pid in (server_pid, os.getpid()):
            stat = Path(f"/proc/{pid}/stat").read_text()
            ours += sum(int(v) for v in stat.rsplit(")", 1)[1].split()[11:13])  # utime, stime
    except (OSError, IndexError, ValueError):
        return None
    return busy, ours


def others_cpu_percent(before: tuple[int, int] | None, after: tuple[int, int] | None, seconds: float) -> float | None:
    """CPU taken by other processes during a level, as a percentage of all cores."""
    if before is None or after is None or seconds <= 0:
        return None
    others = (after[0] - before[0]) - (after[1] - before[1])
    capacity = os.sysconf("SC_CLK_TCK") * seconds * (os.cpu_count() or 1)
    return round(max(others, 0) / capacity * 100, 1)


@dataclass
class Outcome:
    """One request as the client saw it."""

    input_index: int
    status: int  # 0: no HTTP answer (connection error, client timeout)
    seconds: float
    output: str | None
    error: str | None = None


async def predict(client: httpx.AsyncClient, texts: list[str], index: int, max_new_tokens: int) -> Outcome:
    """One request with one input; never raises, so a failing server shows up as errors in the table."""
    started = time.perf_counter()
    try:
        response = await client.post("/v1/predict", json={"inputs": texts[index], "max_new_tokens": max_new_tokens})
    except httpx.HTTPError as exc:
        return Outcome(index, 0, time.perf_counter() - started, None, f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        return Outcome(index, response.status_code, seconds, None, response.text[:300])
    outputs = response.json().get("outputs")
    output = outputs[0] if isinstance(outputs, list) and len(outputs) == 1 else None
    return Outcome(index, 200, seconds, output, None if output is not None else f"unexpected outputs: {outputs!r}"[:300])


async def references(client: httpx.AsyncClient, texts: list[str], max_new_tokens: int) -> list[str | None]:
    """Each input alone (a batch of one, no padding): the output every later answer is compared with."""
    outcomes = [await predict(client, texts, i, max_new_tokens) for i in range(len(texts))]
    for o in (o for o in outcomes if o.status != 200):
        print(f"  ! reference request for input {o.input_index} failed: {o.status} {o.error}", file=sys.stderr)
    return [o.output for o in outcomes]


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = int(position), min(int(position) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class LevelResult:
    """One row of the table."""

    mode: str
    concurrency: int
    requests: int
    seconds: float
    stopped_by: str
    throughput_rps: float
    p50_ms: float  # client-side latency of the successful requests
    p95_ms: float
    p99_ms: float
    mean_batch: float | None
    others_cpu_pct: float | None  # CPU used by every process but the server and this script, % of all cores
    errors: int
    matched: int
    compared: int
    mismatches: list[dict[str, object]] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)


async def run_level(client: httpx.AsyncClient, *, mode: str, concurrency: int, texts: list[str],
                    expected: list[str | None], args: argparse.Namespace, server_pid: int) -> LevelResult:
    """``concurrency`` clients send requests until ``args.requests`` are issued or the time budget is spent."""
    outcomes: list[Outcome] = []
    issued = 0
    batch_before = await batch_counters(client)
    cpu_before = cpu_ticks(server_pid)
    started = time.perf_counter()
    deadline = started + args.max_seconds

    async def one_client() -> None:
        nonlocal issued
        while issued < args.requests and time.perf_counter() < deadline:
            index = issued % len(texts)
            issued += 1
            outcomes.append(await predict(client, texts, index, args.max_new_tokens))

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    cpu_after = cpu_ticks(server_pid)
    batch_after = await batch_counters(client)
    batches = batch_after[1] - batch_before[1]
    ok = [o for o in outcomes if o.status == 200]
    compared = [o for o in ok if expected[o.input_index] is not None]
    wrong = [o for o in compared if o.output != expected[o.input_index]]
    latencies = [o.seconds * 1000 for o in ok] or [float("nan")]
    return LevelResult(
        mode=mode, concurrency=concurrency, requests=len(outcomes), seconds=round(seconds, 2),
        stopped_by="count" if issued >= args.requests else "time",
        throughput_rps=round(len(ok) / seconds, 3),
        p50_ms=round(percentile(latencies, 50), 1), p95_ms=round(percentile(latencies, 95), 1),
        p99_ms=round(percentile(latencies, 99), 1),
        mean_batch=round((batch_after[0] - batch_before[0]) / batches, 2) if batches else None,
        others_cpu_pct=others_cpu_percent(cpu_before, cpu_after, seconds),
        errors=len(outcomes) - len(ok), matched=len(compared) - len(wrong), compared=len(compared),
        mismatches=[{"input": o.input_index, "expected": expected[o.input_index], "got": o.output} for o in wrong],
        error_samples=sorted({f"{o.status} {o.error}" for o in outcomes if o.status != 200})[:5],
    )


async def bench_mode(model_dir: Path, *, mode: str, texts: list[str], expected: list[str | None],
                     args: argparse.Namespace, log: Path) -> tuple[list[LevelResult], list[str | None], dict[str, object]]:
    """One server with one batching mode: ready, warm-up, references if none yet, then every level."""
    command = server_command(model_dir, mode, args.threads)
    results: list[LevelResult] = []
    with running_server(command, log=log) as (url, server_pid, shutdown):
        limits = httpx.Limits(max_connections=max(args.levels) + 8, max_keepalive_connections=max(args.levels) + 8)
        async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(180.0, connect=10.0), limits=limits) as client:
            load_seconds = await wait_ready(client, timeout=300)
            for index in (0, 1 % len(texts)):  # first calls pay one-time costs (allocations, lazy imports)
                await predict(client, texts, index, args.max_new_tokens)
            if all(e is None for e in expected):
                print(f"  references: {len(texts)} inputs, one at a time ...", flush=True)
                expected = await references(client, texts, args.max_new_tokens)
            for concurrency in args.levels:
                result = await run_level(client, mode=mode, concurrency=concurrency, texts=texts, expected=expected,
                                         args=args, server_pid=server_pid)
                print(f"  {mode}, {concurrency} clients: {result.requests} requests in {result.seconds} s, "
                      f"{result.throughput_rps} req/s, {result.errors} errors, {result.matched}/{result.compared} match", flush=True)
                results.append(result)
    server = {"mode": mode, "command": shlex.join(command), "load_seconds": round(load_seconds, 2), "shutdown": shutdown}
    if shutdown.get("returncode") != 0:  # a graceful stop exits 0; anything else is worth a look
        print(f"  ! the server exited with {shutdown.get('returncode')} after SIGTERM (see {log})", file=sys.stderr)
    return results, expected, server


def markdown(results: list[LevelResult]) -> str:
    """The table for the README."""
    lines = ["| mode | concurrency | requests | throughput req/s | p50 ms | p95 ms | p99 ms | mean batch | errors "
             "| output match | other processes' CPU |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        batch = "n/a" if r.mean_batch is None else f"{r.mean_batch:.2f}"
        match = f"{r.matched}/{r.compared}" if r.compared else "n/a"
        others = "n/a" if r.others_cpu_pct is None else f"{r.others_cpu_pct:.0f}%"
        lines.append(f"| {r.mode} | {r.concurrency} | {r.requests} | {r.throughput_rps:.2f} | {r.p50_ms:.0f} | {r.p95_ms:.0f} "
                     f"| {r.p99_ms:.0f} | {batch} | {r.errors} | {match} | {others} |")
    return "\n".join(lines)


def report(results: list[LevelResult], *, args: argparse.Namespace, model_dir: Path, before: dict[str, object],
           servers: list[dict[str, object]], texts: list[str]) -> dict[str, object]:
    """Print the table, the mismatches and the setting; return the same as one JSON-able dict."""
    after = machine()
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    print("\n" + markdown(results) + "\n")
    for r in results:
        for m in r.mismatches:
            print(f"mismatch ({r.mode}, {r.concurrency} clients), input {m['input']}: expected {m['expected']!r}, got {m['got']!r}")
        for sample in r.error_samples:
            print(f"errors ({r.mode}, {r.concurrency} clients): {sample}")
    print(f"Machine: {before['cpu']}, {before['cores']} cores; server torch threads {args.threads}; load generator on the "
          f"same machine. Load average before {before['load_average']}, after {after['load_average']}.")
    print(f"Model {model_dir}; {len(texts)} Debian descriptions of {args.min_chars}-{args.max_chars} characters, "
          f"max_new_tokens {args.max_new_tokens}, greedy. Command: {command}")
    return {"command": command, "machine": before, "load_average_after": after["load_average"],
            "model_dir": str(model_dir), "server_threads": args.threads, "max_new_tokens": args.max_new_tokens,
            "inputs": len(texts), "input_chars": [args.min_chars, args.max_chars], "requests_per_level": args.requests,
            "max_seconds_per_level": args.max_seconds, "servers": servers, "results": [asdict(r) for r in results]}


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    """Every mode in turn (one server at a time, so they never compete for the cores)."""
    before = machine()
    CACHE.mkdir(parents=True, exist_ok=True)
    model_dir = prepare_model(args)
    texts = load_inputs(count=args.inputs, min_chars=args.min_chars, max_chars=args.max_chars)
    expected: list[str | None] = [None] * len(texts)
    results: list[LevelResult] = []
    servers: list[dict[str, object]] = []
    for mode in args.mode_names:
        print(f"{mode}: starting the server on {model_dir}", flush=True)
        mode_results, expected, server = await bench_mode(model_dir, mode=mode, texts=texts, expected=expected, args=args,
                                                          log=CACHE / f"server-{mode.replace(' ', '-')}.log")
        results.extend(mode_results)
        servers.append(server)
    return report(results, args=args, model_dir=model_dir, before=before, servers=servers, texts=texts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (summary := asyncio.run(main_async(args))) and args.out is not None:
        args.out.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
