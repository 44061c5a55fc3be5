"""Token classification (NER, POS) end to end on the tiny BERT: CLI, API, data layouts, bad input.

Why: a tagger fails quietly when sub-tokens and words drift apart, when labels
get ids in one place and names in another, or when a saved model lacks its
label names. Each path must train, score words with seqeval, predict entities
whose character offsets point into the text, reload with plain transformers,
and refuse broken rows (length mismatches, unseen labels, bad CoNLL lines) with
one line that names the row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from texttune.cli.main import main
from run_files import assert_user_error, read_json, read_jsonl

DATA = Path(__file__).resolve().parents[1] / "data"
NER = DATA / "ner.jsonl"
CONLL = DATA / "ner.conll"
FAST = ["--max-steps", "2", "--batch-size", "4", "--no-progress-bar", "--max-eval-samples", "6"]
NER_LABELS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]

Cli = Callable[..., tuple[int, str, str]]


def rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in NER.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ner") / "run"
    code = main(["-q", "train", "token-classification", "--backbone", str(tiny_model_dir("bert")),
                 "--train-file", str(NER), "--output-dir", str(out), *FAST])
    assert code == 0
    return out


# --------------------------------------------------------------------------- train / evaluate / predict


def test_train_writes_metrics_labels_and_model(run_dir: Path) -> None:
    metrics = read_json(run_dir / "metrics.json")
    assert set(metrics["baselines"]) == {"majority_tag"}
    for section in (metrics["baselines"]["majority_tag"], metrics["zero_shot"], metrics["fine_tuned"]):
        assert {"precision", "recall", "f1", "accuracy"} <= set(section)
        assert all(0 <= v <= 100 for v in section.values())
    assert metrics["baselines"]["majority_tag"]["f1"] == 0  # every word O: no entity found
    assert metrics["baselines"]["majority_tag"]["accuracy"] > 50
    stats = read_json(run_dir / "data_stats.json")
    assert stats["learned"]["label_list"] == NER_LABELS  # O first, then B-/I- by type
    assert stats["learned"]["majority_tag"] == "O"
    assert stats["train"]["rows"] + stats["validation"]["rows"] == 40
    assert stats["train"]["inputs_truncated"] == 0
    config = read_json(run_dir / "model" / "config.json")
    assert config["architectures"] == ["BertForTokenClassification"]
    assert config["id2label"] == {str(i): label for i, label in enumerate(NER_LABELS)}
    predictions = read_jsonl(run_dir / "predictions.jsonl")
    assert len(predictions) == stats["validation"]["rows"]
    for p in predictions:
        assert set(p) == {"tokens", "reference", "prediction"}
        assert len(p["tokens"]) == len(p["reference"]) == len(p["prediction"])
        assert set(p["prediction"]) <= set(NER_LABELS)


def test_evaluate_on_conll_and_jsonl_agree(run_dir: Path, cli: Cli, tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path / "first20.jsonl", rows()[:20])
    results = []
    for path in (CONLL, jsonl):
        code, out, err = cli("-q", "evaluate", run_dir, "--data-file", path, "--metrics-file", tmp_path / "m.json",
                             "--predictions-file", tmp_path / "p.jsonl", "--json")
        assert code == 0, err
        metrics = read_json(tmp_path / "m.json")
        assert {"precision", "recall", "f1", "accuracy"} <= set(metrics) and metrics == json.loads(out)
        assert any(name.startswith("f1_") for name in metrics)  # per entity type
        results.append((metrics, read_jsonl(tmp_path / "p.jsonl")))
    assert results[0] == results[1]  # the CoNLL file holds the same 20 sentences


def test_predict_entities_for_text_and_tags_for_words(run_dir: Path, cli: Cli, tmp_path: Path) -> None:
    texts = [" ".join(r["tokens"]) for r in rows()[:3]]
    write_jsonl(tmp_path / "text.jsonl", [{"text": t} for t in texts])
    write_jsonl(tmp_path / "words.jsonl", [{"tokens": r["tokens"]} for r in rows()[:3]])
    code, _, err = cli("-q", "predict", run_dir, "--input-file", tmp_path / "text.jsonl", "--output-file", tmp_path / "o1.jsonl")
    assert code == 0, err
    for row in read_jsonl(tmp_path / "o1.jsonl"):
        entities = row["prediction"]["entities"]
        assert isinstance(entities, list)
        for e in entities:
            assert set(e) == {"entity_group", "score", "word", "start", "end"}
            assert e["entity_group"] in {"LOC", "MISC", "ORG", "PER"} and 0 <= e["score"] <= 1
            assert 0 <= e["start"] < e["end"] <= len(row["text"])
    code, _, err = cli("-q", "predict", run_dir, "--input-file", tmp_path / "words.jsonl", "--output-file", tmp_path / "o2.jsonl")
    assert code == 0, err
    for row in read_jsonl(tmp_path / "o2.jsonl"):
        assert len(row["prediction"]["tags"]) == len(row["tokens"])


def test_saved_model_loads_with_plain_transformers(run_dir: Path) -> None:
    """model/ is a plain token-classification model: same word tags, and the HF pipeline runs on it."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    import texttune

    loaded = texttune.load(run_dir)
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "model")
    model = AutoModelForTokenClassification.from_pretrained(run_dir / "model").eval()
    words = rows()[0]["tokens"]
    enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        best = model(**enc).logits[0].argmax(-1).tolist()
    first = {}
    for position, word in enumerate(enc.word_ids(0)):
        if word is not None:
            first.setdefault(word, model.config.id2label[best[position]])
    assert loaded.predict([words])[0]["tags"] == [first[i] for i in range(len(words))]
    text = " ".join(words)
    expected = pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="simple")(text)
    got = loaded.predict([text])[0]["entities"]
    assert [(e["entity_group"], e["start"], e["end"]) for e in got] == [(e["entity_group"], e["start"], e["end"]) for e in expected]


