"""--packing end to end on the tiny Llama models: the same training as padded batches, recorded, refused where it
does not apply (the loss and gradient equality itself: tests/unit/test_packing.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from texttune import Chat, Summarization, TokenClassification
from texttune.errors import ConfigError

DATA = Path(__file__).resolve().parents[1] / "data"
QUIET = {"progress_bar": False, "tensorboard": False, "samples_per_eval": 0, "max_eval_samples": 4, "baselines": False,
         "seed": 3, "log_every_steps": 1}


def _jsonl(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _debian(tmp_path: Path, name: str, start: int, stop: int, *, short: bool = False) -> str:
    """Rows ``start:stop`` of the Debian summaries sample, as a file; ``short``: each document cut to between 2
    and 29 words, so that several examples fit one packed row."""
    lines = (DATA / "summarization.jsonl").read_text(encoding="utf-8").splitlines()[start:stop]
    if short:
        rows = [json.loads(line) for line in lines]
        lines = [json.dumps({**row, "document": " ".join(row["document"].split()[:2 + 7 * i % 28])})
                 for i, row in enumerate(rows)]
    return _jsonl(tmp_path / f"{name}.jsonl", lines)


def _fit(model: Any, tmp_path: Path, name: str, **data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """metrics.json with the logged losses added ("train_loss": one per step, "val_loss"), and the packing record."""
    from texttune.runs.plots import read_metrics_csv, series

    result = model.fit(output_dir=tmp_path / name, max_steps=3, batch_size=6, **data)
    environment = json.loads((result.run_dir / "environment.json").read_text())
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    logged = read_metrics_csv(result.run_dir / "logs" / "metrics.csv") or []
    return {**metrics, "train_loss": series(logged, "train_loss")[1], "val_loss": series(logged, "val_loss")[1]}, \
        environment["packing"]


def test_packed_and_padded_runs_train_the_same_model(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    """Three steps of summarization on the tiny Llama, packed and padded: the same examples and tokens trained,
    the same validation loss, and environment.json says which ran and why."""
    train = _debian(tmp_path, "train", 0, 18, short=True)
    validation = _debian(tmp_path, "validation", 18, 24, short=True)
    runs = {}
    for packing in (True, False):
        model = Summarization(backbone=str(tiny_model_dir("llama")), options={**QUIET, "packing": packing,
                                                                              "max_source_length": 96,
                                                                              "max_target_length": 32,
                                                                              "group_by_length": False})
        runs[packing] = _fit(model, tmp_path, f"packing-{packing}", train=train, validation=validation)
    (packed, packed_env), (padded, padded_env) = runs[True], runs[False]
    assert packed_env == {"enabled": True, "reason": "--packing given", "capacity": 96 + 32}
    assert padded_env["enabled"] is False and padded_env["reason"] == "--no-packing given"
    assert packed["timing"]["train_examples"] == padded["timing"]["train_examples"] == 18
    assert packed["timing"]["train_tokens"] == padded["timing"]["train_tokens"] > 0
    # The same batches and updates: each step's loss and the validation loss agree to float32 rounding.
    assert len(packed["train_loss"]) == 3 and len(packed["val_loss"]) == 1
    # Rows were really shared: less of the computed positions is padding than in the padded batches (in random
    # order: length grouping leaves batches so even that packing rarely computes fewer positions).
    assert packed["timing"]["train_padding"] < padded["timing"]["train_padding"], (packed["timing"], padded["timing"])
    assert packed["train_loss"] == pytest.approx(padded["train_loss"], abs=1e-4)
    assert packed["val_loss"] == pytest.approx(padded["val_loss"], abs=1e-4)


def test_the_default_is_recorded_with_its_reason(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    from test_chat import faq_conversations

    train = _jsonl(tmp_path / "chat.jsonl", [json.dumps(row) for row in faq_conversations()])
    chat = Chat(backbone=str(tiny_model_dir("llama-chat")), max_length=256, options=QUIET)
    _, environment = _fit(chat, tmp_path, "chat", train=train, validation=train)
    assert environment["capacity"] == 256 and environment["enabled"] is False  # CPU, SDPA: off by default
    assert "not faster than length-grouped batches" in environment["reason"]


@pytest.mark.parametrize("packing", [True, False])
def test_packing_is_refused_where_it_does_not_apply(tiny_model_dir: Callable[[str], Path], tmp_path: Path,
                                                    packing: bool) -> None:
    """An encoder-decoder summarizer and a token classifier have nothing to pack: either flag is refused in one
    line that names it, before training."""
    t5 = Summarization(backbone=str(tiny_model_dir("t5")), options={**QUIET, "packing": packing})
    flag = "--packing" if packing else "--no-packing"
    with pytest.raises(ConfigError, match=f"option 'packing' does not apply to summarization.*drop {flag}"):
        t5.fit(train=_debian(tmp_path, "t5", 0, 8), output_dir=tmp_path / "t5", max_steps=1)
    tagger = TokenClassification(backbone=str(tiny_model_dir("bert")), options={**QUIET, "packing": packing})
    with pytest.raises(ConfigError, match="option 'packing' does not apply to token-classification"):
        tagger.fit(train=str(DATA / "ner.jsonl"), output_dir=tmp_path / "ner", max_steps=1)
