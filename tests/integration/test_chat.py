"""The chat task end to end on the tiny Llama models: CLI and API training, the audit, save, load, predict, serve.

The conversations are constructed from the sample data in tests/data (not new data): python-faq questions and
their answers (``qg.jsonl``) as one user/assistant exchange, and Debian package descriptions
(``summarization.jsonl``) as a two-exchange conversation: the description and a request for its synopsis, the
synopsis, then a request for a shorter one and its first three words.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import texttune
from texttune import Chat
from texttune.config import serve_config
from texttune.errors import ConfigError
from texttune.serving import ModelPredictor, create_app
import tiny_models

DATA = Path(__file__).resolve().parents[1] / "data"
QUIET = {"progress_bar": False, "tensorboard": False, "samples_per_eval": 0, "max_eval_samples": 4}


def faq_conversations(n: int = 12) -> list[dict[str, Any]]:
    """python-faq question -> answer, one exchange, in the OpenAI layout."""
    rows = [json.loads(line) for line in (DATA / "qg.jsonl").read_text(encoding="utf-8").splitlines()[:n]]
    return [{"messages": [{"role": "user", "content": r["question"]}, {"role": "assistant", "content": r["answer_context"]}]}
            for r in rows]


def debian_conversations(n: int = 12) -> list[dict[str, Any]]:
    """Debian description -> synopsis -> a shorter synopsis, two exchanges, in the ShareGPT layout."""
    rows = [json.loads(line) for line in (DATA / "summarization.jsonl").read_text(encoding="utf-8").splitlines()[:n]]
    return [{"conversations": [
        {"from": "human", "value": f"{r['document']}\n\nGive this package's one-line synopsis."},
        {"from": "gpt", "value": r["summary"]},
        {"from": "human", "value": "Shorter, in three words?"},
        {"from": "gpt", "value": " ".join(r["summary"].split()[:3])},
    ]} for r in rows]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step CLI run of `texttune train chat` on the tiny ChatML Llama; its run directory."""
    from texttune.cli.main import main

    root = tmp_path_factory.mktemp("chat")
    train = write_jsonl(root / "conversations.jsonl", debian_conversations())
    code = main(["train", "chat", "--train-file", str(train), "--validation-file", str(train), "--backbone",
                 str(tiny_model_dir("llama-chat")), "--output-dir", str(root / "run"), "--max-steps", "2",
                 "--batch-size", "4", "--max-eval-samples", "4", "--max-length", "256", "--system-prompt",
                 "Answer briefly.", "--no-progress-bar", "--samples-per-eval", "0"])
    assert code == 0
    return root / "run"