def test_api_class_labels_label_all_tokens_and_reload(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    """Integer tags with a ClassLabel feature keep the dataset's ids; predict takes text, words and dicts."""
    from datasets import ClassLabel, Dataset, Features, List, Value

    from texttune import TokenClassification, load

    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]  # the HF conll2003 order
    data = rows()
    features = Features({"tokens": List(Value("string")), "ner_tags": List(ClassLabel(names=names))})
    dataset = Dataset.from_dict({"tokens": [r["tokens"] for r in data],
                                 "ner_tags": [[names.index(t) for t in r["ner_tags"]] for r in data]}, features=features)
    dataset.save_to_disk(tmp_path / "saved")
    tagger = TokenClassification(backbone=str(tiny_model_dir("bert")), label_all_tokens=True, aggregation="first")
    result = tagger.fit(train=tmp_path / "saved", output_dir=tmp_path / "run", max_steps=2, batch_size=4,
                        options={"progress_bar": False, "max_eval_samples": 4})
    assert "f1" in result.metrics["fine_tuned"]
    assert read_json(tmp_path / "run" / "data_stats.json")["learned"]["label_list"] == names
    words = data[0]["tokens"]
    out = tagger.predict([" ".join(words), words, {"text": "Peter went to Paris."}, {"tokens": ["Peter", "went"]}])
    assert set(out[0]) == {"entities"} and set(out[2]) == {"entities"}
    assert len(out[1]["tags"]) == len(words) and len(out[3]["tags"]) == 2
    again = load(tagger.save(tmp_path / "model"))
    assert again.predict([words, " ".join(words)]) == [out[1], out[0]]
    assert again._task.label_all_tokens and again._task.aggregation == "first"
    assert isinstance(again.predict([" ".join(words)], aggregation="none")[0]["entities"], list)
    with pytest.raises(Exception, match="needs raw text"):
        again.predict([{"tokens": []}])


