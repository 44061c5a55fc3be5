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

``--openai`` (issue 20) measures the OpenAI-compatible ``POST /v1/completions`` instead, against the
baseline most people write, in the same run: a plain FastAPI app (written to ``benchmarks/.cache/``,
run under uvicorn, 2 torch threads) that loads the same model directory with transformers and calls
``model.generate`` per request in a plain ``def`` endpoint. Model: SmolLM2-135M as a texttune causal-LM
directory (``CausalLM(backbone="smollm2-135m").save``, once, into ``benchmarks/.cache/``). Prompts: the
opening sentences (20-60 tokens) of Debian package descriptions from
``../shared/datasets/classification/debian-packages``; every request asks for ``max_tokens`` 32, greedy,
no stop strings. Sides: texttune with batching on (server defaults) and off (``--max-batch-size 1``),
each answering whole and streamed (server-sent events), and the baseline (whole; streamed with a
``TextIteratorStreamer`` as a bonus). The three servers are started (one at a time) and warmed up
first; then at each concurrency (1, 8, 64 clients sending requests back to back; 8, 32, 64 requests
per side) every side runs in turn, in two rounds of alternating order where there are enough requests,
so drifting load from other jobs is spread over the sides. Per side and concurrency: requests/s,
generated tokens/s (``usage``), p50/p95 latency and time to first token (the first chunk with text;
the whole latency when not streamed), the server's mean batch, the CPU other processes took, and
requests/s divided by the baseline's. Results JSON (every request included):
``benchmarks/results/serve-load-<date>.json``; docs/serve-load.md has the published table::

    python benchmarks/serve_load.py --openai --quick                     # a check of the script (~5 min)
    python benchmarks/serve_load.py --openai                             # the published run (~20 min, 2 cores)
    python benchmarks/serve_load.py --openai --sides "texttune batched,baseline" --levels 8:32
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
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


