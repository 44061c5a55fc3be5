"""Masked language modelling end to end on the tiny BERT: CLI, API, masking, reuse, bad input.

Why: domain adaptation is only useful if (1) perplexity is measured on the same
masked tokens before and after training and across runs, or "it went down"
means nothing; (2) whole-word masking really masks whole words; (3) the adapted
encoder is an ordinary checkpoint that token classification and QA can start
from; and (4) a text without a mask token, or a decoder backbone, is refused
with one line that says what to do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from texttune.cli.main import main
from run_files import assert_user_error, read_json, read_jsonl

DATA = Path(__file__).resolve().parents[1] / "data"
FAST = ["--max-steps", "2", "--batch-size", "4", "--no-progress-bar", "--max-length", "32"]

Cli = Callable[..., tuple[int, str, str]]


def documents() -> list[str]:
    return [json.loads(line)["document"] for line in (DATA / "summarization.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample documents as a plain .txt corpus (one document per line, blank lines between)."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n\n".join(d.replace("\n", " ") for d in documents()) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    out = tmp_path_factory.mktemp("mlm") / "run"
    code = main(["-q", "train", "masked-lm", "--backbone", str(tiny_model_dir("bert")), "--train-file", str(corpus),
                 "--output-dir", str(out), "--whole-word-masking", *FAST])
    assert code == 0
    return out


def test_train_reports_perplexity_before_and_after(run_dir: Path) -> None:
    metrics = read_json(run_dir / "metrics.json")
    for section in ("zero_shot", "fine_tuned"):
        assert set(metrics[section]) == {"perplexity", "loss"}
        assert metrics[section]["perplexity"] > 1
    stats = read_json(run_dir / "data_stats.json")
    assert stats["train"]["rows"] + stats["validation"]["rows"] == 40  # one row per non-empty line
    assert stats["train"]["chunks"] == stats["train"]["tokens"] // 32
    assert stats["train"]["dropped_tokens"] == stats["train"]["tokens"] % 32
    records = read_jsonl(run_dir / "predictions.jsonl")
    assert len(records) == stats["validation"]["chunks"]
    assert all("[MASK]" in r["text"] and r["scored_tokens"] > 0 for r in records[:1])
    meta = read_json(run_dir / "model" / "texttune.json")
    assert meta["task"] == "masked-lm" and meta["auto_class"] == "AutoModelForMaskedLM"
    assert meta["task_state"]["whole_word_masking"] is True and meta["task_state"]["max_length"] == 32


def test_evaluate_masks_once_so_results_repeat(run_dir: Path, corpus: Path, cli: Cli, tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    for path in (first, second):
        code, _, err = cli("-q", "evaluate", run_dir, "--data-file", corpus, "--metrics-file", path, "--max-eval-samples", "8")
        assert code == 0, err
    assert read_json(first) == read_json(second)
    assert set(read_json(first)) == {"perplexity", "loss"}


def test_zero_shot_perplexity_does_not_depend_on_the_run_seed(tiny_model_dir: Callable[[str], Path]) -> None:
    from texttune import MaskedLM

    data = {"text": documents()[:8]}
    scores = [MaskedLM(backbone=str(tiny_model_dir("bert")), max_length=32, options={"seed": seed}).evaluate(data)
              for seed in (1, 2)]
    assert scores[0] == scores[1]


def test_predict_fills_the_mask_with_top_k_candidates(run_dir: Path, cli: Cli, tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps({"text": "this package provides the [MASK] library"}) + "\n"
                      + json.dumps({"text": "a [MASK] tool for [MASK] files"}) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code, _, err = cli("-q", "predict", run_dir, "--input-file", inputs, "--output-file", out, "--top-k", "3")
    assert code == 0, err
    one, two = (r["prediction"]["candidates"] for r in read_jsonl(out))
    assert len(one) == 3 and all({"token_str", "score", "sequence"} <= set(c) for c in one)
    assert one[0]["score"] >= one[1]["score"] >= one[2]["score"]
    assert "[MASK]" not in one[0]["sequence"]
    assert len(two) == 2 and all(len(per_mask) == 3 for per_mask in two)  # one list per mask


def test_text_without_mask_token_is_refused(run_dir: Path, cli: Cli, tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps({"text": "a [MASK] here"}) + "\n" + json.dumps({"text": "no mask in this one"}) + "\n")
    code, _, err = cli("-q", "predict", run_dir, "--input-file", inputs)
    assert_user_error(code, err, "input 2", "no mask in this one", "[MASK]")


def test_adapted_encoder_is_a_backbone_for_token_classification(run_dir: Path) -> None:
    import torch
    from transformers import AutoModelForMaskedLM, AutoModelForTokenClassification, AutoTokenizer

    from texttune.backbones import load_backbone

    mlm = AutoModelForMaskedLM.from_pretrained(run_dir / "model")
    tagger = AutoModelForTokenClassification.from_pretrained(run_dir / "model", num_labels=3)
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "model")
    # the adapted encoder weights carry over; only the tagging head is new
    assert torch.equal(tagger.bert.encoder.layer[0].attention.self.query.weight, mlm.bert.encoder.layer[0].attention.self.query.weight)
    logits = tagger(**tokenizer(["a small test"], return_tensors="pt")).logits
    assert logits.shape[-1] == 3
    backbone = load_backbone(str(run_dir))  # a run directory works as --backbone
    assert backbone.family == "encoder" and backbone.source.endswith("model")


def test_whole_word_masking_masks_every_piece_of_a_word(tiny_model_dir: Callable[[str], Path]) -> None:
    import torch

    from texttune.backbones import load_backbone
    from texttune.config import RunConfig
    from texttune.data import from_lists
    from texttune.tasks.masked_lm import MaskedLMOptions, MaskedLMTask

    torch.manual_seed(0)
    task = MaskedLMTask(MaskedLMOptions(whole_word_masking=True, mlm_probability=0.4, max_length=32))
    task.bind(load_backbone(str(tiny_model_dir("bert"))), RunConfig(task="masked-lm"))
    features, _ = task.encode(from_lists({"text": documents()[:10]}).rows)
    batch = task.collate([features[i] for i in range(len(features))])
    masked = batch["labels"] != -100  # (B, T)
    assert masked.any()
    assert (batch["input_ids"][masked] == task.tokenizer.mask_token_id).all()  # whole words: always [MASK]
    words_seen = 0
    for row in range(len(features)):
        offsets, special = features[row]["offset_mapping"], features[row]["special_tokens_mask"]
        word: list[int] = []
        for t in range(32 + 1):
            new_word = t == 32 or special[t] or not word or offsets[t][0] != offsets[word[-1]][1]
            if new_word and word:
                flags = {bool(masked[row, i]) for i in word}
                assert len(flags) == 1, f"chunk {row}: word at tokens {word} partly masked"
                words_seen += len(word) > 1
                word = []
            if t < 32 and not special[t]:
                word.append(t)
    assert words_seen > 0  # the sample has multi-piece words, so the check meant something


def test_decoder_backbone_is_refused_without_a_model_dir(tiny_model_dir: Callable[[str], Path], corpus: Path, cli: Cli,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, _, err = cli("-q", "train", "masked-lm", "--backbone", tiny_model_dir("llama"), "--train-file", corpus,
                       "--output-dir", out, *FAST)
    assert_user_error(code, err, "encoder backbone", "causal-lm")
    assert not (out / "model").exists()


def test_text_column_holding_numbers_is_refused(tiny_model_dir: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "numbers.jsonl"
    data.write_text("".join(json.dumps({"text": n}) + "\n" for n in range(5)), encoding="utf-8")
    code, _, err = cli("-q", "train", "masked-lm", "--backbone", tiny_model_dir("bert"), "--train-file", data,
                       "--output-dir", tmp_path / "r", *FAST)
    assert_user_error(code, err, "numbers.jsonl line 1", "'text'", "not text")


def test_chunks_longer_than_the_backbone_reads_are_refused(tiny_model_dir: Callable[[str], Path], corpus: Path, cli: Cli,
                                                           tmp_path: Path) -> None:
    code, _, err = cli("-q", "train", "masked-lm", "--backbone", tiny_model_dir("bert"), "--train-file", corpus,
                       "--output-dir", tmp_path / "run", "--max-length", "1000", "--max-steps", "1")
    assert_user_error(code, err, "--max-length 1000", "at most 512")
    assert not (tmp_path / "run" / "model").exists()


def test_bad_mlm_probability_is_refused_at_construction() -> None:
    from texttune import MaskedLM
    from texttune.errors import ConfigError

    with pytest.raises(ConfigError, match=r"mlm_probability.*\(0, 1\)"):
        MaskedLM(mlm_probability=0.0)


def test_api_fit_and_predict(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    from texttune import MaskedLM, load

    model = MaskedLM(backbone=str(tiny_model_dir("bert")), max_length=32, options={"progress_bar": False})
    result = model.fit(train={"text": documents()}, output_dir=tmp_path / "run", max_steps=2, batch_size=4)
    assert result.metrics["fine_tuned"]["perplexity"] > 1
    out = model.predict(["the [MASK] package"])
    assert len(out) == 1 and len(out[0]["candidates"]) == 5  # default: five candidates
    assert load(tmp_path / "run").predict(["the [MASK] package"]) == out


def test_masked_perplexity_has_intervals_and_a_paired_test(run_dir: Path) -> None:
    metrics = read_json(run_dir / "metrics.json")
    for section in ("zero_shot", "fine_tuned"):
        for name in ("perplexity", "loss"):
            bounds = metrics["intervals"][section][name]
            assert bounds["low"] <= metrics[section][name] <= bounds["high"]
    assert {"perplexity", "loss"} <= set(metrics["paired"]["zero_shot"])
