"""Extractive question answering end to end on the tiny BERT: CLI, API, data layouts, bad input.

Why: the task has the most moving parts between text and numbers of any task
(overflowing windows, token <-> character offsets, labels at CLS, n-best
post-processing over windows), and its data come in three layouts (official
SQuAD JSON, flat JSONL, CSV with a JSON answers cell). Each must train, score,
predict spans that really are in the context, reload with plain transformers,
and refuse bad answer spans with one line naming the row.

Windows are kept small (--max-length 96, --stride 24) so that every context of
the sample is split into several windows and the window logic is exercised.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from texttune.cli.main import main
from run_files import assert_user_error, read_json

DATA = Path(__file__).resolve().parents[1] / "data"
SQUAD = DATA / "squad.jsonl"
WINDOWS = ["--max-length", "96", "--stride", "24"]
FAST = ["--max-steps", "2", "--batch-size", "4", "--no-progress-bar", "--max-eval-samples", "6"]

Cli = Callable[..., tuple[int, str, str]]  # the `cli` fixture of tests/integration/conftest.py


def rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SQUAD.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def official_layout(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The official SQuAD JSON nesting (articles -> paragraphs -> qas) of flat rows."""
    articles: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in records:
        paragraphs = articles.setdefault(r["title"], {})
        paragraphs.setdefault(r["context"], []).append({
            "id": r["id"], "question": r["question"],
            "answers": [{"text": t, "answer_start": s} for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"])],
        })
    return {"version": "1.1", "data": [
        {"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs.items()]}
        for title, paragraphs in articles.items()]}


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("qa") / "run"
    code = main(["-q", "train", "question-answering", "--backbone", str(tiny_model_dir("bert")), "--train-file", str(SQUAD),
                 "--output-dir", str(out), *WINDOWS, *FAST])
    assert code == 0
    return out


# --------------------------------------------------------------------------- train / evaluate / predict


def test_train_writes_metrics_windows_and_model(run_dir: Path) -> None:
    metrics = read_json(run_dir / "metrics.json")
    assert set(metrics["baselines"]) == {"first_sentence", "window_overlap"}
    for section in (*metrics["baselines"].values(), metrics["zero_shot"], metrics["fine_tuned"]):
        assert set(section) == {"exact_match", "f1"} and all(0 <= v <= 100 for v in section.values())
    stats = read_json(run_dir / "data_stats.json")
    train = stats["train"]
    assert train["rows"] + stats["validation"]["rows"] == 30
    assert train["windows"] > train["rows"] and train["contexts_split"] > 0  # long contexts -> several windows
    assert {"questions_truncated", "answers_truncated"} <= set(train)
    meta = read_json(run_dir / "model" / "texttune.json")
    assert meta["task"] == "question-answering" and meta["auto_class"] == "AutoModelForQuestionAnswering"
    assert meta["task_state"]["max_length"] == 96 and meta["task_state"]["stride"] == 24
    predictions = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == stats["validation"]["rows"]
    assert all({"id", "question", "reference", "prediction", "score"} <= set(p) for p in predictions)


def test_evaluate_on_jsonl_official_json_and_csv_agree(run_dir: Path, cli: Cli, tmp_path: Path) -> None:
    records = rows()[:8]
    jsonl = write_jsonl(tmp_path / "qa.jsonl", records)
    official = tmp_path / "qa.json"
    official.write_text(json.dumps(official_layout(records)), encoding="utf-8")
    table = tmp_path / "qa.csv"
    with table.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "question", "context", "answers"])
        writer.writeheader()
        for r in records:
            writer.writerow({"id": r["id"], "question": r["question"], "context": r["context"], "answers": json.dumps(r["answers"])})
    results = []
    for path in (jsonl, official, table):
        code, out, err = cli("-q", "evaluate", run_dir, "--data-file", path, "--metrics-file", tmp_path / "m.json",
                             "--predictions-file", tmp_path / "p.jsonl", "--json")
        assert code == 0, err
        assert set(read_json(tmp_path / "m.json")) == {"exact_match", "f1"}
        predicted = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
        assert [p["id"] for p in predicted] == [r["id"] for r in records]
        results.append((json.loads(out), [p["prediction"] for p in predicted]))
    assert results[0] == results[1] == results[2]  # same rows whatever the layout (official order kept here)