def cpu_ticks(*server_pids: int) -> tuple[int, int] | None:
    """(busy ticks of the machine, ticks of the servers and this script), or None off Linux: the
    difference says how much of the cores other people's jobs took during a level."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        busy = sum(int(fields[i]) for i in (0, 1, 2, 5, 6))  # user, nice, system, irq, softirq
        ours = 0
        for pid in (*server_pids, os.getpid()):
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


# --------------------------------------------------------------------------------------------------------------
# --openai: the OpenAI-compatible routes (issue 20) against the plain FastAPI + model.generate endpoint
# --------------------------------------------------------------------------------------------------------------

#: The three servers of the comparison: how each is started is in ``openai_server_command``.
OPENAI_SERVERS: dict[str, list[str]] = {"texttune batching on": [],  # the server's defaults: batches of up to 16, 10 ms window
                                        "texttune batching off": ["--max-batch-size", "1"],
                                        "baseline": []}
#: side name -> (server, streamed): each side is one row per concurrency level.
SIDES: dict[str, tuple[str, bool]] = {
    "texttune batched": ("texttune batching on", False),
    "texttune batched stream": ("texttune batching on", True),
    "texttune unbatched": ("texttune batching off", False),
    "texttune unbatched stream": ("texttune batching off", True),
    "baseline": ("baseline", False),
    "baseline stream": ("baseline", True),
}
#: The published run: concurrency:requests (the clients share the count and send back to back).
OPENAI_LEVELS = "1:8,8:32,64:64"
OPENAI_QUICK_LEVELS = "1:2,8:8"
PROMPTS = REPO.parent / "shared/datasets/classification/debian-packages/validation.jsonl"

#: The baseline most people write: load with transformers, ``model.generate`` per request in a plain ``def``
#: endpoint (FastAPI runs it in its threadpool: up to 40 requests at once), OpenAI's completion JSON shape.
#: ``stream: true`` runs ``generate`` in a thread with a ``TextIteratorStreamer`` (whole words per chunk).
BASELINE_APP = '''"""Plain FastAPI + transformers completion endpoint (written by benchmarks/serve_load.py --openai)."""
import json
import socket
import sys
import threading
import time
import uuid

import torch
import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

MODEL_DIR, THREADS, NAME = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(THREADS)
tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
model = AutoModelForCausalLM.from_pretrained(MODEL_DIR)
model.eval()
app = FastAPI()


class CompletionRequest(BaseModel):
    model: str
    prompt: str
    max_tokens: int = 16
    temperature: float = 0.0
    stream: bool = False


class CountingStreamer(TextIteratorStreamer):
    generated = 0

    def put(self, value):
        if not (self.skip_prompt and self.next_tokens_are_prompt):
            self.generated += value.numel()
        super().put(value)


def chunk(cid, text, finish_reason=None, usage=None):
    body = {"id": cid, "object": "text_completion", "created": int(time.time()), "model": NAME,
            "choices": [] if usage else [{"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}]}
    if usage:
        body["usage"] = usage
    return "data: " + json.dumps(body) + "\\n\\n"


@app.get("/ready")
def ready():
    return {"status": "ok"}


@app.post("/v1/completions")
def completions(body: CompletionRequest):
    inputs = tokenizer(body.prompt, return_tensors="pt")
    prompt_tokens = int(inputs["input_ids"].shape[1])
    cid = "cmpl-" + uuid.uuid4().hex
    if body.stream:
        streamer = CountingStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        thread = threading.Thread(target=model.generate, kwargs=dict(**inputs, max_new_tokens=body.max_tokens,
                                                                     do_sample=False, streamer=streamer))
        thread.start()

        def events():
            for text in streamer:
                if text:
                    yield chunk(cid, text)
            thread.join()
            n = streamer.generated
            yield chunk(cid, "", "length" if n >= body.max_tokens else "stop")
            yield chunk(cid, "", usage={"prompt_tokens": prompt_tokens, "completion_tokens": n,
                                        "total_tokens": prompt_tokens + n})
            yield "data: [DONE]\\n\\n"

        return StreamingResponse(events(), media_type="text/event-stream")
    output = model.generate(**inputs, max_new_tokens=body.max_tokens, do_sample=False)
    new = output[0, prompt_tokens:]
    n = int(new.shape[0])
    return {"id": cid, "object": "text_completion", "created": int(time.time()), "model": NAME,
            "choices": [{"index": 0, "text": tokenizer.decode(new, skip_special_tokens=True),
                         "finish_reason": "length" if n >= body.max_tokens else "stop", "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}}


sock = socket.socket()
sock.bind(("127.0.0.1", 0))
print(f"baseline: serving {MODEL_DIR} on http://127.0.0.1:{sock.getsockname()[1]} ", flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=75)).run(sockets=[sock])
'''


def parse_openai_args(argv: list[str]) -> argparse.Namespace:
    """Command line of ``--openai``; the defaults are the published run."""
    p = argparse.ArgumentParser(prog="serve_load.py --openai", description=(
        "OpenAI-compatible /v1/completions of texttune serve (batching on/off, streamed or not) against a plain "
        "FastAPI endpoint calling model.generate per request, in the same run."))
    p.add_argument("--openai", action="store_true", help="this mode (required)")
    p.add_argument("--model-dir", type=Path, help="a saved texttune causal-LM model directory (default: SmolLM2-135M, "
                   "saved once into benchmarks/.cache/)")
    p.add_argument("--backbone", default="smollm2-135m", help="offline alias or local model for the default model")
    p.add_argument("--levels", default=OPENAI_LEVELS, help=f"concurrency:requests pairs (default {OPENAI_LEVELS})")
    p.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated, from: {', '.join(SIDES)}")
    p.add_argument("--prompts", type=int, default=32, help="distinct prompts, cycled over the requests")
    p.add_argument("--min-tokens", type=int, default=20, help="shortest prompt in tokens")
    p.add_argument("--max-tokens-prompt", type=int, default=60, help="longest prompt in tokens")
    p.add_argument("--max-tokens", type=int, default=32, help="max_tokens of every request (greedy, no stop strings)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of each server (default 2)")
    p.add_argument("--rounds", type=int, default=2, help="split each row's requests into this many rounds, the sides in "
                   "alternating order (fewer where a round would have fewer requests than clients)")
    p.add_argument("--max-seconds", type=float, default=300.0,
                   help="time budget per round: no new request after it (those in flight finish)")
    p.add_argument("--drop", default="", help="comma-separated CONCURRENCY:SIDE rows to leave out (too slow on this "
                   "machine), e.g. '64:texttune unbatched stream'")
    p.add_argument("--budget", type=float, default=1500.0, help="seconds of load for the whole run: no round starts "
                   "after it (the rows left are listed as skipped)")
    p.add_argument("--quick", action="store_true", help=f"a check of the script: levels {OPENAI_QUICK_LEVELS}, 8 prompts, "
                   "results to benchmarks/.cache/")
    p.add_argument("--out", type=Path, help="results JSON (default benchmarks/results/serve-load-<date>.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.levels = OPENAI_QUICK_LEVELS if args.levels == OPENAI_LEVELS else args.levels
        args.prompts = min(args.prompts, 8)
    try:
        args.level_pairs = [(int(c), int(n)) for c, n in (pair.split(":") for pair in args.levels.split(","))]
    except ValueError:
        p.error("--levels takes concurrency:requests pairs, e.g. 1:8,8:32")
    args.side_names = [s.strip() for s in args.sides.split(",")]
    try:
        args.drops = {(int(c), side.strip()) for c, side in (d.split(":", 1) for d in args.drop.split(",") if d.strip())}
    except ValueError:
        p.error("--drop takes CONCURRENCY:SIDE pairs")
    if not {side for _, side in args.drops} <= set(SIDES):
        p.error(f"--drop must name known sides ({', '.join(SIDES)})")
    if not set(args.side_names) <= set(SIDES) or min(min(pair) for pair in args.level_pairs) < 1:
        p.error(f"--sides must name known sides ({', '.join(SIDES)}); levels must be positive")
    if args.out is None:
        folder = CACHE if args.quick else REPO / "benchmarks" / "results"
        args.out = folder / f"serve-load-{datetime.date.today()}{'-quick' if args.quick else ''}.json"
    return args


def provenance() -> dict[str, object]:
    """Date, commit (and whether src/ had uncommitted changes: the server measured is the working tree), versions;
    taken when the run starts."""
    def git(*command: str) -> str:
        done = subprocess.run(["git", *command], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    from importlib import metadata

    versions = {}
    for package in ("texttune", "torch", "transformers", "fastapi", "uvicorn", "httpx"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    dirty = git("status", "--porcelain", "--", "src").splitlines()
    diff = subprocess.run(["git", "diff", "HEAD", "--", "src"], cwd=REPO, capture_output=True, check=False).stdout
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "commit": git("rev-parse", "HEAD"),
            "src_uncommitted": [line.split(None, 1)[1] for line in dirty],
            "src_diff_sha256": hashlib.sha256(diff).hexdigest() if dirty else None, "versions": versions}


def prepare_causal_lm(args: argparse.Namespace) -> Path:
    """The causal-LM model directory both servers load (saved once: converting the GGUF takes ~30 s)."""
    if args.model_dir is not None:
        return args.model_dir
    os.environ.setdefault("TEXTTUNE_HOME", "/tmp/texttune-serve-load")  # the converted backbone is cached there
    from texttune.api import CausalLM

    target = CACHE / f"{args.backbone.replace('/', '_')}-causal-lm"
    if (target / "texttune.json").is_file():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    CausalLM(backbone=args.backbone).save(partial)
    partial.rename(target)
    return target


def load_prompts(model_dir: Path, *, count: int, min_tokens: int, max_tokens: int) -> list[str]:
    """Opening sentences of Debian package descriptions (validation split), ``min_tokens``-``max_tokens`` tokens:
    sentences of the first paragraph are taken until the prompt is long enough."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    if not PROMPTS.is_file():
        raise SystemExit(f"no Debian package descriptions at {PROMPTS}")
    prompts: list[str] = []
    with PROMPTS.open(encoding="utf-8") as handle:
        for line in handle:
            sentences = re.split(r"(?<=[.!?])\s+", json.loads(line)["text"].split("\n\n")[0].strip())
            for end in range(1, len(sentences) + 1):
                text = " ".join(sentences[:end])
                size = len(tokenizer.encode(text).ids)
                if size >= min_tokens:
                    if size <= max_tokens and text not in prompts:
                        prompts.append(text)
                    break
            if len(prompts) == count:
                return prompts
    raise SystemExit(f"{PROMPTS}: only {len(prompts)} prompts of {min_tokens}-{max_tokens} tokens, {count} wanted")


