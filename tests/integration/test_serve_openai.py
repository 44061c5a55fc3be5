"""The OpenAI-compatible routes driven by the real ``openai`` package against a live ``texttune serve``.

The client people already have is ``openai`` (and what is built on it); these tests use it as a
user would, on loopback, with an API key: chat and text completions, streaming, stop strings,
usage counts, its own exception classes for our errors. The tiny models are untrained, so their
text is noise; greedy decoding makes it deterministic, which is what the comparisons need.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

openai = pytest.importorskip("openai")

KEY_VAR = "TEXTTUNE_OPENAI_TEST_KEY"
KEY = "sk-test-5b1e"


class Server:
    """A ``texttune serve`` subprocess on a free loopback port, with an API key."""

    def __init__(self, model_dir: Path, *args: str) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", KEY_VAR: KEY}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "texttune.cli.main", "serve", str(model_dir), "--host", "127.0.0.1", "--port", "0",
             "--threads", "1", "--api-key-env", KEY_VAR, *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        line = self.process.stdout.readline() if self.process.stdout else ""
        match = re.search(r"on (http://127\.0\.0\.1:\d+) ", line)
        if match is None:
            self.process.kill()
            raise AssertionError(f"the server did not start: {line!r}")
        self.url = match.group(1)
        self.client = openai.OpenAI(base_url=f"{self.url}/v1", api_key=KEY, max_retries=0, timeout=60)
        deadline = time.monotonic() + 90
        while True:
            try:
                self.client.models.list()
                break
            except openai.APIStatusError as exc:  # 503 while the model loads
                if exc.status_code != 503 or time.monotonic() > deadline:
                    raise

    def metric(self, name: str) -> float:
        import httpx

        text = httpx.get(f"{self.url}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture(scope="module")
def models(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A causal-LM and a chat model on the tiny Llama whose tokenizer has a ChatML template, saved untrained."""
    from texttune import api

    root = tmp_path_factory.mktemp("openai-models")
    return {"causal": api.CausalLM(backbone=str(tiny_model_dir("llama-chat"))).save(root / "tiny-causal" / "model"),
            "chat": api.Chat(backbone=str(tiny_model_dir("llama-chat"))).save(root / "tiny-chat" / "model")}


@pytest.fixture(scope="module")
def causal(models: dict[str, Path]) -> Iterator[Server]:
    server = Server(models["causal"], "--max-new-tokens-limit", "480", "--max-wait-ms", "50")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chat(models: dict[str, Path]) -> Iterator[Server]:
    server = Server(models["chat"])
    yield server
    server.stop()


def _prompt_tokens(model_dir: Path, value: Any) -> int:
    from texttune import load

    return len(load(model_dir).prompts([value]).ids[0])


def test_models_lists_the_served_model(causal: Server) -> None:
    assert [m.id for m in causal.client.models.list().data] == ["tiny-causal"]


def test_a_completion_counts_its_tokens_and_says_why_it_ended(causal: Server, models: dict[str, Path]) -> None:
    done = causal.client.completions.create(model="tiny-causal", prompt="the cat sat on", max_tokens=6, temperature=0)
    choice = done.choices[0]
    assert choice.finish_reason == "length" and done.usage.completion_tokens == 6
    assert done.usage.prompt_tokens == _prompt_tokens(models["causal"], "the cat sat on")
    assert done.usage.total_tokens == done.usage.prompt_tokens + 6
    from texttune import load

    assert choice.text.strip() == load(models["causal"]).predict(["the cat sat on"], max_new_tokens=6)[0]


def test_streamed_text_joined_is_the_whole_answer(causal: Server) -> None:
    whole = causal.client.completions.create(model="tiny-causal", prompt="hello world", max_tokens=24, temperature=0)
    chunks = list(causal.client.completions.create(model="tiny-causal", prompt="hello world", max_tokens=24, temperature=0,
                                                   stream=True))
    pieces = [c.choices[0].text for c in chunks if c.choices and c.choices[0].text]
    assert len(pieces) >= 2
    assert "".join(pieces) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_a_stop_string_ends_the_text_before_it(causal: Server) -> None:
    whole = causal.client.completions.create(model="tiny-causal", prompt="a b c", max_tokens=24, temperature=0).choices[0].text
    stop = whole[len(whole) // 2:len(whole) // 2 + 3]
    cut = causal.client.completions.create(model="tiny-causal", prompt="a b c", max_tokens=24, temperature=0, stop=[stop])
    assert cut.choices[0].text == whole[:whole.index(stop)] and cut.choices[0].finish_reason == "stop"
    streamed = causal.client.completions.create(model="tiny-causal", prompt="a b c", max_tokens=24, temperature=0,
                                                stop=stop, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == cut.choices[0].text


def test_chat_uses_the_tokenizer_template_and_streams(causal: Server, models: dict[str, Path]) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "name a colour"}]
    whole = causal.client.chat.completions.create(model="tiny-causal", messages=messages, max_tokens=16, temperature=0)
    assert whole.choices[0].message.role == "assistant"
    from texttune import load

    template_text = load(models["causal"]).task.chat_input(messages)
    assert "<|im_start|>assistant" in template_text
    assert whole.usage.prompt_tokens == _prompt_tokens(models["causal"], template_text)
    stream = causal.client.chat.completions.create(model="tiny-causal", messages=messages, max_tokens=16, temperature=0,
                                                   stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == whole.usage.total_tokens


def test_the_chat_task_answers_chat_and_refuses_plain_completions(chat: Server, models: dict[str, Path]) -> None:
    from texttune import load

    messages = [{"role": "user", "content": "hello there"}]
    answer = chat.client.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=10, temperature=0)
    assert answer.choices[0].message.content.strip() == load(models["chat"]).predict([messages], max_new_tokens=10)[0]
    with pytest.raises(openai.BadRequestError, match="chat/completions"):
        chat.client.completions.create(model="tiny-chat", prompt="hello", max_tokens=4)