def test_conll_pos_tags_with_truncation(tiny_model_dir: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    """A CoNLL file's middle column trains a POS tagger; short windows count truncated sentences."""
    out = tmp_path / "run"
    code, _, err = cli("-q", "train", "token-classification", "--backbone", tiny_model_dir("bert"), "--train-file", CONLL,
                       "--tags-column", "col2", "--max-length", "12", "--output-dir", out, *FAST)
    assert code == 0, err
    stats = read_json(out / "data_stats.json")
    assert stats["train"]["inputs_truncated"] > 0
    assert stats["train"]["input_tokens_max"] <= 12
    labels = stats["learned"]["label_list"]
    assert "NNP" in labels and not any(label.startswith("B-") for label in labels)
    metrics = read_json(out / "metrics.json")["fine_tuned"]
    assert metrics["f1"] == pytest.approx(metrics["accuracy"], abs=1e-3)  # one-word "entities": F1 is accuracy
    assert "f1_NNP" in metrics
    predictions = read_jsonl(out / "predictions.jsonl")
    assert all(len(p["prediction"]) == len(p["tokens"]) for p in predictions)  # cut-off words are still tagged


# --------------------------------------------------------------------------- bad input


def _train(cli: Cli, backbone: Path, train: Path, out: Path, *extra: str | Path) -> tuple[int, str, str]:
    return cli("-q", "train", "token-classification", "--backbone", backbone, "--train-file", train,
               "--output-dir", out, *FAST, *extra)


@pytest.mark.parametrize("case", ["length_mismatch", "text_not_words", "unseen_label", "int_tags", "bad_conll",
                                  "duplicate_label", "label_list_misses_tag"])
def test_bad_input_is_one_line(case: str, tiny_model_dir: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    records = rows()
    train = tmp_path / "train.jsonl"
    extra: list[str | Path] = []
    if case == "length_mismatch":
        records[6]["ner_tags"] = records[6]["ner_tags"][:-1]
        needles: tuple[str, ...] = ("train.jsonl line 7", "tags", "every token needs exactly one tag")
    elif case == "text_not_words":
        records = [{"text": " ".join(r["tokens"]), "ner_tags": r["ner_tags"]} for r in records]  # raw sentences
        needles = ("train.jsonl line 1", "list of words", "pre-tokenized")
    elif case == "unseen_label":
        val = [dict(r) for r in records[:5]]
        val[3]["ner_tags"] = ["B-EVENT", *val[3]["ner_tags"][1:]]
        extra = ["--validation-file", write_jsonl(tmp_path / "val.jsonl", val)]
        needles = ("val.jsonl line 4", "'B-EVENT'", "known labels", "'B-PER'")
    elif case == "int_tags":
        for r in records:
            r["ner_tags"] = [NER_LABELS.index(t) for t in r["ner_tags"]]
        needles = ("integer ids", "--label-list")
    elif case == "bad_conll":
        lines = CONLL.read_text(encoding="utf-8").splitlines()
        lines[5] = "Indonesia"
        train = tmp_path / "train.conll"
        train.write_text("\n".join(lines) + "\n", encoding="utf-8")
        needles = ("train.conll line 6", "'Indonesia'", "token and a tag")
    elif case == "duplicate_label":
        extra = ["--label-list", "O,B-PER,O"]
        needles = ("label_list", "'O'")
    else:
        extra = ["--label-list", "O,B-PER,I-PER"]
        needles = ("line 1", "'B-LOC'", "is not in --label-list")
    if train.suffix == ".jsonl":
        write_jsonl(train, records)
    out = tmp_path / "run"
    code, _, err = _train(cli, tiny_model_dir("bert"), train, out, *extra)
    assert_user_error(code, err, *needles)
    assert not (out / "model").exists()


def test_backbone_without_token_head_is_refused(tiny_model_dir: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, _, err = _train(cli, tiny_model_dir("bart"), NER, out)
    assert_user_error(code, err, "no token-classification head", "--backbone minilm")
    assert not (out / "model").exists()


def test_unseen_label_at_evaluate_names_the_row(run_dir: Path, cli: Cli, tmp_path: Path) -> None:
    records = rows()[:4]
    records[2]["ner_tags"][0] = "B-EVENT"
    code, _, err = cli("-q", "evaluate", run_dir, "--data-file", write_jsonl(tmp_path / "ev.jsonl", records))
    assert_user_error(code, err, "ev.jsonl line 3", "'B-EVENT'", "model's labels")


def test_masked_lm_run_directory_is_a_backbone(tiny_model_dir: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    """An encoder adapted by the masked-lm task trains a tagger straight from its run directory."""
    from texttune.tasks import TASKS

    if "masked-lm" not in TASKS:
        pytest.skip("no masked-lm task in this version")
    text = write_jsonl(tmp_path / "text.jsonl", [{"text": " ".join(r["tokens"])} for r in rows()])
    code, _, err = cli("-q", "train", "masked-lm", "--backbone", tiny_model_dir("bert"), "--train-file", text,
                       "--output-dir", tmp_path / "mlm", "--max-length", "32", *FAST)
    assert code == 0, err
    code, _, err = _train(cli, tmp_path / "mlm", NER, tmp_path / "ner")
    assert code == 0, err
    assert read_json(tmp_path / "ner" / "model" / "config.json")["architectures"] == ["BertForTokenClassification"]


def test_entity_f1_has_an_interval_and_is_paired_with_the_majority_tag(run_dir: Path) -> None:
    metrics = read_json(run_dir / "metrics.json")
    for section in ("zero_shot", "fine_tuned"):
        bounds = metrics["intervals"][section]["f1"]
        assert bounds["low"] <= metrics[section]["f1"] <= bounds["high"]
    assert "f1" in metrics["intervals"]["baselines"]["majority_tag"]
    test = metrics["paired"]["baselines"]["majority_tag"]["f1"]
    assert test["difference"] == pytest.approx(metrics["fine_tuned"]["f1"] - metrics["baselines"]["majority_tag"]["f1"],
                                               abs=1e-3)