def test_predict_returns_spans_of_the_context(run_dir: Path, cli: Cli, tmp_path: Path) -> None:
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"question": r["question"], "context": r["context"]} for r in rows()[:4]])
    code, _, err = cli("-q", "predict", run_dir, "--input-file", inputs, "--output-file", tmp_path / "out.jsonl")
    assert code == 0, err
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(out) == 4
    for row in out:
        p = row["prediction"]
        assert set(p) == {"answer", "score", "start", "end"} and 0 <= p["score"] <= 1
        assert p["answer"] and row["context"][p["start"] : p["end"]] == p["answer"]


def test_saved_model_loads_with_plain_transformers(run_dir: Path) -> None:
    """model/ under plain transformers, with a brute-force span search, gives texttune's answer.

    n_best is raised so that texttune's n-best pruning cannot hide the best span.
    """
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    import texttune

    loaded = texttune.load(run_dir)
    loaded._task.n_best = 10_000
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "model")
    model = AutoModelForQuestionAnswering.from_pretrained(run_dir / "model").eval()
    for r in rows()[:2]:
        expected = loaded.predict([{"question": r["question"], "context": r["context"]}])[0]
        enc = tokenizer(r["question"], r["context"], truncation="only_second", max_length=96, stride=24,
                        return_overflowing_tokens=True, return_offsets_mapping=True, padding=True, return_tensors="pt")
        with torch.no_grad():
            out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], token_type_ids=enc["token_type_ids"])
        best = (-float("inf"), 0, 0)
        for w in range(len(enc["input_ids"])):
            context = [i for i, s in enumerate(enc.sequence_ids(w)) if s == 1]
            for s in context:
                for e in context:
                    if s <= e < s + 30:
                        score = float(out.start_logits[w, s] + out.end_logits[w, e])
                        span = (int(enc["offset_mapping"][w][s][0]), int(enc["offset_mapping"][w][e][1]))
                        best = max(best, (score, *span))
        assert (expected["start"], expected["end"]) == best[1:]
        assert expected["answer"] == r["context"][best[1] : best[2]]