def openai_server_command(server: str, model_dir: Path, threads: int, request_timeout: float) -> list[str]:
    """texttune serve with a long request timeout (queues at 64 clients without batching exceed the default 60 s;
    the baseline has none), or the baseline app under uvicorn; both on a free loopback port."""
    if server == "baseline":
        app = CACHE / "baseline_app.py"
        app.write_text(BASELINE_APP, encoding="utf-8")
        return [sys.executable, str(app), str(model_dir), str(threads), model_dir.name]
    exe = Path(sys.executable).parent / "texttune"
    return [str(exe) if exe.exists() else "texttune", "serve", str(model_dir), "--host", "127.0.0.1", "--port", "0",
            "--threads", str(threads), "--request-timeout", f"{request_timeout:g}", *OPENAI_SERVERS[server]]


@dataclass
class Call:
    """One /v1/completions request as the client saw it."""

    side: str
    concurrency: int
    prompt_index: int
    status: int  # 0: no HTTP answer
    seconds: float
    ttft: float | None  # first non-empty text (streamed); the whole latency otherwise
    completion_tokens: int | None
    finish_reason: str | None
    text: str | None
    chunks: int = 0
    error: str | None = None


async def complete(client: httpx.AsyncClient, *, side: str, concurrency: int, model: str, prompts: list[str], index: int,
                   max_tokens: int, stream: bool) -> Call:
    """One completion; never raises (failures become rows with an error)."""
    body: dict[str, object] = {"model": model, "prompt": prompts[index], "max_tokens": max_tokens, "temperature": 0,
                               "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    started = time.perf_counter()
    call = Call(side, concurrency, index, 0, 0.0, None, None, None, None)
    try:
        if not stream:
            response = await client.post("/v1/completions", json=body)
            call.seconds = call.ttft = time.perf_counter() - started
            call.status = response.status_code
            if response.status_code != 200:
                call.error = response.text[:300]
                return call
            answer = response.json()
            call.text, call.finish_reason = answer["choices"][0]["text"], answer["choices"][0]["finish_reason"]
            call.completion_tokens = answer["usage"]["completion_tokens"]
            return call
        pieces: list[str] = []
        async with client.stream("POST", "/v1/completions", json=body) as response:
            call.status = response.status_code
            if response.status_code != 200:
                call.error = (await response.aread()).decode("utf-8", "replace")[:300]
                call.seconds = time.perf_counter() - started
                return call
            done = False
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True
                    break
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    call.error = json.dumps(chunk)[:300]
                    break
                for choice in chunk.get("choices") or []:
                    if choice.get("text"):
                        call.ttft = call.ttft or time.perf_counter() - started
                        pieces.append(choice["text"])
                        call.chunks += 1
                    call.finish_reason = choice.get("finish_reason") or call.finish_reason
                if chunk.get("usage"):
                    call.completion_tokens = chunk["usage"]["completion_tokens"]
        call.seconds = time.perf_counter() - started
        call.text = "".join(pieces)
        if not done and call.error is None:
            call.error = "the stream ended without data: [DONE]"
        if call.error is not None:
            call.status = -call.status  # a 200 whose stream failed is not a success
        call.ttft = call.ttft or call.seconds
    except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
        call.seconds = time.perf_counter() - started
        call.status, call.error = 0, f"{type(exc).__name__}: {exc}"[:300]
    return call


@dataclass
class SideResult:
    """One row of the table: a side at one concurrency."""

    side: str
    concurrency: int
    requests: int
    ok: int
    seconds: float
    stopped_by: str
    requests_per_s: float
    tokens_per_s: float  # completion tokens (usage) of the successful requests per second of the row
    mean_completion_tokens: float | None
    p50_ms: float | None
    p95_ms: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    mean_chunks: float | None  # streamed sides: chunks with text per request
    mean_batch: float | None  # texttune: mean model batch over the row, from /metrics
    others_cpu_pct: float | None
    errors: int
    error_samples: list[str] = field(default_factory=list)
    vs_baseline_rps: float | None = None
    same_text_as_reference: str | None = None


def _ms(values: list[float], q: float) -> float | None:
    return round(percentile(values, q) * 1000, 1) if values else None


@dataclass
class Live:
    """A started, warmed-up server of the comparison."""

    name: str
    client: httpx.AsyncClient
    pid: int
    model: str  # the name its /v1/models lists (the baseline accepts any)


@dataclass
class Round:
    """One side at one concurrency, one stretch of requests; a row pools its rounds."""

    seconds: float
    calls: list[Call]
    stopped_by_time: bool
    batch: tuple[float, float] | None  # (sum, count) deltas of texttune's batch-size histogram
    others_ticks: int | None  # CPU ticks of every process but the servers and this script


async def run_round(live: Live, *, side: str, concurrency: int, count: int, prompts: list[str], offset: int,
                    args: argparse.Namespace, pids: list[int]) -> Round:
    """``concurrency`` clients send ``count`` requests back to back (none started after the time budget)."""
    stream = SIDES[side][1]
    calls: list[Call] = []
    issued = 0
    texttune = live.name != "baseline"
    batch_before = await batch_counters(live.client) if texttune else None
    cpu_before = cpu_ticks(*pids)
    started = time.perf_counter()
    deadline = started + args.max_seconds

    async def one_client() -> None:
        nonlocal issued
        while issued < count and time.perf_counter() < deadline:
            index = (offset + issued) % len(prompts)
            issued += 1
            calls.append(await complete(live.client, side=side, concurrency=concurrency, model=live.model,
                                        prompts=prompts, index=index, max_tokens=args.max_tokens, stream=stream))

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    cpu_after = cpu_ticks(*pids)
    batch = None
    if batch_before is not None:
        batch_after = await batch_counters(live.client)
        batch = (batch_after[0] - batch_before[0], batch_after[1] - batch_before[1])
    others = None
    if cpu_before is not None and cpu_after is not None:
        others = max((cpu_after[0] - cpu_before[0]) - (cpu_after[1] - cpu_before[1]), 0)
    return Round(seconds, calls, issued < count, batch, others)


def side_result(side: str, concurrency: int, rounds: list[Round]) -> SideResult:
    """Pool a side's rounds at one concurrency into a row."""
    calls = [c for r in rounds for c in r.calls]
    seconds = sum(r.seconds for r in rounds)
    ok = [c for c in calls if c.status == 200]
    tokens = [c.completion_tokens or 0 for c in ok]
    batches = [r.batch for r in rounds if r.batch is not None]
    batch_count = sum(b[1] for b in batches)
    ticks = [r.others_ticks for r in rounds]
    others = None
    if all(t is not None for t in ticks) and seconds > 0:
        others = round(sum(ticks) / (os.sysconf("SC_CLK_TCK") * seconds * (os.cpu_count() or 1)) * 100, 1)
    return SideResult(
        side=side, concurrency=concurrency, requests=len(calls), ok=len(ok), seconds=round(seconds, 2),
        stopped_by="time" if any(r.stopped_by_time for r in rounds) else "count",
        requests_per_s=round(len(ok) / seconds, 3), tokens_per_s=round(sum(tokens) / seconds, 2),
        mean_completion_tokens=round(sum(tokens) / len(ok), 1) if ok else None,
        p50_ms=_ms([c.seconds for c in ok], 50), p95_ms=_ms([c.seconds for c in ok], 95),
        ttft_p50_ms=_ms([c.ttft for c in ok if c.ttft is not None], 50),
        ttft_p95_ms=_ms([c.ttft for c in ok if c.ttft is not None], 95),
        mean_chunks=round(sum(c.chunks for c in ok) / len(ok), 1) if SIDES[side][1] and ok else None,
        mean_batch=round(sum(b[0] for b in batches) / batch_count, 2) if batch_count else None,
        others_cpu_pct=others, errors=len(calls) - len(ok),
        error_samples=sorted({f"{c.status} {c.error}" for c in calls if c.status != 200})[:5])


async def start_server(stack: contextlib.AsyncExitStack, server: str, *, model_dir: Path, prompts: list[str],
                       args: argparse.Namespace, most_clients: int) -> tuple[Live, dict[str, object]]:
    """Start one server (stopped when ``stack`` closes), wait until ready, warm it up."""
    command = openai_server_command(server, model_dir, args.threads, request_timeout=3600)
    log = CACHE / f"openai-{server.replace(' ', '-')}.log"
    url, pid, shutdown = stack.enter_context(running_server(command, log=log, start_timeout=300))
    limits = httpx.Limits(max_connections=most_clients + 8, max_keepalive_connections=most_clients + 8)
    client = await stack.enter_async_context(
        httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(3600.0, connect=10.0), limits=limits))
    load_seconds = await wait_ready(client, timeout=300)
    model = model_dir.name
    if server != "baseline":
        model = (await client.get("/v1/models")).json()["data"][0]["id"]
    live = Live(server, client, pid, model)
    warm = time.perf_counter()
    for stream in (False, True, False):  # the first calls pay one-time costs (allocations, lazy imports)
        call = await complete(client, side="warm-up", concurrency=1, model=model, prompts=prompts, index=0,
                              max_tokens=args.max_tokens, stream=stream)
        if call.status != 200:
            raise SystemExit(f"{server}: warm-up request failed: {call.status} {call.error} (see {log})")
    print(f"  {server}: loaded in {load_seconds:.1f} s, warm-up {time.perf_counter() - warm:.1f} s", flush=True)
    # the shutdown dict is filled when the stack stops the server; uvicorn re-raises SIGTERM after a clean stop (-15)
    return live, {"server": server, "command": shlex.join(command), "load_seconds": round(load_seconds, 2),
                  "shutdown": shutdown, "log": str(log)}