def test_a_cli_run_trains_audits_and_evaluates(trained: Path) -> None:
    report = json.loads((trained / "data_report.json").read_text())["loss_mask"]
    assert report["rows_checked"] == 12 and 0 < report["loss_share"] < 0.5
    assert report["rows_without_loss"]["count"] == report["stop_token_not_trained"]["count"] == 0
    metrics = json.loads((trained / "metrics.json").read_text())
    for section in ("zero_shot", "fine_tuned"):
        assert {"rougeL", "exact_match", "gen_len", "perplexity", "loss"} <= set(metrics[section])
    assert set(metrics["baselines"]) == {"echo_last_user"}
    # the baseline's records make a paired test on the same rows; intervals cover every reported metric
    assert "rougeL" in metrics["paired"]["baselines"]["echo_last_user"]
    assert {"rougeL", "perplexity"} <= set(metrics["intervals"]["fine_tuned"])
    records = [json.loads(line) for line in (trained / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 4
    first = records[0]
    assert [m["role"] for m in first["conversation"]] == ["system", "user", "assistant", "user"]
    assert first["conversation"][0]["content"] == "Answer briefly." and first["loss_tokens"] > 0
    assert first["reference"] == " ".join(debian_conversations()[0]["conversations"][1]["value"].split()[:3])


def test_the_saved_model_keeps_its_template_and_predicts_replies(trained: Path, tiny_model_dir: Callable[[str], Path]) -> None:
    from transformers import AutoTokenizer, GenerationConfig

    model_dir = trained / "model"
    assert AutoTokenizer.from_pretrained(model_dir).chat_template == tiny_models.CHATML_TEMPLATE
    generation = GenerationConfig.from_pretrained(model_dir)
    end = AutoTokenizer.from_pretrained(model_dir).convert_tokens_to_ids("<|im_end|>")
    assert end in (generation.eos_token_id if isinstance(generation.eos_token_id, list) else [generation.eos_token_id])
    meta = json.loads((model_dir / "texttune.json").read_text())["task_state"]
    assert meta["end_of_turn"] == "<|im_end|>" and meta["system_prompt"] == "Answer briefly."
    model = texttune.load(model_dir)
    history = [{"role": "user", "content": "What is gzip?"}, {"role": "assistant", "content": "A compressor."},
               {"role": "user", "content": "Shorter?"}]
    replies = model.predict(["Describe gzip.", history, {"messages": history}], max_new_tokens=4)
    assert len(replies) == 3 and all(isinstance(r, str) for r in replies)
    assert replies[1] == replies[2]  # greedy: the same conversation gives the same reply


def test_the_server_answers_a_conversation(trained: Path, ready_client: Callable[..., Any]) -> None:
    app = create_app(config=serve_config({}), load=lambda: ModelPredictor(trained / "model", load=texttune.load))
    history = [{"role": "user", "content": "What is gzip?"}]
    with ready_client(app) as client:
        response = client.post("/v1/predict", json={"inputs": {"messages": history}, "max_new_tokens": 3})
        assert response.status_code == 200, response.text
        assert response.json()["outputs"] == texttune.load(trained / "model").predict([history], max_new_tokens=3)
        refused = client.post("/v1/predict", json={"inputs": {"messages": [{"role": "robot", "content": "hi"}]}})
        assert refused.status_code == 422 and "unknown role 'robot'" in refused.text


def test_ctranslate2_replies_as_transformers_and_the_openai_route_streams_them(trained: Path,
                                                                              ready_client: Callable[..., Any]) -> None:
    """The chat model on CTranslate2 (float32) stops at the end-of-turn token as transformers does; the OpenAI chat
    route streams the same reply."""
    pytest.importorskip("ctranslate2")
    histories = [[{"role": "user", "content": q}] for q in ("What is gzip?", "Name a text editor.", "What does ls do?")]
    expected = texttune.load(trained / "model").predict(histories, max_new_tokens=12)
    assert all(expected)  # replies with text, so the comparisons below compare something
    fast = texttune.load(trained / "model", backend="ctranslate2", compute_type="float32")
    assert fast.predict(histories, max_new_tokens=12) == expected
    app = create_app(config=serve_config({}), load=lambda: ModelPredictor(trained / "model", load=texttune.load,
                                                                          backend="ctranslate2", compute_type="float32"))
    with ready_client(app) as client:
        body = {"model": "run", "messages": histories[0], "max_tokens": 12, "temperature": 0, "stream": True}
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events).strip() == expected[0]


def test_a_template_file_gives_a_plain_backbone_chat(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    """The plain tiny Llama has no template: --chat-template gives it one (turns end with its EOS), kept on save."""
    template = tmp_path / "turns.jinja"
    template.write_text("{% for m in messages %}{{ '### ' + m['role'] + ':\n' + m['content'] + eos_token + '\n' }}"
                        "{% endfor %}{% if add_generation_prompt %}{{ '### assistant:\n' }}{% endif %}")
    with pytest.raises(ConfigError, match="has no chat template; give one with --chat-template"):
        Chat(backbone=str(tiny_model_dir("llama")), options=QUIET).fit(train={"messages": [m["messages"] for m in faq_conversations()]},
                                                                        output_dir=tmp_path / "refused", max_steps=1)
    model = Chat(backbone=str(tiny_model_dir("llama")), chat_template=str(template), max_length=256, train_on="last",
                 options={**QUIET, "baselines": False})
    result = model.fit(train={"messages": [m["messages"] for m in faq_conversations()]}, output_dir=tmp_path / "run",
                       max_steps=2, batch_size=4)
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(result.model_dir).chat_template == template.read_text()
    assert len(texttune.load(result.model_dir).predict(["How do I read a file?"], max_new_tokens=3)) == 1


def test_conversations_too_long_are_dropped_and_counted(tiny_model_dir: Callable[[str], Path], tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    rows = faq_conversations() + [{"messages": [{"role": "user", "content": "word " * 300},
                                                {"role": "assistant", "content": "Too long."}]}]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    model = Chat(backbone=str(tiny_model_dir("llama-chat")), max_length=200, truncation="drop",
                 options={**QUIET, "baselines": False})
    with caplog.at_level("WARNING", logger="texttune"):
        result = model.fit(train=train, validation=train, output_dir=tmp_path / "run", max_steps=1, batch_size=4)
    stats = json.loads((result.run_dir / "data_stats.json").read_text())
    assert stats["train"]["rows_dropped_too_long"] == 1 and stats["train"]["dropped_rows"] == [12]
    assert "1 of 13 conversations dropped: longer than --max-length 200 tokens (e.g. row 13)" in caplog.text


def test_cli_predict_reads_plain_lines_and_either_layout(trained: Path, cli: Callable[..., Any], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    inputs = write_jsonl(tmp_path / "inputs.jsonl", [{"messages": [{"role": "user", "content": "What is gzip?"}]},
                                                     {"prompt": "What is gzip?"}])
    code, out, err = cli("-q", "predict", trained, "--input-file", inputs, "--max-new-tokens", "3")
    assert code == 0, err
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["prediction"] == second["prediction"]  # one user message, whichever layout
    monkeypatch.setattr("sys.stdin", io.StringIO("What is gzip?\n"))
    code, out, err = cli("-q", "predict", trained, "--max-new-tokens", "3")
    assert code == 0, err
    assert json.loads(out)["prediction"] == first["prediction"]  # a plain line is the user's message


def test_the_report_shows_conversations_as_turns(trained: Path) -> None:
    from texttune.runs.report import write_report

    page = write_report(trained).read_text(encoding="utf-8")
    assert "<b>system:</b> Answer briefly." in page and "<b>user:</b>" in page
    assert '{&quot;role&quot;' not in page  # not a JSON dump of the turns
