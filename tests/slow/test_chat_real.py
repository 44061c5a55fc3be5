"""Slow tier: chat fine-tuning of SmolLM2-135M-Instruct on conversations built from real data.

The conversations are constructed here, not shipped: from ../shared/datasets/summarization/debian-descriptions,
two-turn exchanges (user: the description and "How many words long is it?", assistant: the count; user: "Give its
one-line synopsis.", assistant: the synopsis), and from ../shared/datasets/question-generation/python-faq, one exchange
each (user: the FAQ question, assistant: its answer). Training takes the loss on every assistant turn; the score is
the last assistant turn of 24 held-out Debian conversations (the synopsis) against the zero-shot model. About 7
minutes on 2 shared CPU cores (one torch thread). Skipped when ../shared/datasets is absent.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"
DEBIAN = SHARED / "summarization" / "debian-descriptions"
FAQ = SHARED / "question-generation" / "python-faq" / "all.jsonl"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (DEBIAN.is_dir() and FAQ.is_file()), reason="../shared/datasets is not beside the checkout")]


def debian_conversations(path: Path, n: int, *, seed: int = 0, max_chars: int = 500) -> list[dict[str, Any]]:
    """Two-turn conversations from package descriptions: describe it, then give its synopsis."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if len(r["document"]) <= max_chars and r["summary"].strip()]
    random.Random(seed).shuffle(rows)
    out = []
    for r in rows[:n]:
        words = r["document"].split()
        out.append({"messages": [
            {"role": "user", "content": f"Here is a Debian package description:\n\n{' '.join(words)}\n\n"
                                        "How many words long is it?"},
            {"role": "assistant", "content": f"{len(words)} words."},
            {"role": "user", "content": "Give its one-line synopsis."},
            {"role": "assistant", "content": r["summary"].strip()}]})
    return out


def faq_conversations(path: Path, n: int, *, max_chars: int = 600) -> list[dict[str, Any]]:
    """One exchange per Python FAQ entry: the question, then its answer."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"messages": [{"role": "user", "content": r["question"]},
                          {"role": "assistant", "content": " ".join(r["answer_context"].split())}]}
            for r in rows if len(r["answer_context"]) <= max_chars][:n]


def test_smollm2_chat_fine_tuning_beats_zero_shot_on_the_last_reply(tmp_path: Path, one_torch_thread: None) -> None:
    from texttune import Chat, load

    train = debian_conversations(DEBIAN / "train.jsonl", 240) + faq_conversations(FAQ, 80)
    random.Random(1).shuffle(train)
    val = debian_conversations(DEBIAN / "validation.jsonl", 24)
    for name, rows in (("train", train), ("val", val)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    chat = Chat(backbone="smollm2-135m", options={
        "max_length": 320, "learning_rate": 1e-4, "warmup_ratio": 0.1, "max_new_tokens": 32, "progress_bar": False,
        "tensorboard": False, "bootstrap": 200})
    result = chat.fit(train=str(tmp_path / "train.jsonl"), validation=str(tmp_path / "val.jsonl"), max_steps=40,
                      batch_size=8, output_dir=tmp_path / "run")
    before, after = result.metrics["zero_shot"], result.metrics["fine_tuned"]
    # Measured: ROUGE-L 21.7 [16.7, 27.4] -> 37.0 [28.3, 45.8] (paired gain 15.3 [8.1, 22.9], p < 0.001),
    # perplexity on assistant tokens 34.2 -> 7.0, replies 18.5 -> 6.2 words; assert a fifth of the ROUGE-L gain.
    assert after["rougeL"] > before["rougeL"] + 3, (before["rougeL"], after["rougeL"])
    assert after["perplexity"] < before["perplexity"], (before["perplexity"], after["perplexity"])
    audit = json.loads((tmp_path / "run" / "data_report.json").read_text())["loss_mask"]
    assert audit["stop_token_not_trained"]["count"] == 0 and audit["rows_without_loss"]["count"] == 0
    history = val[0]["messages"][:-1]  # up to the last user turn
    reply = load(tmp_path / "run").predict([history])[0]
    assert reply.strip() and len(reply.split()) < 30  # the model stops at the end of its turn