def compare_texts(results: list[SideResult], calls: list[Call]) -> str:
    """Fill each row's ratio to the baseline (requests/s) and how many answers equal the reference text of their
    prompt: the baseline's (model.generate, batch of one), else texttune's unbatched whole answer."""
    reference: dict[int, str] = {}
    for source in ("baseline", "texttune unbatched"):
        for c in calls:
            if c.side == source and c.status == 200 and c.text is not None:
                reference.setdefault(c.prompt_index, c.text)
        if reference:
            break
    baseline_rps = {r.concurrency: r.requests_per_s for r in results if r.side == "baseline"}
    for r in results:
        if baseline_rps.get(r.concurrency):
            r.vs_baseline_rps = round(r.requests_per_s / baseline_rps[r.concurrency], 2)
        compared = [c for c in calls if c.side == r.side and c.concurrency == r.concurrency and c.status == 200
                    and c.prompt_index in reference]
        if compared:
            same = sum(c.text == reference[c.prompt_index] for c in compared)
            r.same_text_as_reference = f"{same}/{len(compared)}"
    return source if reference else "none"


def openai_markdown(results: list[SideResult]) -> str:
    """The table for docs/serve-load.md."""
    def show(value: object, digits: int = 0) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| side | clients | requests | req/s | req/s vs baseline | gen tok/s | p50 ms | p95 ms | TTFT p50 ms "
             "| TTFT p95 ms | mean batch | errors | same text | other CPU |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.side} | {r.concurrency} | {r.requests} | {r.requests_per_s:.2f} | {show(r.vs_baseline_rps, 2)} "
                     f"| {r.tokens_per_s:.1f} | {show(r.p50_ms)} | {show(r.p95_ms)} | {show(r.ttft_p50_ms)} "
                     f"| {show(r.ttft_p95_ms)} | {show(r.mean_batch, 2)} | {r.errors} | {show(r.same_text_as_reference)} "
                     f"| {show(r.others_cpu_pct)}% |")
    return "\n".join(lines)


