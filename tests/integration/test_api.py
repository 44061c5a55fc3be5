"""The Python API (``texttune.Summarization`` & co.) on the tiny test models.

Why: notebook users call ``fit``/``predict``/``save``/``load`` directly, so the
promises the CLI tests check through files must hold here too: outputs in input
order whatever the batching, identical predictions after a save and reload,
the right prefix or prompt for each backbone family, a generation length
learned from the training targets (never transformers' silent 20 tokens), and
no loss on the prompt tokens of decoder-only models.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import texttune
from texttune import Summarization, Text2Text, Translation
from texttune.errors import ConfigError, DataError
from texttune.tasks.prompting import IGNORE, PLAIN_TEMPLATE, PromptFormat
from run_files import read_json

DATA = Path(__file__).resolve().parents[1] / "data"
FAST: dict[str, Any] = {"progress_bar": False, "max_eval_samples": 6}

#: Inputs of very different lengths, so batches of two need padding.
TEXTS = [
    "A short one.",
    "This is a much longer input text that has many more words in it than the first one, "
    "so that it forces padding in every batch that it shares with a short input.",
    "Medium length input with some words about libraries.",
    "x y",
    "Another fairly long input sentence about Debian packages and libraries for parsing data files.",
]


def summarization_pairs() -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in (DATA / "summarization.jsonl").read_text(encoding="utf-8").splitlines()]
    return [r["document"] for r in rows], [r["summary"] for r in rows]


@pytest.fixture(scope="module")
def fitted(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Summarization]:
    """``fitted(kind)``: a Summarization model fine-tuned from in-memory lists, once per module and kind.

    The validation file is given explicitly, so every one of the 40 pairs is a training pair.
    """
    models: dict[str, Summarization] = {}

    def get(kind: str) -> Summarization:
        if kind not in models:
            inputs, targets = summarization_pairs()
            task = Summarization(backbone=str(tiny_model_dir(kind)), options=FAST)
            result = task.fit(inputs=inputs, targets=targets, validation=DATA / "summarization-val.jsonl",
                              output_dir=tmp_path_factory.mktemp(f"api-{kind}") / "run", max_steps=2, batch_size=4)
            assert result.model_dir == result.run_dir / "model"
            models[kind] = task
        return models[kind]

    return get


# --------------------------------------------------------------------------- fit and predict


def test_fit_from_lists_returns_the_run(fitted: Callable[[str], Summarization]) -> None:
    task = fitted("t5")
    run = task.last_run
    assert run.run_dir.is_dir() and (run.model_dir / "texttune.json").is_file()
    assert run.metrics["steps"] == 2
    assert set(run.metrics["fine_tuned"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum", "gen_len"}
    assert read_json(run.run_dir / "metrics.json") == run.metrics
    stats = read_json(run.run_dir / "data_stats.json")
    assert stats["train"]["rows"] == 40
    assert stats["validation"]["rows"] == 6  # max_eval_samples of the 12 validation rows
    assert stats["train"]["source"] == "<python lists>"


@pytest.mark.parametrize("kind", ["t5", "bart", "llama", "llama-chat"])
def test_predict_keeps_input_order_and_batching_does_not_change_outputs(
    kind: str, fitted: Callable[[str], Summarization]
) -> None:
    """Generation sorts by length and pads (left for decoder-only): greedy outputs must not notice."""
    task = fitted(kind)
    batched = task.predict(TEXTS, batch_size=2)
    alone = [task.predict([text])[0] for text in TEXTS]
    assert all(isinstance(output, str) for output in batched)
    assert batched == alone
    assert task.predict(list(reversed(TEXTS)), batch_size=2) == list(reversed(batched))


def test_outputs_differ_between_inputs(fitted: Callable[[str], Summarization]) -> None:
    """Guards the order test above: identical outputs for every input would make it vacuous."""
    assert len(set(fitted("t5").predict(TEXTS))) > 1


def test_predict_accepts_dicts_by_column_role_and_checks_inputs(fitted: Callable[[str], Summarization]) -> None:
    task = fitted("t5")
    assert task.predict([{"text": TEXTS[0]}], max_new_tokens=3) == task.predict([TEXTS[0]], max_new_tokens=3)
    assert task.predict([]) == []
    with pytest.raises(DataError, match="input 1: 'text' must be non-empty text"):
        task.predict(["fine", "   "])
    with pytest.raises(DataError, match="input 0: expected a string or a dict, got int"):
        task.predict([3])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="'num_beams' must be >= 1"):
        task.predict(["fine"], num_beams=0)


def test_max_new_tokens_is_respected(fitted: Callable[[str], Summarization]) -> None:
    task = fitted("llama")
    tokenizer = task._load_backbone().tokenizer
    for output in task.predict(TEXTS, max_new_tokens=3):
        assert len(tokenizer(output, add_special_tokens=False)["input_ids"]) <= 3


def test_evaluate_from_the_api(fitted: Callable[[str], Summarization], tmp_path: Path) -> None:
    metrics = fitted("t5").evaluate(DATA / "summarization-val.jsonl", max_samples=3, predictions_file=tmp_path / "p.jsonl")
    assert set(metrics) == {"rouge1", "rouge2", "rougeL", "rougeLsum", "gen_len"}
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 3
    with pytest.raises(ConfigError, match="'max_samples' must be > 0"):
        fitted("t5").evaluate(DATA / "summarization-val.jsonl", max_samples=0)


@pytest.mark.parametrize("kind", ["t5", "llama-chat"])
def test_save_and_load_give_the_same_predictions(kind: str, fitted: Callable[[str], Summarization], tmp_path: Path) -> None:
    task = fitted(kind)
    saved = task.save(tmp_path / "saved")
    assert (saved / "texttune.json").is_file() and (saved / "config.json").is_file()
    again = texttune.load(saved)
    assert isinstance(again, Summarization)
    assert again.predict(TEXTS, batch_size=2) == task.predict(TEXTS, batch_size=2)
    from_run = texttune.load(task.last_run.run_dir)  # a run directory works too
    assert from_run.predict(TEXTS[:2]) == task.predict(TEXTS[:2])
    assert read_json(saved / "texttune.json")["task_state"] == read_json(task.last_run.model_dir / "texttune.json")["task_state"]


def test_load_refuses_a_directory_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(texttune.TexttuneError, match="not a texttune model directory"):
        texttune.load(tmp_path)


# --------------------------------------------------------------------------- prefixes and prompts


def test_t5_gets_the_summarize_prefix_and_bart_none(fitted: Callable[[str], Summarization]) -> None:
    state = {kind: read_json(fitted(kind).last_run.model_dir / "texttune.json")["task_state"] for kind in ("t5", "bart", "llama")}
    assert state["t5"]["prefix"] == "summarize: "
    assert state["bart"]["prefix"] == ""
    assert state["llama"]["prefix"] == "Summarize the following text."  # the instruction of decoder-only prompts


def test_explicit_empty_prefix_wins_over_the_t5_default(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    inputs, targets = summarization_pairs()
    task = Summarization(backbone=str(tiny_model_dir("t5")), prefix="", options=FAST)
    task.fit(inputs=inputs[:12], targets=targets[:12], output_dir=tmp_path / "run", max_steps=1, batch_size=4)
    assert read_json(tmp_path / "run/model/texttune.json")["task_state"]["prefix"] == ""


def test_translation(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    task = Translation(backbone=str(tiny_model_dir("t5")), source_lang="en", target_lang="fr", options=FAST)
    result = task.fit(train=DATA / "translation.jsonl", output_dir=tmp_path / "run", max_steps=2, batch_size=4)
    assert set(result.metrics["fine_tuned"]) == {"bleu", "chrf", "gen_len"}
    # how BLEU was computed, beside the numbers (metrics.json "scoring"): sacreBLEU's signature for French, 13a
    scoring = read_json(result.run_dir / "metrics.json")["scoring"]
    assert scoring["language"] == "fr" and "rouge_tokenizer" not in scoring
    assert scoring["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert "scoring" not in read_json(result.run_dir / "data_stats.json")["learned"]
    state = read_json(result.model_dir / "texttune.json")["task_state"]
    assert state["prefix"] == "translate English to French: "
    outputs = task.predict(["Open the file.", "Close the window."])
    assert len(outputs) == 2 and all(isinstance(o, str) for o in outputs)
    again = texttune.load(result.run_dir)
    assert isinstance(again, Translation)
    assert (again._task.source_lang, again._task.target_lang) == ("en", "fr")
    assert again.predict(["Open the file."]) == outputs[:1]


def test_text2text_with_a_prefix(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    task = Text2Text(backbone=str(tiny_model_dir("bart")), prefix="generate question: ", options=FAST)
    result = task.fit(train=DATA / "qg.jsonl", output_dir=tmp_path / "run", max_steps=2, batch_size=4)
    meta = read_json(result.model_dir / "texttune.json")
    assert meta["task"] == "text2text"
    assert meta["task_state"]["prefix"] == "generate question: "
    assert {"rougeL", "bleu", "chrf"} <= set(result.metrics["fine_tuned"])
    assert result.metrics["scoring"]["rouge_tokenizer"] == "default (rouge-score's, Porter stemmer)"  # English
    assert "tok:13a" in result.metrics["scoring"]["bleu_signature"]
    assert set(result.metrics["baselines"]) == {"copy_input"}
    assert isinstance(task.predict(["Use the threading module."])[0], str)


def test_metric_language_scores_chinese_by_character(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    pairs = [("今天天气很好，我们去公园散步吧。", "我们去公园。"), ("他每天早上喝一杯咖啡。", "他喝咖啡。"),
             ("这本书很有意思，我读了两遍。", "我读了两遍。"), ("下雨了，记得带伞。", "记得带伞。")] * 2
    task = Text2Text(backbone=str(tiny_model_dir("t5")), metric_language="zh", options=FAST)
    result = task.fit(inputs=[p[0] for p in pairs], targets=[p[1] for p in pairs], validation=None,
                      output_dir=tmp_path / "run", max_steps=1, batch_size=4)
    scoring = result.metrics["scoring"]
    assert scoring["language"] == "zh" and scoring["rouge_tokenizer"] == "cjk"
    assert "tok:zh" in scoring["bleu_signature"]
    # copying the input shares every reference character: character-level ROUGE-1 recall 1, not rouge-score's 0
    assert result.metrics["baselines"]["copy_input"]["rouge1"] > 40
    again = texttune.load(result.run_dir)
    assert (again._task.metric_language, again._task.rouge_tokenizer) == ("zh", "auto")


def test_api_refuses_bad_options_like_the_cli(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="option 'batch_size' must be > 0, got 0"):
        Summarization(backbone="x", options={"batch_size": 0})
    with pytest.raises(ConfigError, match="did you mean 'max_steps'"):
        Summarization(backbone="x", options={"max_step": 2})
    task = Summarization(backbone=str(tiny_model_dir("t5")), options=FAST)
    with pytest.raises(ConfigError, match="'max_steps' must be > 0"):
        task.fit(inputs=["a b"], targets=["a"], output_dir=tmp_path / "run", max_steps=-1)
    with pytest.raises(DataError, match="pass both inputs= and targets="):
        task.fit(inputs=["a b"], output_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- generation length


def test_max_new_tokens_defaults_from_the_training_targets(fitted: Callable[[str], Summarization]) -> None:
    task = fitted("t5")
    run, model_dir = task.last_run.run_dir, task.last_run.model_dir
    learned = read_json(run / "data_stats.json")["learned"]["max_new_tokens"]
    saved = read_json(model_dir / "generation_config.json")["max_new_tokens"]
    meta = read_json(model_dir / "texttune.json")["task_state"]["max_new_tokens"]
    assert saved == learned == meta
    assert saved != 20  # transformers' default max_length
    # Independently: the longest training target in tokens, plus the end-of-sequence token.
    tokenizer = task._load_backbone().tokenizer
    _, targets = summarization_pairs()
    assert saved == max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in targets) + 1


def test_max_new_tokens_is_capped_by_max_target_length(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    inputs, targets = summarization_pairs()
    task = Summarization(backbone=str(tiny_model_dir("bart")), options={**FAST, "max_target_length": 8})
    result = task.fit(inputs=inputs[:12], targets=targets[:12], output_dir=tmp_path / "run", max_steps=1, batch_size=4)
    assert read_json(result.model_dir / "generation_config.json")["max_new_tokens"] == 8
    assert read_json(result.run_dir / "data_stats.json")["train"]["targets_truncated"] > 0


# --------------------------------------------------------------------------- decoder-only prompts and labels


@pytest.fixture(scope="module")
def tokenizers(tiny_model_dir: Callable[[str], Path]) -> dict[str, Any]:
    from transformers import AutoTokenizer

    return {kind: AutoTokenizer.from_pretrained(tiny_model_dir(kind)) for kind in ("llama", "llama-chat", "t5", "bert2bert")}


TEXT = "The package provides a library for reading configuration files."
TARGET = "configuration file library"


def _encode(fmt: PromptFormat, target: str | None, *, src: int = 512, tgt: int = 128) -> Any:
    return fmt.encode(TEXT, target, max_source_length=src, max_target_length=tgt)


@pytest.mark.parametrize("kind", ["llama", "llama-chat"])
def test_decoder_only_labels_ignore_the_prompt(kind: str, tokenizers: dict[str, Any]) -> None:
    tok = tokenizers[kind]
    fmt = PromptFormat(tokenizer=tok, family="causal", prefix="Summarize the following text.")
    train = _encode(fmt, TARGET)
    prompt = _encode(fmt, None)
    n = len(prompt.input_ids)
    assert prompt.labels == []
    # The training sequence is the generation prompt followed by the target and EOS ...
    assert train.input_ids[:n] == prompt.input_ids
    assert len(train.labels) == len(train.input_ids)
    # ... and only the target and EOS carry loss.
    assert train.labels[:n] == [IGNORE] * n
    body = TARGET if kind == "llama-chat" else " " + TARGET
    target_ids = tok(body, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert train.labels[n:] == target_ids == train.input_ids[n:]
    assert IGNORE not in train.labels[n:]
    assert fmt.target_length(TARGET) == len(target_ids)
    assert not (train.source_truncated or train.target_truncated)


def test_plain_prompt_for_a_tokenizer_without_chat_template(tokenizers: dict[str, Any]) -> None:
    tok = tokenizers["llama"]
    fmt = PromptFormat(tokenizer=tok, family="causal", prefix="Summarize the following text.")
    assert not fmt.uses_chat_template
    assert fmt.prompt_text(TEXT) == PLAIN_TEMPLATE.format(instruction="Summarize the following text.", input=TEXT)
    ids = _encode(fmt, None).input_ids
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert tok.eos_token_id not in ids  # the prompt must not end the sequence
    assert PromptFormat(tokenizer=tok, family="causal", prefix="").prompt_text(TEXT) == f"{TEXT}\n\nResponse:"


def test_chat_prompt_uses_the_chat_template(tokenizers: dict[str, Any]) -> None:
    tok = tokenizers["llama-chat"]
    fmt = PromptFormat(tokenizer=tok, family="causal", prefix="Summarize the following text.")
    assert fmt.uses_chat_template
    text = fmt.prompt_text(TEXT)
    assert text == f"<|im_start|>user\nSummarize the following text.\n\n{TEXT}<|im_end|>\n<|im_start|>assistant\n"
    ids = _encode(fmt, None).input_ids
    assert ids == tok(text, add_special_tokens=False)["input_ids"]
    assert _encode(fmt, TARGET).input_ids[-1] == tok.convert_tokens_to_ids("<|im_end|>")


@pytest.mark.parametrize("kind", ["llama", "llama-chat"])
def test_decoder_only_truncation(kind: str, tokenizers: dict[str, Any]) -> None:
    tok = tokenizers[kind]
    fmt = PromptFormat(tokenizer=tok, family="causal", prefix="Summarize.")
    cut = _encode(fmt, TARGET, src=4, tgt=3)
    assert cut.source_truncated and cut.target_truncated
    scored = [label for label in cut.labels if label != IGNORE]
    assert len(scored) == 3 and scored[-1] == tok.eos_token_id  # cut to fit, EOS kept
    full_prompt = _encode(fmt, None)
    assert len(cut.input_ids) - 3 < len(full_prompt.input_ids)


def test_seq2seq_labels(tokenizers: dict[str, Any]) -> None:
    t5 = tokenizers["t5"]
    fmt = PromptFormat(tokenizer=t5, family="seq2seq", prefix="summarize: ", decoder_start_token_id=0)
    encoded = _encode(fmt, TARGET)
    assert encoded.input_ids == t5("summarize: " + TEXT)["input_ids"]
    assert encoded.labels == t5(text_target=TARGET)["input_ids"]
    assert encoded.labels[-1] == t5.eos_token_id and IGNORE not in encoded.labels

    bert = tokenizers["bert2bert"]
    fmt = PromptFormat(tokenizer=bert, family="seq2seq", prefix="", decoder_start_token_id=bert.cls_token_id)
    labels = _encode(fmt, TARGET).labels
    assert labels[0] != bert.cls_token_id  # [CLS] is the decoder start token: not also a label
    assert labels[-1] == bert.sep_token_id
