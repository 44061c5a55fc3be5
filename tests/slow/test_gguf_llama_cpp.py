"""Slow tier: a fine-tuned SmolLM2 exported to GGUF answers in llama.cpp as it does in texttune.

Reuses the session fine-tune of test_real_backbone.py (``smollm2_debian`` in conftest.py: SmolLM2-135M
on Debian descriptions), exports it at f32, f16 and q8_0, and runs 20 validation rows through
llama.cpp (llama-cpp-python, the ``gguf`` extra, which `make install` builds in CI) exactly as the
export's README says: the prompt layout from the file's metadata, greedy decoding. The prompt token
ids must equal texttune's, the greedy outputs must be identical on at least 18 of 20 rows at f32
and f16, and at q8_0 ROUGE-L against the references must stay within 1 point of texttune's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.slow
ROWS = 20


def _llama_outputs(llm: Any, documents: list[str], *, stops: list[str], max_tokens: int) -> tuple[list[str], float]:
    """Greedy completions of each document in the export's prompt layout, and generated tokens per second."""
    template = llm.metadata["texttune.prompt_template"]
    outputs, tokens, started = [], 0, time.perf_counter()
    for document in documents:
        out = llm(template.replace("{input}", document), max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.0,
                  stop=stops)
        outputs.append(out["choices"][0]["text"].strip())
        tokens += out["usage"]["completion_tokens"]
    return outputs, tokens / (time.perf_counter() - started)


def test_smollm2_gguf_in_llama_cpp_matches_texttune(llama_cpp: ModuleType, smollm2_debian: Any, tmp_path: Path) -> None:
    import texttune
    from texttune.metrics.text import rouge

    rows = smollm2_debian.validation[:ROWS]
    documents, references = [r["document"] for r in rows], [r["summary"] for r in rows]
    model = texttune.load(smollm2_debian.run_dir)
    expected = [text.strip() for text in model.predict(documents)]
    tokenizer = model._backbone.tokenizer
    report: dict[str, Any] = {"texttune_rougeL": rouge(expected, references)["rougeL"]}
    for quantization in ("f32", "f16", "q8_0"):
        out = texttune.export(smollm2_debian.run_dir, output=tmp_path / quantization, format="gguf",
                              quantization=quantization)
        meta = json.loads((out / "texttune.json").read_text())
        llm = llama_cpp.Llama(str(out / "model.gguf"), n_ctx=512, n_threads=1, verbose=False)  # spinning threads crawl on a shared CPU
        template = llm.metadata["texttune.prompt_template"]
        assert template.count("{input}") == 1 and meta["gguf"]["prompt_template"] == template
        for document in documents:  # llama.cpp reads the same prompt tokens as texttune's (chat template, no BOS)
            assert len(tokenizer(document, add_special_tokens=False)["input_ids"]) <= 192  # not cut by max_source_length
            prompt = template.replace("{input}", document)
            ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            assert llm.tokenize(prompt.encode(), add_bos=llm.metadata.get("tokenizer.ggml.add_bos_token") == "true",
                                special=True) == ids
        got, speed = _llama_outputs(llm, documents, stops=["<|im_end|>"], max_tokens=40)
        same = sum(a == b for a, b in zip(got, expected))
        report[quantization] = {"identical": same, "rougeL": rouge(got, references)["rougeL"], "tokens_per_s": round(speed)}
        if quantization in ("f32", "f16"):
            assert same >= 18, (quantization, same, list(zip(got, expected)))
        else:
            assert abs(report[quantization]["rougeL"] - report["texttune_rougeL"]) <= 1.0, report
    print("gguf llama.cpp vs texttune:", json.dumps(report))