async def openai_main_async(args: argparse.Namespace) -> dict[str, object]:
    """Start every server once (one at a time), then at each concurrency run every side in turn, in rounds of
    alternating order (forward, backward, ...): the machine's load drifts, and this spreads it over the sides."""
    before = machine()
    source = provenance()  # before the servers start: they run the working tree as it is now
    started = time.perf_counter()
    CACHE.mkdir(parents=True, exist_ok=True)
    model_dir = prepare_causal_lm(args)
    prompts = load_prompts(model_dir, count=args.prompts, min_tokens=args.min_tokens, max_tokens=args.max_tokens_prompt)
    results: list[SideResult] = []
    calls: list[Call] = []
    servers: list[dict[str, object]] = []
    skipped: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        live: dict[str, Live] = {}
        for server in (s for s in OPENAI_SERVERS if any(SIDES[side][0] == s for side in args.side_names)):
            print(f"{server}: starting on {model_dir}", flush=True)
            live[server], info = await start_server(stack, server, model_dir=model_dir, prompts=prompts, args=args,
                                                    most_clients=max(c for c, _ in args.level_pairs))
            servers.append(info)
        pids = [server.pid for server in live.values()]
        load_started = time.perf_counter()
        for concurrency, count in args.level_pairs:
            rounds = max(1, min(args.rounds, count // concurrency))
            sizes = [count // rounds + (i < count % rounds) for i in range(rounds)]
            sides = [side for side in args.side_names if (concurrency, side) not in args.drops]
            done: dict[str, list[Round]] = {side: [] for side in sides}
            for number, size in enumerate(sizes):
                order = sides if number % 2 == 0 else sides[::-1]
                for side in order:
                    if time.perf_counter() - load_started > args.budget:
                        skipped.append(f"{concurrency}:{side} round {number + 1}/{rounds}")
                        print(f"  {concurrency} clients, round {number + 1}/{rounds}, {side}: skipped (over the "
                              f"{args.budget:g} s budget)", flush=True)
                        continue
                    part = await run_round(live[SIDES[side][0]], side=side, concurrency=concurrency, count=size,
                                           prompts=prompts, offset=sum(sizes[:number]), args=args, pids=pids)
                    ok = sum(c.status == 200 for c in part.calls)
                    print(f"  {concurrency} clients, round {number + 1}/{rounds}, {side}: {ok}/{len(part.calls)} ok in "
                          f"{part.seconds:.1f} s", flush=True)
                    done[side].append(part)
            for side in (side for side in sides if done[side]):
                results.append(side_result(side, concurrency, done[side]))
                calls.extend(c for r in done[side] for c in r.calls)
                r = results[-1]
                print(f"  = {side}, {concurrency} clients: {r.requests_per_s} req/s, {r.tokens_per_s} tok/s, p50 "
                      f"{r.p50_ms} ms, TTFT p50 {r.ttft_p50_ms} ms, other CPU {r.others_cpu_pct}%", flush=True)
    for info in servers:
        if info["shutdown"].get("returncode") not in (0, -signal.SIGTERM):  # type: ignore[union-attr]
            print(f"  ! {info['server']} exited with {info['shutdown']} after SIGTERM (see {info['log']})", file=sys.stderr)
    reference = compare_texts(results, calls)
    after = machine()
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    print("\n" + openai_markdown(results) + "\n")
    for r in results:
        for sample in r.error_samples:
            print(f"errors ({r.side}, {r.concurrency} clients): {sample}")
    dropped = sorted(f"{c}:{side}" for c, side in args.drops)
    if dropped or skipped:
        print(f"Left out: {', '.join(dropped) or 'none'} (--drop); skipped over the budget: {', '.join(skipped) or 'none'}.")
    print(f"Machine: {before['cpu']}, {before['cores']} cores; servers with {args.threads} torch threads, all started, "
          f"one loaded at a time; load generator on the same machine. Load average before {before['load_average']}, after "
          f"{after['load_average']}. {len(prompts)} prompts, max_tokens {args.max_tokens}, greedy; same text: answers "
          f"equal to the {reference} answer of their prompt. {time.perf_counter() - started:.0f} s in all.")
    return {**source, "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": command, "machine": before, "load_average_after": after["load_average"],
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),  # the servers inherit this environment
            "model_dir": str(model_dir),
            "server_threads": args.threads, "max_tokens": args.max_tokens, "levels": args.levels, "rounds": args.rounds,
            "max_seconds_per_round": args.max_seconds, "budget_seconds": args.budget, "dropped": dropped,
            "skipped": skipped, "reference_for_same_text": reference, "prompts": prompts,
            "seconds": round(time.perf_counter() - started, 1), "servers": servers,
            "results": [asdict(r) for r in results], "calls": [asdict(c) for c in calls]}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--openai" in argv:
        openai_args = parse_openai_args(argv)
        summary = asyncio.run(openai_main_async(openai_args))
        openai_args.out.parent.mkdir(parents=True, exist_ok=True)
        openai_args.out.write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {openai_args.out}")
        return 0
    args = parse_args(argv)
    if (summary := asyncio.run(main_async(args))) and args.out is not None:
        args.out.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
