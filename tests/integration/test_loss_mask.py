"""The loss-mask audit (texttune/tasks/loss_mask.py): what it counts on real encodings, and the faults it catches.

The faults are the ones fine-tuning tools ship silently: every label masked (template mismatch, a
prompt that fills the length), EOS masked by a collator that masks the pad id when pad = EOS,
labels shifted against their inputs. Each is planted in a collate function and must be caught.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from texttune import Summarization
from texttune.errors import ConfigError
from texttune.runs.report_data import data_checks_section
from texttune.tasks import loss_mask
from texttune.tasks.base import pad_batch
from texttune.tasks.prompting import IGNORE, PromptFormat

FAST = {"baselines": False, "progress_bar": False, "tensorboard": False, "samples_per_eval": 0}
PAIRS = [(f"The package number {i} reads configuration files from disk and checks them.", f"configuration reader {i}")
         for i in range(12)]


class Collating:
    """A task as the audit sees it: ``collate``, with an optional fault planted after padding."""

    def __init__(self, pad_id: int, fault: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.pad_id, self.fault = pad_id, fault

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = pad_batch(features, pad_token_id=self.pad_id)
        if self.fault is not None:
            self.fault(batch)
        return batch


@pytest.fixture(scope="module")
def llama(tiny_model_dir: Callable[[str], Path]) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir("llama"))


def _features(tok: Any, *, family: str = "causal", max_target_length: int = 64) -> list[dict[str, Any]]:
    fmt = PromptFormat(tokenizer=tok, family=family, prefix="Summarize.")
    out = []
    for text, target in PAIRS:
        e = fmt.encode(text, target, max_source_length=64, max_target_length=max_target_length)
        out.append({"input_ids": e.input_ids, "labels": e.labels})
    return out


def test_decoder_only_prompts_train_the_target_and_eos_only(llama: Any) -> None:
    features = _features(llama)
    found = loss_mask.audit(Collating(llama.eos_token_id), features, stop_ids={llama.eos_token_id}, decoder_only=True)
    # Counted independently: labels that are not -100, and every real token of the sequences.
    expected_loss = sum(sum(1 for x in f["labels"] if x != IGNORE) for f in features)
    assert found["loss_tokens"] == expected_loss
    assert found["tokens"] == sum(len(f["input_ids"]) for f in features)
    assert 0 < found["loss_share"] < 0.5  # the prompt is most of each sequence
    assert found["rows_without_loss"]["count"] == found["stop_token_not_trained"]["count"] == 0
    assert found["labels_not_inputs"]["count"] == 0
    loss_mask.enforce(found, source="train.jsonl")  # nothing to refuse


def test_eos_masked_with_the_padding_is_caught(llama: Any, caplog: Any) -> None:
    """pad = EOS and a collator that masks labels by the pad id: the classic "never learns to stop"."""
    eos = llama.eos_token_id

    def mask_pad_ids(batch: dict[str, Any]) -> None:
        batch["labels"][batch["input_ids"] == eos] = IGNORE

    found = loss_mask.audit(Collating(eos, mask_pad_ids), _features(llama), stop_ids={eos}, decoder_only=True)
    assert found["stop_token_not_trained"]["count"] == len(PAIRS)
    assert found["stop_token_not_trained"]["rows"] == list(range(len(PAIRS)))
    with caplog.at_level(logging.WARNING, logger="texttune"):
        loss_mask.enforce(found, source="train.jsonl", lines=lambda i: f"train.jsonl line {i + 1}")
    assert "no stop token" in caplog.text and "train.jsonl line 1" in caplog.text


def test_every_label_masked_is_refused_before_training(llama: Any) -> None:
    def mask_all(batch: dict[str, Any]) -> None:
        batch["labels"][:] = IGNORE

    found = loss_mask.audit(Collating(llama.eos_token_id, mask_all), _features(llama), stop_ids={llama.eos_token_id},
                            decoder_only=True)
    assert found["loss_tokens"] == 0 and found["rows_without_loss"]["count"] == len(PAIRS)
    with pytest.raises(ConfigError, match=r"train.jsonl: no token carries loss .*train.jsonl line 1"):
        loss_mask.enforce(found, source="train.jsonl", lines=lambda i: f"train.jsonl line {i + 1}")


def test_labels_shifted_against_their_inputs_are_refused(llama: Any) -> None:
    def shift(batch: dict[str, Any]) -> None:  # labels pre-shifted by hand, then shifted again by the model
        labels = batch["labels"]
        labels[:, :-1] = labels[:, 1:].clone()
        labels[:, -1] = IGNORE

    found = loss_mask.audit(Collating(llama.eos_token_id, shift), _features(llama), stop_ids={llama.eos_token_id},
                            decoder_only=True)
    assert found["labels_not_inputs"]["count"] == len(PAIRS)
    with pytest.raises(ConfigError, match="misaligned"):
        loss_mask.enforce(found, source="train.jsonl")


def test_a_row_whose_target_is_cut_entirely_is_counted(llama: Any) -> None:
    features = _features(llama)
    features[3] = {**features[3], "labels": [IGNORE] * len(features[3]["labels"])}
    found = loss_mask.audit(Collating(llama.eos_token_id), features, stop_ids={llama.eos_token_id}, decoder_only=True)
    assert found["rows_without_loss"] == {"count": 1, "rate": round(1 / len(PAIRS), 6), "rows": [3]}


def test_encoder_decoder_targets_end_with_eos(tiny_model_dir: Callable[[str], Path]) -> None:
    from transformers import AutoTokenizer

    t5 = AutoTokenizer.from_pretrained(tiny_model_dir("t5"))
    features = _features(t5, family="seq2seq")
    found = loss_mask.audit(Collating(t5.pad_token_id), features, stop_ids={t5.eos_token_id}, decoder_only=False)
    assert found["loss_tokens"] == found["tokens"] == sum(len(f["labels"]) for f in features)
    assert found["stop_token_not_trained"]["count"] == 0


def test_a_run_records_the_audit(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    inputs, targets = zip(*PAIRS)
    task = Summarization(backbone=str(tiny_model_dir("llama")), options=FAST)
    result = task.fit(inputs=list(inputs), targets=list(targets), output_dir=tmp_path / "run", max_steps=1, batch_size=4)
    found = json.loads((result.run_dir / "data_report.json").read_text())["loss_mask"]
    assert found["decoder_only"] and found["rows_checked"] > 0 and found["loss_tokens"] > 0
    assert found["stop_token_not_trained"]["count"] == 0 and found["labels_not_inputs"]["count"] == 0
    assert "Loss mask" in str(data_checks_section(result.run_dir))
