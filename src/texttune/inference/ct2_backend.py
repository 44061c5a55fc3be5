"""The CTranslate2 backend: a converted model that generates like ``model.generate`` does, faster on CPU.

:class:`CTranslate2Model` stands where a transformers model would (tasks call
``generate_texts`` with it), keeping the transformers config and generation
config so tasks, the server and the option mapping (``ct2_options.py``) see the
same special tokens. Encoder-decoder models run on ``ctranslate2.Translator``,
decoder-only ones on ``ctranslate2.Generator``, with one worker per core (see
:func:`worker_threads`); every batch is submitted before any is waited for, so
both workers stay busy.

Why decoder-only batches are split by prompt length: CTranslate2 feeds a batch's
prompts at once only up to the *shortest* prompt, and the rest of each longer
prompt one token per decoding step (it has no left padding). A batch of 16 Debian
prompts of 151-524 tokens then costs 373 extra full-batch steps before the
64 new tokens. :func:`length_groups` splits each batch where that waste costs more
than the smaller batches lose (decoding is memory-bound: a step of 16 examples
costs about 3x a step of one here, not 16x).
"""

from __future__ import annotations

import json
import logging
import os
import queue
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from texttune.config import GenerationConfig
from texttune.errors import BackboneError, ConfigError
from texttune.inference.backends import BatchGenerate, BatchResult, GenerationBackend, OnToken, TokenBatch, special_ids
from texttune.inference.ct2_options import DecodingPlan, effective_config, plan_decoding
from texttune.inference.device import parse_device

log = logging.getLogger("texttune.inference")

INSTALL_HINT = "pip install 'texttune[ct2]'"
#: Cost of one more example in a decoding step, relative to the step's fixed cost (weights read from
#: memory). Measured for SmolLM2-135M int8 on 2 AMD EPYC cores: 35 ms per step at batch 1, 67 at batch 8.
EXAMPLE_STEP_COST = {"cpu": 0.15, "cuda": 0.02}
_VOCABULARY_FILES = ("target_vocabulary", "shared_vocabulary", "vocabulary")


def require_ctranslate2() -> ModuleType:
    """The ``ctranslate2`` module, or one line saying how to install it."""
    try:
        import ctranslate2
    except ImportError:
        raise BackboneError(f"the ctranslate2 backend needs the ctranslate2 package: {INSTALL_HINT}") from None
    return ctranslate2


def default_device() -> str:
    """``cuda`` when CTranslate2 sees a GPU, else ``cpu`` (hide GPUs with CUDA_VISIBLE_DEVICES= to force the CPU)."""
    return "cuda" if require_ctranslate2().get_cuda_device_count() > 0 else "cpu"


def ct2_device(spec: str | None) -> tuple[str, int]:
    """CTranslate2's (device, device_index) for a ``--device`` value: ``cuda:N`` -> ("cuda", N); auto as :func:`default_device`.

    The GPUs counted are CTranslate2's own (its CUDA build), not torch's. MPS is refused:
    CTranslate2 has no Apple GPU support.
    """
    kind, index = parse_device(spec)
    if kind == "mps":
        raise ConfigError("--device mps: CTranslate2 cannot run on Apple GPUs (MPS); use --device cpu, or "
                          "--backend transformers to run on MPS")
    if kind == "auto":
        return default_device(), 0
    if kind == "cpu":
        return "cpu", 0
    count = require_ctranslate2().get_cuda_device_count()
    if count == 0:
        raise ConfigError(f"--device {spec}: CTranslate2 sees no CUDA GPU (a CPU-only build, no driver, or none visible "
                          "in CUDA_VISIBLE_DEVICES); use --device cpu")
    if (index or 0) >= count:
        raise ConfigError(f"--device {spec}: CTranslate2 sees {count} CUDA device{'' if count == 1 else 's'} "
                          f"({', '.join(f'cuda:{i}' for i in range(count))})")
    return "cuda", index or 0


def default_compute_type(device: str) -> str:
    """int8 on CPU (~4x less memory traffic than float32, the bottleneck), float16 on GPU."""
    return "float16" if device == "cuda" else "int8"


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_threads(device: str, threads: int | None) -> tuple[int, int]:
    """(inter_threads, intra_threads): on CPU, ``threads`` workers of one thread each (default: one per core).

    Why workers and not intra-op threads: decoding a small model is a chain of small
    matrix products, and on 2 cores one worker with 2 OpenMP threads was slower than one
    thread (SmolLM2-135M int8, batch 16: 108 s vs 74 s for 64 summaries), while two
    one-thread workers, each decoding its own batch, took 40 s.
    """
    if device != "cpu":
        return 1, 0  # one GPU: CTranslate2's default threading
    return (threads if threads is not None else cpu_count()), 1