def test_api_fit_predict_save_load(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    from texttune import QuestionAnswering, load

    qa = QuestionAnswering(backbone=str(tiny_model_dir("bert")), max_length=96, stride=24, max_answer_length=10)
    result = qa.fit(train=SQUAD, output_dir=tmp_path / "run", max_steps=2, batch_size=4,
                    options={"progress_bar": False, "max_eval_samples": 4})
    assert set(result.metrics["fine_tuned"]) == {"exact_match", "f1"}
    inputs = [{"question": r["question"], "context": r["context"]} for r in rows()[:3]]
    first = qa.predict(inputs)
    assert [set(p) for p in first] == [{"answer", "score", "start", "end"}] * 3
    again = load(qa.save(tmp_path / "saved"))
    assert again.predict(inputs) == first
    with pytest.raises(Exception, match="'context' must be non-empty text"):
        qa.predict([{"question": "Who?", "context": "  "}])


# --------------------------------------------------------------------------- bad input


def bad_spans(tmp_path: Path) -> Path:
    records = rows()
    for i in (3, 7):
        records[i]["answers"]["answer_start"][0] += 2
    return write_jsonl(tmp_path / "bad.jsonl", records)


def test_mismatching_answer_spans_in_training_data(tiny_model_dir: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, _, err = cli("-q", "train", "question-answering", "--backbone", tiny_model_dir("bert"), "--train-file",
                       bad_spans(tmp_path), "--output-dir", out, *WINDOWS, *FAST)
    assert_user_error(code, err, "2 of 30 rows", "bad.jsonl line 4", rows()[3]["id"], "do not match")
    assert not (out / "model").exists()


def test_mismatching_spans_in_evaluation_data_are_reported_not_fatal(run_dir: Path, cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli("evaluate", run_dir, "--data-file", bad_spans(tmp_path), "--max-eval-samples", "10")
    assert code == 0, err
    assert "2 of 10 rows have answer spans that do not match" in err and "line 4" in err


@pytest.mark.parametrize("case", ["empty_question", "answers_not_json", "answers_wrong_shape", "no_answers", "stride"])
def test_bad_input_is_one_line(case: str, tiny_model_dir: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    records = rows()
    extra: list[str] = []
    needles: tuple[str, ...]
    path = tmp_path / "data.jsonl"
    if case == "empty_question":
        records[5]["question"] = "  "
        needles = ("line 6", "'question'", "empty")
    elif case == "answers_not_json":
        path = tmp_path / "data.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["question", "context", "answers"])
            writer.writeheader()
            for i, r in enumerate(records):
                writer.writerow({"question": r["question"], "context": r["context"],
                                 "answers": "Denver Broncos" if i == 2 else json.dumps(r["answers"])})
        needles = ("data.csv row 3", "not JSON", "answer_start")
    elif case == "answers_wrong_shape":
        records[4]["answers"] = {"text": ["a", "b"], "answer_start": [1]}
        needles = ("line 5", "equal-length")
    elif case == "no_answers":
        records[1]["answers"] = {"text": [], "answer_start": []}
        needles = ("line 2", "no answers", "--version-2")
    else:
        extra = ["--stride", "60"]
        needles = ("stride", "[0, 45)")
    if path.suffix == ".jsonl":
        write_jsonl(path, records)
    out = tmp_path / "run"
    code, _, err = cli("-q", "train", "question-answering", "--backbone", tiny_model_dir("bert"), "--train-file", path,
                       "--output-dir", out, *WINDOWS, *FAST, *extra)
    assert_user_error(code, err, *needles)
    assert not (out / "model").exists()


def test_official_layout_locates_rows_by_article_and_question(cli: Cli, tiny_model_dir: Callable[[str], Path],
                                                             tmp_path: Path) -> None:
    layout = official_layout(rows())
    layout["data"][1]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] += 1
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(layout), encoding="utf-8")
    code, _, err = cli("-q", "train", "question-answering", "--backbone", tiny_model_dir("bert"), "--train-file", path,
                       "--output-dir", tmp_path / "run", *WINDOWS, *FAST)
    assert_user_error(code, err, "article 2 ('Teacher') paragraph 1 question 1 (id ", "1 of 30 rows")


def test_version_2_trains_on_unanswerable_questions(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    from texttune import QuestionAnswering

    records = rows()
    for r in records[::3]:
        r["answers"] = {"text": [], "answer_start": []}
    qa = QuestionAnswering(backbone=str(tiny_model_dir("bert")), max_length=96, stride=24, version_2=True, null_threshold=-1e9)
    qa.fit(train=write_jsonl(tmp_path / "v2.jsonl", records), output_dir=tmp_path / "run", max_steps=2, batch_size=4,
           options={"progress_bar": False, "max_eval_samples": 4})
    # A threshold of -1e9 always answers; +1e9 never does ("" with start/end None).
    assert qa.predict([{"question": "Who?", "context": "Ann met Bob."}])[0]["answer"]
    qa._task.null_threshold = 1e9
    assert qa.predict([{"question": "Who?", "context": "Ann met Bob."}])[0] | {"score": 0} == {
        "answer": "", "score": 0, "start": None, "end": None}


def test_exact_match_and_f1_have_intervals_and_paired_tests_against_each_baseline(run_dir: Path) -> None:
    metrics = read_json(run_dir / "metrics.json")
    for name in ("exact_match", "f1"):
        bounds = metrics["intervals"]["fine_tuned"][name]
        assert bounds["low"] <= metrics["fine_tuned"][name] <= bounds["high"]
    assert set(metrics["paired"]["baselines"]) == set(metrics["baselines"])
    assert all(len(read_json_lines(run_dir / f"predictions_baseline_{name}.jsonl")) == metrics["evaluation_data"]
               ["validation"]["rows"] for name in metrics["baselines"])


def read_json_lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
