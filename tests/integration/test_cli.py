"""The ``texttune`` command line, end to end on the tiny test models.

Why: the CLI is the product for most users. A run must leave a complete,
self-describing run directory; ``evaluate`` and ``predict`` must work on it; the
saved model must load with plain transformers; and every user mistake must end
with exit status 2 and one line that says what to fix, never a traceback or a
half-written model.

Most tests call ``texttune.cli.main.main`` in-process (fast: the heavy imports
happen once); a few run the real executable to check exit codes and stderr.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from texttune.cli.main import main
from run_files import assert_user_error, read_json, read_jsonl

DATA = Path(__file__).resolve().parents[1] / "data"
KINDS = ("t5", "bart", "llama", "llama-chat", "bert2bert")
FAST = ["--max-steps", "2", "--batch-size", "4", "--no-progress-bar", "--max-eval-samples", "6"]
SEQ2SEQ = {"t5", "bart", "bert2bert"}

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``texttune ARGS...`` in-process: (exit status, stdout, stderr)."""

    def run(*argv: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()  # drop anything printed before
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def train_argv(backbone: Path, out: Path, *extra: str | Path, task: str = "summarization",
               train_file: Path = DATA / "summarization.jsonl") -> list[str]:
    return ["-q", "train", task, "--backbone", str(backbone), "--train-file", str(train_file),
            "--output-dir", str(out), *FAST, *map(str, extra)]


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``trained(kind)``: a summarization run directory, trained once per module and kind."""
    runs: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in runs:
            out = tmp_path_factory.mktemp(f"run-{kind}") / "run"
            code = main(train_argv(tiny_model_dir(kind), out))
            assert code == 0, f"training {kind} failed"
            runs[kind] = out
        return runs[kind]

    return get


# --------------------------------------------------------------------------- train / evaluate / predict per backbone


@pytest.mark.parametrize("kind", KINDS)
def test_train_writes_a_complete_run_directory(kind: str, trained: Callable[[str], Path]) -> None:
    run = trained(kind)
    for name in ("config.yaml", "environment.json", "status.json", "data_stats.json", "metrics.json",
                 "predictions.jsonl", "checkpoints/last.ckpt", "model/texttune.json", "model/config.json",
                 "model/generation_config.json"):
        assert (run / name).is_file(), name
    status = read_json(run / "status.json")
    assert status["state"] == "completed"
    assert status["steps"] == 2

    metrics = read_json(run / "metrics.json")
    assert set(metrics) >= {"baselines", "zero_shot", "fine_tuned", "steps"}
    assert metrics["steps"] == 2
    assert set(metrics["baselines"]) == {"lead_1"}  # one-line synopses: lead-1
    for section in (metrics["baselines"]["lead_1"], metrics["zero_shot"], metrics["fine_tuned"]):
        assert set(section) == {"rouge1", "rouge2", "rougeL", "rougeLsum", "gen_len"}
        assert all(isinstance(v, (int, float)) for v in section.values())

    stats = read_json(run / "data_stats.json")
    assert stats["train"]["rows"] + stats["validation"]["rows"] == 40  # 10% held out, seeded
    predictions = read_jsonl(run / "predictions.jsonl")
    assert len(predictions) == stats["validation"]["rows"]
    assert all(set(p) == {"input", "reference", "prediction"} and isinstance(p["prediction"], str) for p in predictions)

    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert config["task"] == "summarization"
    assert config["max_steps"] == 2 and config["batch_size"] == 4 and config["progress_bar"] is False

    meta = read_json(run / "model/texttune.json")
    assert meta["task"] == "summarization"
    assert meta["family"] == ("seq2seq" if kind in SEQ2SEQ else "causal")
    assert meta["trained_steps"] == 2
    assert not list(run.glob(".model*")), "a temporary model directory was left behind"


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_writes_flat_metrics(kind: str, trained: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    metrics_file = tmp_path / "m.json"
    predictions_file = tmp_path / "p.jsonl"
    code, out, err = cli("-q", "evaluate", trained(kind), "--data-file", DATA / "summarization-val.jsonl",
                         "--metrics-file", metrics_file, "--predictions-file", predictions_file, "--max-eval-samples", "5",
                         "--json")
    assert code == 0, err
    metrics = read_json(metrics_file)
    assert {"rouge1", "rougeL", "gen_len"} <= set(metrics)
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values())
    assert json.loads(out) == metrics
    rows = read_jsonl(predictions_file)
    assert len(rows) == 5
    references = [json.loads(line)["summary"] for line in (DATA / "summarization-val.jsonl").read_text().splitlines()[:5]]
    assert [r["reference"] for r in rows] == references


@pytest.mark.parametrize("kind", KINDS)
def test_predict_to_jsonl_and_csv(kind: str, trained: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    source = [json.loads(line) for line in (DATA / "summarization-val.jsonl").read_text().splitlines()[:3]]
    code, _, err = cli("-q", "predict", trained(kind), "--input-file", DATA / "summarization-val.jsonl",
                       "--output-file", tmp_path / "out.jsonl", "--max-predict-samples", "3")
    assert code == 0, err
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [{k: v for k, v in r.items() if k != "prediction"} for r in rows] == source  # inputs echoed, in order
    assert all(isinstance(r["prediction"], str) for r in rows)

    code, _, err = cli("-q", "predict", trained(kind), "--input-file", DATA / "summarization.csv",
                       "--output-file", tmp_path / "out.csv", "--max-predict-samples", "2")
    assert code == 0, err
    with (tmp_path / "out.csv").open(encoding="utf-8", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 2
    assert list(table[0]) == ["document", "summary", "prediction"]


@pytest.mark.parametrize("kind", KINDS)
def test_predict_from_stdin_to_stdout(kind: str, trained: Callable[[str], Path], cli: Cli,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    lines = ["The package provides a library for reading configuration files.", "", "A tool to convert images."]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    code, out, err = cli("-q", "predict", trained(kind), "--max-new-tokens", "5")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in rows] == [lines[0], lines[2]]  # blank lines skipped
    assert all(isinstance(r["prediction"], str) for r in rows)


@pytest.mark.parametrize("kind", KINDS)
def test_saved_model_runs_with_plain_transformers(kind: str, trained: Callable[[str], Path]) -> None:
    """model/ loads with the Auto classes and generates exactly what texttune predicts."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.pipelines import SUPPORTED_TASKS

    import texttune

    model_dir = trained(kind) / "model"
    meta = read_json(model_dir / "texttune.json")
    prefix = meta["task_state"]["prefix"]
    text = "This package provides a small library for parsing configuration files."
    expected = texttune.load(model_dir).predict([text])[0]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    max_new_tokens = read_json(model_dir / "generation_config.json")["max_new_tokens"]
    assert max_new_tokens == meta["task_state"]["max_new_tokens"]

    if meta["family"] == "seq2seq":
        model = AutoModelForSeq2SeqLM.from_pretrained(model_dir)
        if "text2text-generation" in SUPPORTED_TASKS:  # transformers 4; removed in 5
            pipe = transformers.pipeline("text2text-generation", model=model, tokenizer=tokenizer)
            got = pipe(prefix + text, do_sample=False)[0]["generated_text"]
        else:
            ids = model.generate(**tokenizer(prefix + text, return_tensors="pt"))  # max_new_tokens from the saved config
            assert ids.shape[1] <= max_new_tokens + 1
            got = tokenizer.decode(ids[0], skip_special_tokens=True)
    else:
        AutoModelForCausalLM.from_pretrained(model_dir)
        pipe = transformers.pipeline("text-generation", model=str(model_dir))
        if tokenizer.chat_template:
            chat = [{"role": "user", "content": f"{prefix}\n\n{text}"}]
            got = pipe(chat, do_sample=False)[0]["generated_text"][-1]["content"]
        else:
            got = pipe(f"{prefix}\n\n{text}\n\nResponse:", do_sample=False, return_full_text=False)[0]["generated_text"]
    assert got.strip() == expected


# --------------------------------------------------------------------------- other tasks


def test_translation_flat_columns(tiny_model_dir: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, out, err = cli(*train_argv(tiny_model_dir("t5"), run, "--source-lang", "en", "--target-lang", "fr",
                                     task="translation", train_file=DATA / "translation.jsonl"))
    assert code == 0, err
    assert "copy_source" in out
    meta = read_json(run / "model/texttune.json")
    assert meta["task_state"]["prefix"] == "translate English to French: "
    assert (meta["task_state"]["source_lang"], meta["task_state"]["target_lang"]) == ("en", "fr")
    metrics = read_json(run / "metrics.json")
    assert set(metrics["fine_tuned"]) == {"bleu", "chrf", "gen_len"}
    assert set(metrics["baselines"]) == {"copy_source"}

    code, out, err = cli("-q", "evaluate", run, "--data-file", DATA / "translation.jsonl", "--max-eval-samples", "4",
                         "--metrics-file", tmp_path / "m.json")
    assert code == 0, err
    assert set(read_json(tmp_path / "m.json")) == {"bleu", "chrf", "gen_len"}


def test_translation_nested_layout(tiny_model_dir: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, _, err = cli(*train_argv(tiny_model_dir("bart"), run, task="translation",
                                   train_file=DATA / "translation-nested.jsonl"))
    assert code == 0, err
    stats = read_json(run / "data_stats.json")
    assert stats["train"]["rows"] + stats["validation"]["rows"] == 10
    assert read_json(run / "model/texttune.json")["task_state"]["prefix"] == ""  # BART takes no prefix

    code, _, err = cli("-q", "evaluate", run, "--data-file", DATA / "translation-nested.jsonl", "--max-eval-samples", "3",
                       "--metrics-file", tmp_path / "m.json")
    assert code == 0, err
    assert "bleu" in read_json(tmp_path / "m.json")

    code, _, err = cli("-q", "predict", run, "--input-file", DATA / "translation-nested.jsonl",
                       "--max-predict-samples", "2", "--output-file", tmp_path / "out.csv")
    assert code == 0, err
    with (tmp_path / "out.csv").open(encoding="utf-8", newline="") as handle:
        table = list(csv.DictReader(handle))
    first = json.loads((DATA / "translation-nested.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert json.loads(table[0]["translation"]) == first["translation"]  # nested cells written as JSON


def test_text2text_question_generation(tiny_model_dir: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, out, err = cli(*train_argv(tiny_model_dir("llama-chat"), run, "--input-column", "answer_context",
                                     "--target-column", "question", task="text2text", train_file=DATA / "qg.jsonl"))
    assert code == 0, err
    meta = read_json(run / "model/texttune.json")
    assert meta["columns"] == {"input": "answer_context", "target": "question"}
    assert set(read_json(run / "metrics.json")["fine_tuned"]) >= {"rougeL", "bleu", "chrf"}

    # Data with other column names: evaluate maps them with the column flags.
    renamed = tmp_path / "renamed.jsonl"
    rows = [json.loads(line) for line in (DATA / "qg.jsonl").read_text(encoding="utf-8").splitlines()[:4]]
    renamed.write_text("".join(json.dumps({"ctx": r["answer_context"], "q": r["question"]}) + "\n" for r in rows))
    code, out, err = cli("-q", "evaluate", run, "--data-file", renamed, "--input-column", "ctx", "--target-column", "q", "--json")
    assert code == 0, err
    assert "rougeL" in json.loads(out)

    # The saved column names are remembered: predict on the training layout needs no flags.
    code, out, err = cli("-q", "predict", run, "--input-file", DATA / "qg.jsonl", "--max-predict-samples", "2",
                         "--max-new-tokens", "4")
    assert code == 0, err
    assert [json.loads(line)["question"] for line in out.splitlines()] == [r["question"] for r in rows[:2]]


# --------------------------------------------------------------------------- --config


def test_config_file_with_flags_overriding_it(tiny_model_dir: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "backbone": str(tiny_model_dir("t5")), "train_file": str(DATA / "summarization.jsonl"),
        "output_dir": str(tmp_path / "from-yaml"), "max_steps": 3, "batch_size": 4, "learning_rate": 0.001,
        "max_eval_samples": 6, "progress_bar": False, "text_column": "document",
    }), encoding="utf-8")
    run = tmp_path / "from-flags"
    code, _, err = cli("-q", "train", "summarization", "--config", config, "--max-steps", "2", "--output-dir", run)
    assert code == 0, err
    assert not (tmp_path / "from-yaml").exists()
    assert read_json(run / "metrics.json")["steps"] == 2
    saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert saved["max_steps"] == 2 and saved["learning_rate"] == 0.001 and saved["text_column"] == "document"

    # A run's config.yaml is a valid --config file: the rerun resolves to the same options.
    again = tmp_path / "again"
    code, _, err = cli("-q", "train", "summarization", "--config", run / "config.yaml", "--output-dir", again)
    assert code == 0, err
    rerun = yaml.safe_load((again / "config.yaml").read_text(encoding="utf-8"))
    assert {k: v for k, v in rerun.items() if k != "output_dir"} == {k: v for k, v in saved.items() if k != "output_dir"}


def test_unknown_key_in_config_file(tiny_model_dir: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"backbone: {tiny_model_dir('t5')}\nmax_stepz: 3\n", encoding="utf-8")
    code, _, err = cli("-q", "train", "summarization", "--config", config, "--train-file", DATA / "summarization.jsonl",
                       "--output-dir", tmp_path / "run")
    assert_user_error(code, err, "unknown option 'max_stepz' (did you mean 'max_steps'?)")
    assert not (tmp_path / "run").exists()


def test_nested_config_file_is_refused(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("train:\n  max_steps: 3\n", encoding="utf-8")
    code, _, err = cli("-q", "train", "summarization", "--config", config)
    assert_user_error(code, err, "option 'train' must be a single value")


# --------------------------------------------------------------------------- user errors


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


BAD_INPUTS: dict[str, tuple[Callable[[Path, Callable[[str], Path]], list[str]], str]] = {
    "missing train file": (
        lambda tmp, models: train_argv(models("t5"), tmp / "run", train_file=tmp / "nope.jsonl"),
        "data file not found"),
    "empty train file": (
        lambda tmp, models: train_argv(models("t5"), tmp / "run", train_file=_write(tmp / "empty.jsonl", "")),
        "the file is empty"),
    "missing column": (
        lambda tmp, models: train_argv(models("t5"), tmp / "run", train_file=_write(
            tmp / "cols.jsonl", '{"body": "some text", "title": "a title"}\n')),
        "available columns: 'body', 'title'"),
    "unknown column flag value": (
        lambda tmp, models: train_argv(models("t5"), tmp / "run", "--summary-column", "headline"),
        "no column 'headline' (from --summary-column); available columns: 'document', 'summary'"),
    "malformed jsonl": (
        lambda tmp, models: train_argv(models("t5"), tmp / "run", train_file=_write(
            tmp / "bad.jsonl", '{"document": "a b", "summary": "a"}\n{"document": "c d", "summary": \n')),
        "bad.jsonl line 2: invalid JSON"),
    "empty csv cell": (
        lambda tmp, models: train_argv(models("t5"), tmp / "run", train_file=_write(
            tmp / "nan.csv", 'document,summary\n"some text here",first\n"more text",\n')),
        "nan.csv row 2 (after the header): column 'summary' is empty (missing/NaN)"),
    "unreachable hub backbone": (
        lambda tmp, models: train_argv(Path("google/not-a-model"), tmp / "run"),
        "'google/not-a-model' is not in the local cache and the model hub is off (offline mode: HF_HUB_OFFLINE is set)"),
    "directory that is not a model": (
        lambda tmp, models: train_argv(tmp, tmp / "run"),
        "is not a model directory (no config.json in it)"),
    "encoder-only backbone": (
        lambda tmp, models: train_argv(models("bert"), tmp / "run"),
        "this backbone is encoder-only"),
    "badly typed option": (
        lambda tmp, models: ["-q", "train", "summarization", "--max-steps", "two", "--output-dir", str(tmp / "run")],
        "option 'max_steps' needs an integer, got 'two'"),
    "no training data": (
        lambda tmp, models: ["-q", "train", "summarization", "--backbone", str(models("t5")), "--output-dir", str(tmp / "run")],
        "no training data: pass --train-file"),
    "resume without a checkpoint": (
        lambda tmp, models: train_argv(models("t5"), tmp / "run", "--resume", "latest"),
        "cannot resume: no checkpoint at"),
    "evaluate without data": (
        lambda tmp, models: ["-q", "evaluate", str(tmp)],
        "pass --data-file"),
    "evaluate a directory without a model": (
        lambda tmp, models: ["-q", "evaluate", str(tmp), "--data-file", str(DATA / "summarization.jsonl")],
        "is not a texttune model directory"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_status_2(case: str, cli: Cli, tmp_path: Path,
                                                 tiny_model_dir: Callable[[str], Path]) -> None:
    import lightning.pytorch  # noqa: F401 - imported by every train command; keep it out of the timing

    make_argv, needle = BAD_INPUTS[case]
    argv = make_argv(tmp_path, tiny_model_dir)
    start = time.perf_counter()
    code, _, err = cli(*argv)
    elapsed = time.perf_counter() - start
    assert_user_error(code, err, needle)
    assert not (tmp_path / "run").exists(), "a run directory was created for input that could never train"
    assert elapsed < 10, f"{case}: {elapsed:.1f}s to report a user error"


def test_unreachable_hub_backbone_fails_fast(cli: Cli, tmp_path: Path) -> None:
    import lightning.pytorch  # noqa: F401

    start = time.perf_counter()
    code, _, err = cli(*train_argv(Path("google/not-a-model"), tmp_path / "run"))
    assert time.perf_counter() - start < 3, "an offline hub name must not wait for network retries"
    assert_user_error(code, err, "Pass a local model directory")


def test_fp16_with_t5_suggests_bf16(tiny_model_dir: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, _, err = cli(*train_argv(tiny_model_dir("t5"), run, "--precision", "16-mixed"))
    assert_user_error(code, err, "--precision bf16-mixed")
    assert "overflows" in err
    assert not (run / "model").exists()
    assert read_json(run / "status.json")["state"] == "failed"


def test_existing_output_dir_needs_resume(tiny_model_dir: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("someone's earlier work", encoding="utf-8")
    code, _, err = cli(*train_argv(tiny_model_dir("t5"), run))
    assert_user_error(code, err, "already exists and is not empty")
    assert "--resume" in err
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]  # untouched


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_non_positive_sample_limits_are_user_errors(limit: str, trained: Callable[[str], Path], cli: Cli) -> None:
    code, _, err = cli("-q", "evaluate", trained("t5"), "--data-file", DATA / "summarization-val.jsonl",
                       "--max-eval-samples", limit)
    assert_user_error(code, err, f"option 'max_eval_samples' must be > 0, got {limit}")
    code, _, err = cli("-q", "predict", trained("t5"), "--input-file", DATA / "summarization-val.jsonl",
                       "--max-predict-samples", limit)
    assert_user_error(code, err, f"option 'max_predict_samples' must be > 0, got {limit}")


def test_predict_with_missing_input_column(trained: Callable[[str], Path], cli: Cli) -> None:
    code, _, err = cli("-q", "predict", trained("t5"), "--input-file", DATA / "translation.jsonl")
    assert_user_error(code, err, "available columns: 'en', 'fr'")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "summarize", "--train-file", "x.jsonl"], "invalid choice: 'summarize'"),
        (["train", "summarization", "--max-stepz", "3"], "unrecognized arguments: --max-stepz 3"),
        (["train", "summarization", "--lr-schedule", "cos"], "invalid choice: 'cos'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_argparse_errors_exit_2(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- resume


def test_resume_continues_to_the_new_step_count(tiny_model_dir: Callable[[str], Path], cli: Cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, _, err = cli(*train_argv(tiny_model_dir("t5"), run))
    assert code == 0, err
    assert read_json(run / "metrics.json")["steps"] == 2
    first_zero_shot = read_json(run / "metrics.json")["zero_shot"]

    argv = train_argv(tiny_model_dir("t5"), run, "--resume", "latest")
    argv[argv.index("--max-steps") + 1] = "4"
    code, _, err = cli(*argv)
    assert code == 0, err
    metrics = read_json(run / "metrics.json")
    assert metrics["steps"] == 4
    assert metrics["zero_shot"] == first_zero_shot  # measured once, before any training
    status = read_json(run / "status.json")
    assert (status["state"], status["steps"]) == ("completed", 4)
    assert read_json(run / "model/texttune.json")["trained_steps"] == 4
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["max_steps"] == 4 and "resume" not in saved  # a --config rerun elsewhere starts afresh


# --------------------------------------------------------------------------- the real executable


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def test_module_entry_point_reports_errors_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "texttune.cli.main", "evaluate", str(tmp_path / "nope"), "--data-file", "x.jsonl"],
        capture_output=True, text=True, env=_env(), timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr == f"texttune: error: {tmp_path / 'nope'}: no such run or model directory\n"
    assert result.stdout == ""


def test_module_entry_point_argparse_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "texttune.cli.main", "train", "summarize"],
                            capture_output=True, text=True, env=_env(), timeout=120)
    assert result.returncode == 2
    assert "invalid choice: 'summarize'" in result.stderr
    assert "Traceback" not in result.stderr


def test_console_script_predicts_from_a_pipe(trained: Callable[[str], Path]) -> None:
    script = Path(sys.executable).with_name("texttune")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "texttune.cli.main"]
    result = subprocess.run(
        [*command, "-q", "predict", str(trained("t5")), "--max-new-tokens", "4"],
        input='{"document": "A library for parsing files.", "id": 7}\n{"document": "A tool to convert images.", "id": 8}\n',
        capture_output=True, text=True, env=_env(), timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == [7, 8]  # the input records are echoed, in order
    assert all(isinstance(r["prediction"], str) for r in rows)
