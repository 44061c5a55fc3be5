"""Slow tier: a fine-tuned SmolLM2 exported to GGUF answers in llama.cpp as it does in texttune.

Reuses the session fine-tune of test_real_backbone.py (``smollm2_debian`` in conftest.py: SmolLM2-135M
on Debian descriptions), exports it at f32, f16 and q8_0, and runs 20 validation rows through
llama.cpp (llama-cpp-python, the ``gguf`` extra, which `make install` builds in CI) exactly as the
export's README says: the prompt layout from the file's metadata, greedy decoding. The prompt token
ids must equal texttune's, the greedy outputs must be identical on at least 18 of 20 rows at f32
and f16, and at q8_0 ROUGE-L against the references must not be significantly below texttune's (the
paired bootstrap of metrics/bootstrap.py, one-sided p < 0.05). A fixed 1-point margin on 20 rows was
noise: one changed output moves a 20-row mean by points (q8_0 was +0.6 on one fine-tune and -2.2 on
the next, with 14 of 20 outputs identical; int8 CTranslate2 measured on 512 rows is 0.3 below float32
while its 48-row samples swung by up to 7 points, docs/inference.md).
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
    from texttune.metrics.bootstrap import paired_test
    from texttune.metrics.registry import higher_is_better
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
            # texttune against q8_0: "significant" would mean texttune is measurably better, i.e. q8_0 worse
            paired = paired_test(list(zip(expected, references)), list(zip(got, references)), direction=higher_is_better,
                                 score=lambda rows: rouge([p for p, _ in rows], [r for _, r in rows]), resamples=1000)
            report[quantization]["texttune_minus_q8_0"] = paired["rougeL"]
            assert not paired["rougeL"]["significant"], report
    print("gguf llama.cpp vs texttune:", json.dumps(report))