def test_errors_come_through_the_clients_own_exceptions(causal: Server) -> None:
    wrong = openai.OpenAI(base_url=f"{causal.url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    with pytest.raises(openai.BadRequestError) as unknown:
        causal.client.completions.create(model="tiny-causal", prompt="x", max_tokens=4, extra_body={"guided_json": {}})
    assert unknown.value.body["param"] == "guided_json" and "refused, not ignored" in unknown.value.body["message"]
    with pytest.raises(openai.BadRequestError, match="n"):
        causal.client.completions.create(model="tiny-causal", prompt="x", max_tokens=4, n=2)
    with pytest.raises(openai.NotFoundError, match="tiny-causal"):
        causal.client.completions.create(model="gpt-4o", prompt="x", max_tokens=4)
    with pytest.raises(openai.BadRequestError, match="limit of 480"):
        causal.client.completions.create(model="tiny-causal", prompt="x", max_tokens=481)


def test_concurrent_streams_each_get_their_own_tokens(causal: Server) -> None:
    prompts = ["one two", "the quick brown fox", "lorem ipsum dolor", "a"]
    expected = [causal.client.completions.create(model="tiny-causal", prompt=p, max_tokens=12, temperature=0).choices[0].text
                for p in prompts]

    def stream(prompt: str) -> str:
        chunks = causal.client.completions.create(model="tiny-causal", prompt=prompt, max_tokens=12, temperature=0,
                                                  stream=True)
        return "".join(c.choices[0].text for c in chunks if c.choices)

    before = causal.metric("texttune_batch_size_count")
    with ThreadPoolExecutor(len(prompts)) as pool:
        got = list(pool.map(stream, prompts * 2))
    assert got == expected * 2
    assert causal.metric("texttune_batch_size_count") - before < len(prompts) * 2  # some requests shared a batch


def test_a_client_that_leaves_stops_its_generation(causal: Server) -> None:
    before = causal.metric("texttune_generated_tokens_total")
    stream = causal.client.completions.create(model="tiny-causal", prompt="go on", max_tokens=480, temperature=0,
                                              stream=True)
    next(iter(stream))  # the first chunk arrived: the row is generating
    stream.close()
    deadline = time.monotonic() + 30
    while causal.metric('texttune_completions_total{reason="cancelled"}') < 1:
        assert time.monotonic() < deadline, "the row did not end after its client left"
        time.sleep(0.1)
    assert causal.metric("texttune_generated_tokens_total") - before < 480


def test_streaming_through_the_ctranslate2_backend(models: dict[str, Path], ready_client: Callable[..., Any]) -> None:
    """The OpenAI routes on CTranslate2 (float32: the same greedy text as transformers), streamed in pieces."""
    pytest.importorskip("ctranslate2")
    import json

    from texttune import load
    from texttune.config import serve_config
    from texttune.serving import ModelPredictor, create_app

    app = create_app(config=serve_config({}), load=lambda: ModelPredictor(models["causal"], load=load,
                                                                          backend="ctranslate2", compute_type="float32"))
    body = {"model": "tiny-causal", "prompt": "the quick brown fox", "max_tokens": 16, "temperature": 0}
    with ready_client(app) as client:
        assert client.get("/v1/model").json()["backend"]["name"] == "ctranslate2"
        whole = client.post("/v1/completions", json=body).json()["choices"][0]
        with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as response:
            events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e)["choices"][0] for e in events[:-1]]
    pieces = [c["text"] for c in chunks if c["text"]]
    assert len(pieces) >= 2 and "".join(pieces) == whole["text"] and chunks[-1]["finish_reason"] == whole["finish_reason"]
    assert whole["text"].strip() == load(models["causal"]).predict(["the quick brown fox"], max_new_tokens=16)[0]


def test_serve_refuses_a_bad_adapter_flag_in_one_line(cli: Callable[..., tuple[int, str, str]], models: dict[str, Path]) -> None:
    code, _, err = cli("serve", str(models["causal"]), "--port", "0", "--adapter", "no-equals-sign")
    assert code == 2 and "NAME=RUN_DIR" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("serve", str(models["causal"]), "--port", "0", "--adapter", f"x={models['causal'].parent / 'none'}")
    assert code == 2 and "no such run or model directory" in err
