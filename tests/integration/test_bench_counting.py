"""benchmarks/vs_hf_trainer.py compares generation speeds in generated tokens per second; its count
(``bench_sides.generated_tokens``, from the output strings every side returns) must equal the decoding steps
``generate`` really ran, on decoder-only and encoder-decoder models."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def bench_sides() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("bench_sides")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _steps(ids: list[int], *, eos: int, max_new_tokens: int) -> int:
    """Decoding steps of one generated row: up to and including its first end-of-sequence token."""
    return ids.index(eos) + 1 if eos in ids else min(len(ids), max_new_tokens)


@pytest.mark.parametrize("kind", ["llama", "t5"])
def test_counted_tokens_are_the_decoding_steps(bench_sides: ModuleType, tiny_model_dir: Callable[[str], Path],
                                               kind: str) -> None:
    """``generate`` is steered to emit known summaries token by token, then EOS; at max_new_tokens 8 the longer
    ones are cut. The count from the decoded strings must equal the steps generate ran."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    directory = tiny_model_dir(kind)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = (AutoModelForCausalLM if kind == "llama" else AutoModelForSeq2SeqLM).from_pretrained(directory).eval()
    eos = model.generation_config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    rows = [json.loads(line) for line in (DATA / "summarization.jsonl").read_text(encoding="utf-8").splitlines()[:10]]
    for max_new_tokens in (8, 64):
        decoded, steps, early = [], 0, 0
        for row in rows:
            target = tokenizer(row["summary"], add_special_tokens=False)["input_ids"]
            batch = tokenizer(row["document"][:200], return_tensors="pt")
            start = batch["input_ids"].shape[1] if kind == "llama" else 1  # t5: after the decoder start token

            def allowed(_: int, ids: torch.Tensor, target: list[int] = target, start: int = start) -> list[int]:
                step = ids.shape[-1] - start
                return [target[step]] if step < len(target) else [eos]

            with torch.no_grad():
                out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                     prefix_allowed_tokens_fn=allowed, pad_token_id=tokenizer.pad_token_id or eos)
            new = out[0, batch["input_ids"].shape[1]:] if kind == "llama" else out[0, 1:]
            steps += _steps(new.tolist(), eos=eos, max_new_tokens=max_new_tokens)
            early += eos in new.tolist()
            decoded.append(tokenizer.decode(new, skip_special_tokens=True).strip())
        assert early == (len(rows) if max_new_tokens == 64 else 0)  # 64: all stop at EOS; 8: all are cut
        assert bench_sides.generated_tokens(tokenizer, decoded, max_new_tokens=max_new_tokens) == steps, decoded
        record = bench_sides.generation_record("eval_generated", tokenizer, decoded, 2.0, max_new_tokens=max_new_tokens)
        assert record == {"eval_generated_tokens": steps, "eval_generated_tokens_per_row": round(steps / len(rows), 2),
                          "eval_generated_tokens_per_s": steps / 2.0}