def length_groups(lengths: Sequence[int], steps: int, *, example_cost: float) -> list[list[int]]:
    """Split a batch (indices into ``lengths``) into groups of similar prompt length, cheapest plan first.

    Cost of a group = (its longest - its shortest prompt + ``steps``) decoding steps,
    each costing ``1 + example_cost * group size``; an exact split by dynamic programming
    over the length-sorted batch (n <= a few dozen, so O(n^2) is nothing).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    sizes = [lengths[i] for i in order]
    best = [0.0] + [float("inf")] * len(sizes)
    cut = [0] * (len(sizes) + 1)
    for end in range(1, len(sizes) + 1):
        for start in range(end):
            cost = best[start] + (sizes[start] - sizes[end - 1] + steps) * (1 + example_cost * (end - start))
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups: list[list[int]] = []
    end = len(sizes)
    while end > 0:
        groups.append(order[cut[end]:end])
        end = cut[end]
    return groups[::-1]


def read_vocabulary(directory: Path) -> set[str]:
    """The target-side tokens of a converted model (what it can generate)."""
    for stem in _VOCABULARY_FILES:
        if (directory / f"{stem}.json").is_file():
            return set(json.loads((directory / f"{stem}.json").read_text(encoding="utf-8")))
        if (directory / f"{stem}.txt").is_file():
            return set((directory / f"{stem}.txt").read_text(encoding="utf-8").split("\n"))
    raise BackboneError(f"{directory}: no CTranslate2 vocabulary file; convert the model again")


class CTranslate2Model(GenerationBackend):
    """A CTranslate2 model with the transformers ``config`` and ``generation_config`` it was converted from."""

    name: ClassVar[str] = "ctranslate2"

    def __init__(self, directory: str | Path, *, config: Any, generation_config: Any, compute_type: str = "default",
                 threads: int | None = None, device: str | None = None, device_index: int = 0) -> None:
        ct2 = require_ctranslate2()
        self.directory = Path(directory)
        self.config = config
        self.generation_config = generation_config
        self.device = device or default_device()
        self.device_index = device_index
        self.encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
        engine = ct2.Translator if self.encoder_decoder else ct2.Generator
        self.workers, intra = worker_threads(self.device, threads)
        try:
            self.engine = engine(str(self.directory), device=self.device, device_index=device_index,
                                 compute_type=compute_type, intra_threads=intra, inter_threads=self.workers)
        except (RuntimeError, ValueError) as exc:
            raise BackboneError(f"{self.directory}: CTranslate2 cannot load this model with compute type "
                                f"{compute_type!r} on {self.device_name} ({str(exc).splitlines()[0]})") from None
        self.compute_type: str = self.engine.compute_type
        self.vocabulary = read_vocabulary(self.directory)
        self._warned: set[str] = set()

    def check_decoder_start(self, tokenizer: Any) -> None:
        """Refuse a model whose generation config starts decoding on another token than the converted one."""
        start = getattr(self.generation_config, "decoder_start_token_id", None)
        converted = json.loads((self.directory / "config.json").read_text(encoding="utf-8")).get("decoder_start_token")
        if not self.encoder_decoder or start is None or converted is None or self.config.model_type == "marian":
            return  # Marian's decoder starts from a zero embedding whatever the token
        expected = tokenizer.convert_ids_to_tokens(int(start))
        if expected != converted:
            raise BackboneError(f"{self.directory}: generation starts with {expected!r} but the CTranslate2 model with "
                                f"{converted!r}; convert it again from the model directory")

    @property
    def device_name(self) -> str:
        """``cpu`` or ``cuda:N``: the device as ``--device`` writes it."""
        return self.device if self.device == "cpu" else f"{self.device}:{self.device_index}"

    def info(self) -> dict[str, Any]:
        """What the server reports about the backend (no ``dtype``: CTranslate2's types are its ``compute_type``)."""
        return {"name": self.name, "compute_type": self.compute_type, "device": self.device_name, "threads": self.workers,
                "model": str(self.directory)}

    def _plan(self, tokenizer: Any, options: GenerationConfig, forced_bos_token_id: int | None) -> DecodingPlan:
        pad_id, eos = special_ids(tokenizer, self.generation_config)
        config = effective_config(self.generation_config, options, pad_token_id=pad_id, eos_token_id=eos,
                                  forced_bos_token_id=forced_bos_token_id)
        plan = plan_decoding(config, tokenizer, decoder_only=not self.encoder_decoder, vocabulary=self.vocabulary)
        for warning in plan.warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                log.warning(warning)
        return plan

    @contextmanager
    def generation(self, tokenizer: Any, *, decoder_only: bool, options: GenerationConfig,
                   forced_bos_token_id: int | None = None) -> Iterator[BatchGenerate]:
        plan = self._plan(tokenizer, options, forced_bos_token_id)
        submit = self._translate if self.encoder_decoder else self._generate

        def generate(batch: Sequence[list[int]]) -> BatchResult:
            if plan.steps == 0:
                return lambda: [[] for _ in batch]
            collect = submit([tokenizer.convert_ids_to_tokens(list(ids)) for ids in batch], plan)
            return lambda: [tokenizer.convert_tokens_to_ids(out) for out in collect()]

        yield generate

    @contextmanager
    def token_generation(self, tokenizer: Any, *, decoder_only: bool, options: GenerationConfig,
                         forced_bos_token_id: int | None = None, seed: int | None = None) -> Iterator[TokenBatch]:
        """CTranslate2's step callback reports each token. A generator stops one row when asked; a translator can only
        stop the whole batch, so it stops once every row is done."""
        plan = self._plan(tokenizer, options, forced_bos_token_id)
        if plan.kwargs["beam_size"] > 1:
            raise ConfigError("token streaming needs greedy decoding or sampling (num_beams 1)")

        def run(batch: Sequence[list[int]], on_token: OnToken) -> None:
            if plan.steps == 0:
                return
            if seed is not None:
                require_ctranslate2().set_random_seed(seed)
            tokens = [tokenizer.convert_ids_to_tokens(list(ids)) for ids in batch]
            # CTranslate2 calls ``step`` on its own threads: it only hands each token over (as CTranslate2's own
            # generate_tokens does) and reads the rows' stop flags; the rows' work (decoding, stop strings, the
            # callers' sinks) runs here, on the model thread. Running it on CTranslate2's threads crashed the
            # process later under pytest's output capture.
            tokens_out: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
            done = [False] * len(batch)

            def step(result: Any) -> bool:
                tokens_out.put((result.batch_id, result.token_id))
                return done[result.batch_id] if not self.encoder_decoder else all(done)

            if self.encoder_decoder:
                prefix = [list(plan.prefix) for _ in tokens] if plan.prefix else None
                pending = self.engine.translate_batch(tokens, target_prefix=prefix, callback=step, asynchronous=True,
                                                      **plan.kwargs)
            else:
                pending = self.engine.generate_batch(tokens, callback=step, asynchronous=True, **plan.kwargs)
            while True:
                finished = all(r.done() for r in pending)  # before draining: no token can follow a finished job
                try:
                    while True:
                        row, token = tokens_out.get(timeout=0.005) if not finished else tokens_out.get_nowait()
                        if not done[row]:
                            done[row] = bool(on_token(row, int(token)))
                except queue.Empty:
                    pass
                if finished:
                    break
            for result in pending:
                result.result()  # raises what CTranslate2 raised

        yield run

    def _translate(self, tokens: list[list[str]], plan: DecodingPlan) -> Callable[[], list[list[str]]]:
        prefix = [list(plan.prefix) for _ in tokens] if plan.prefix else None
        results = self.engine.translate_batch(tokens, target_prefix=prefix, asynchronous=True, **plan.kwargs)
        return lambda: [r.result().hypotheses[0] for r in results]  # a forced prefix stays, as transformers returns it

    def _generate(self, tokens: list[list[str]], plan: DecodingPlan) -> Callable[[], list[list[str]]]:
        groups = length_groups([len(t) for t in tokens], plan.steps, example_cost=EXAMPLE_STEP_COST.get(self.device, 0.15))
        pending = [(group, self.engine.generate_batch([tokens[i] for i in group], asynchronous=True, **plan.kwargs))
                   for group in groups]

        def collect() -> list[list[str]]:
            outputs: list[list[str]] = [[] for _ in tokens]
            for group, results in pending:
                for i, result in zip(group, results):
                    outputs[i] = result.result().sequences[0]
            return outputs

        return collect


def open_model(directory: Path, *, config: Any, generation_config: Any, tokenizer: Any, compute_type: str,
               threads: int | None, device: tuple[str, int] | None = None) -> CTranslate2Model:
    """Load a converted model and check it decodes like the transformers model it came from.

    ``device``: (device, index) from :func:`ct2_device`; default: :func:`default_device`, index 0.
    """
    where, index = device or (default_device(), 0)
    model = CTranslate2Model(directory, config=config, generation_config=generation_config, compute_type=compute_type,
                             threads=threads, device=where, device_index=index)
    model.check_decoder_start(tokenizer)
    return model
