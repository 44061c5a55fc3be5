"""The chat task's loss masks, token by token, for three template families; truncation; every bad input.

Masks are checked as runs of tokens: every token of the rendering belongs to one run, trained or not, and each
run's decoded text is written out in full below, so a token in the wrong run (the end-of-turn marker left out, a
newline of the template trained, a header trained) fails. The templates are the tiny test tokenizer's own ChatML,
SmolLM2-135M-Instruct's template verbatim (with its default system turn), and a Llama-3-style template (the tiny
tokenizer gets Llama 3's header and end-of-turn markers as special tokens for it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from texttune.data import ColumnRole, from_lists, load_table, select_columns
from texttune.errors import BackboneError, ConfigError, DataError
from texttune.tasks import loss_mask
from texttune.tasks.chat import ChatOptions, ChatTask
from texttune.tasks.conversations import IGNORE
import tiny_models

SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3_TEMPLATE = (
    "{% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What does gzip do?"},
    {"role": "assistant", "content": "It compresses files."},
    {"role": "user", "content": "And gunzip?"},
    {"role": "assistant", "content": "It restores them."},
]


@pytest.fixture(scope="module")
def chatml() -> Any:
    return tiny_models.build_tiny_tokenizer("llama-chat")


@pytest.fixture(scope="module")
def smollm2() -> Any:
    tok = tiny_models.build_tiny_tokenizer("llama-chat")
    tok.chat_template = SMOLLM2_TEMPLATE
    return tok


@pytest.fixture(scope="module")
def llama3() -> Any:
    tok = tiny_models.build_tiny_tokenizer("llama")  # no template of its own
    tok.add_special_tokens({"bos_token": "<|begin_of_text|>", "additional_special_tokens": LLAMA3_SPECIALS})
    tok.chat_template = LLAMA3_TEMPLATE
    return tok


def task_for(tokenizer: Any, **options: Any) -> ChatTask:
    task = ChatTask(ChatOptions(**options))
    task._attach(tokenizer)
    if "max_length" in options:
        task.max_length = options["max_length"]
    return task


def encode(task: ChatTask, columns: dict[str, list[Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    features, stats = task.encode(from_lists(columns).rows)
    return [features[i] for i in range(len(features))], stats


def runs(tokenizer: Any, feature: dict[str, Any]) -> list[tuple[bool, str]]:
    """The rendering as maximal runs of (trained?, decoded text); labels must equal the inputs where trained."""
    out: list[tuple[bool, list[int]]] = []
    for token, label in zip(feature["input_ids"], feature["labels"]):
        trained = label != IGNORE
        assert not trained or label == token
        if out and out[-1][0] == trained:
            out[-1][1].append(token)
        else:
            out.append((trained, [token]))
    return [(trained, tokenizer.decode(ids)) for trained, ids in out]


def test_chatml_masks_train_each_reply_and_its_end_of_turn(chatml: Any) -> None:
    task = task_for(chatml)
    assert (task.end_text, task.end_id) == ("<|im_end|>", chatml.convert_tokens_to_ids("<|im_end|>"))
    [feature], stats = encode(task, {"messages": [CONVERSATION]})
    assert runs(chatml, feature) == [
        (False, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat does gzip do?<|im_end|>\n"
                "<|im_start|>assistant\n"),
        (True, "It compresses files.<|im_end|>"),
        (False, "\n<|im_start|>user\nAnd gunzip?<|im_end|>\n<|im_start|>assistant\n"),
        (True, "It restores them.<|im_end|>"),
        (False, "\n"),
    ]
    assert feature["row"] == 0 and stats["loss_tokens"] == sum(x != IGNORE for x in feature["labels"])


def test_smollm2_template_with_its_default_system_turn(smollm2: Any) -> None:
    [feature], _ = encode(task_for(smollm2), {"messages": [CONVERSATION[1:3]]})
    assert runs(smollm2, feature) == [
        (False, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                "<|im_start|>user\nWhat does gzip do?<|im_end|>\n<|im_start|>assistant\n"),
        (True, "It compresses files.<|im_end|>"),
        (False, "\n"),
    ]


def test_llama3_template_trims_replies_and_ends_turns_with_eot(llama3: Any) -> None:
    task = task_for(llama3)
    assert task.end_text == "<|eot_id|>"
    padded = [*CONVERSATION[:2], {"role": "assistant", "content": "  It compresses files.\n"}]  # the template trims
    [feature], _ = encode(task, {"messages": [padded]})
    assert runs(llama3, feature) == [
        (False, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                "<|start_header_id|>user<|end_header_id|>\n\nWhat does gzip do?<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n"),
        (True, "It compresses files.<|eot_id|>"),
    ]


def test_train_on_last_trains_the_last_reply_only(chatml: Any) -> None:
    [feature], _ = encode(task_for(chatml, train_on="last"), {"messages": [CONVERSATION]})
    trained = [text for is_trained, text in runs(chatml, feature) if is_trained]
    assert trained == ["It restores them.<|im_end|>"]


def test_the_three_layouts_give_the_same_features(chatml: Any) -> None:
    task = task_for(chatml, system_prompt="Be brief.")
    pair = CONVERSATION[1:3]
    openai, _ = encode(task, {"messages": [pair]})
    sharegpt, _ = encode(task, {"messages": [[{"from": "human", "value": pair[0]["content"]},
                                               {"from": "gpt", "value": pair[1]["content"]}]]})
    prompts, _ = encode(task, {"prompt": [pair[0]["content"]], "completion": [pair[1]["content"]]})
    listed, _ = encode(task, {"prompt": [[pair[0]]], "completion": [[pair[1]]]})
    assert openai == sharegpt == prompts == listed
    assert runs(chatml, openai[0])[0][1].startswith("<|im_start|>system\nBe brief.<|im_end|>")  # --system-prompt added


def long_conversation(exchanges: int) -> list[dict[str, str]]:
    turns = [{"role": "system", "content": "Be brief."}]
    for i in range(exchanges):
        turns += [{"role": "user", "content": f"Question number {i} about the package manager?"},
                  {"role": "assistant", "content": f"Answer number {i}."}]
    return turns


def test_truncation_left_drops_the_earliest_exchanges_and_keeps_the_system_prompt(chatml: Any) -> None:
    short, long = long_conversation(1), long_conversation(4)
    whole = len(encode(task_for(chatml), {"messages": [long]})[0][0]["input_ids"])
    last_two = len(encode(task_for(chatml), {"messages": [[long[0], *long[-4:]]]})[0][0]["input_ids"])
    task = task_for(chatml, max_length=last_two)  # fits the system prompt and the last two exchanges
    too_long = [long[0], {"role": "user", "content": "word " * 400}, long[-1]]
    features, stats = encode(task, {"messages": [short, long, too_long]})
    assert whole > last_two
    assert (stats["rows_cut_left"], stats["exchanges_dropped"], stats["rows_dropped_too_long"]) == (1, 2, 1)
    assert [f["row"] for f in features] == [0, 1]  # the row index of the table, for the audit's messages
    text = runs(chatml, features[1])
    assert text[0][1].startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQuestion number 2")
    assert [t for trained, t in text if trained] == ["Answer number 2.<|im_end|>", "Answer number 3.<|im_end|>"]


def test_truncation_drop_drops_every_row_over_the_length(chatml: Any) -> None:
    last_two = len(encode(task_for(chatml), {"messages": [long_conversation(2)]})[0][0]["input_ids"])
    features, stats = encode(task_for(chatml, max_length=last_two, truncation="drop"),
                             {"messages": [long_conversation(4), long_conversation(2)]})
    assert [f["row"] for f in features] == [1]
    assert (stats["rows_dropped_too_long"], stats["rows_cut_left"]) == (1, 0)
    with pytest.raises(DataError, match="every conversation .* is longer than --max-length"):
        encode(task_for(chatml, max_length=10), {"messages": [long_conversation(2)]})


def test_the_audit_names_the_table_row_of_a_feature(chatml: Any) -> None:
    """Rows dropped before the audit: its findings name the table row (the file line), not the feature index."""
    task = task_for(chatml)
    features, _ = encode(task, {"messages": [CONVERSATION, CONVERSATION]})
    features[1] = {**features[1], "row": 7, "labels": [IGNORE] * len(features[1]["labels"])}
    found = loss_mask.audit(task, features, stop_ids={task.end_id}, decoder_only=True)
    assert found["rows_without_loss"]["rows"] == [7]
    assert found["stop_token_not_trained"]["count"] == 0 and found["labels_not_inputs"]["count"] == 0


def table_from(tmp_path: Path, rows: list[dict[str, Any]]) -> Any:
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return select_columns(load_table(path), ChatTask.roles, {})


GOOD = {"messages": CONVERSATION[1:3]}
BAD_ROWS = [
    ({"messages": [{"role": "tool", "content": "x"}, *CONVERSATION[2:3]]}, "turn 1 has unknown role 'tool'; valid: system"),
    ({"conversations": [{"from": "bot", "value": "x"}]}, "unknown role 'bot'; valid: human, gpt, system"),
    ({"messages": [CONVERSATION[0], *CONVERSATION[:3]]}, "two system messages"),
    ({"messages": [*CONVERSATION[1:3], CONVERSATION[0]]}, "system message is turn 3; it must be the first"),
    ({"messages": CONVERSATION[:2]}, "no assistant turn"),
    ({"messages": CONVERSATION[:4]}, "ends with a user turn"),
    ({"messages": [{"role": "user", "content": "  "}, CONVERSATION[2]]}, r"turn 1 \(user\) has empty content"),
    ({"messages": [{"role": "user"}, CONVERSATION[2]]}, r"turn 1 \(user\) content must be text, got no content"),
    ({"prompt": "Hi", "completion": ""}, r"\(completion\): turn 1 \(assistant\) has empty content"),
]


@pytest.mark.parametrize(("row", "message"), BAD_ROWS)
def test_bad_conversations_are_refused_naming_the_file_line(tmp_path: Path, row: dict[str, Any], message: str) -> None:
    table = table_from(tmp_path, [GOOD, row] if "messages" in row else [row])
    line = 2 if "messages" in row else 1
    with pytest.raises(DataError, match=rf"chats.jsonl line {line}.*{message}"):
        ChatTask().check_table(table, training=True)


def test_content_that_is_not_text_is_refused_naming_the_line(tmp_path: Path) -> None:
    mixed = {"messages": [{"role": "user", "content": 5}, CONVERSATION[2]]}
    with pytest.raises(DataError, match=r"line 2: column 'messages', an item, field 'content' holds a number"):
        table_from(tmp_path, [GOOD, mixed])  # Arrow cannot mix them: refused as the file is read
    with pytest.raises(DataError, match=r"line 1: column 'messages', an item, field 'content' holds text .* but an "
                                        "earlier item of the row holds a number"):
        table_from(tmp_path, [mixed])
    numbers = {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": 6}]}
    with pytest.raises(DataError, match=r"line 1.*turn 1 \(user\) content must be text, got int '5'"):
        ChatTask().check_table(table_from(tmp_path, [numbers]), training=True)


def test_a_table_without_a_conversation_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no conversation column"):
        ChatTask().check_table(select_columns(from_lists({"text": ["hi"]}), ChatTask.roles, {}), training=True)


def test_predict_inputs(chatml: Any) -> None:
    task = task_for(chatml)
    assert task.parse_input("Hello", 0) == {"messages": [{"role": "user", "content": "Hello"}]}
    assert task.parse_input({"conversations": [{"from": "human", "value": "Hi"}]}, 0)["messages"][0]["role"] == "user"
    assert task.parse_input(CONVERSATION[:4], 0)["messages"] == CONVERSATION[:4]
    with pytest.raises(DataError, match="input 3: the conversation ends with an assistant turn"):
        task.parse_input(CONVERSATION[:3], 3)
    with pytest.raises(DataError, match="input 1: the conversation has no turns"):
        task.parse_input("  ", 1)


class FakeBackbone:
    def __init__(self, tokenizer: Any, family: str = "causal") -> None:
        self.tokenizer, self.family, self.name = tokenizer, family, "tiny"
        self.config = type("Config", (), {"max_position_embeddings": 512})()


def test_backbones_the_task_refuses(tmp_path: Path) -> None:
    plain = tiny_models.build_tiny_tokenizer("llama")
    with pytest.raises(ConfigError, match="backbone 'tiny' has no chat template; give one with --chat-template FILE"):
        ChatTask().bind(FakeBackbone(plain), None)  # type: ignore[arg-type]
    with pytest.raises(BackboneError, match="needs a decoder-only backbone"):
        ChatTask().bind(FakeBackbone(plain, family="seq2seq"), None)  # type: ignore[arg-type]
    template = tmp_path / "chatml.jinja"
    template.write_text(tiny_models.CHATML_TEMPLATE.replace("<|im_end|>", "END OF TURN"))
    with pytest.raises(ConfigError, match="ends assistant turns with 'END', which is .* tokens"):
        ChatTask(ChatOptions(chat_template=str(template))).bind(FakeBackbone(plain), None)  # type: ignore[arg-type]


def test_a_template_that_is_not_incremental_is_refused(chatml: Any) -> None:
    task = task_for(chatml)
    chatml_copy = tiny_models.build_tiny_tokenizer("llama-chat")
    chatml_copy.chat_template = "{{ messages | length }}" + tiny_models.CHATML_TEMPLATE  # earlier turns change
    task._attach(chatml_copy)
    with pytest.raises(DataError, match="row 1: the chat template is not incremental.*--chat-template"):
        encode(task, {"messages": [CONVERSATION]})


def test_a_chat_template_file_is_used_and_kept(tmp_path: Path) -> None:
    template = tmp_path / "chatml.jinja"
    template.write_text(tiny_models.CHATML_TEMPLATE)
    plain = tiny_models.build_tiny_tokenizer("llama")
    plain.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    task = ChatTask(ChatOptions(chat_template=str(template)))
    task.bind(FakeBackbone(plain), None)  # type: ignore[arg-type]
    assert plain.chat_template == tiny_models.CHATML_TEMPLATE  # saved with the tokenizer
    assert task.metadata()["chat_template"] == tiny_models.CHATML_TEMPLATE
    assert task.max_length == 512  # the default, capped at what the backbone reads


def test_roles_are_all_optional_any_kind() -> None:
    assert all(isinstance(r, ColumnRole) and r.kind == "any" and not r.required for r in ChatTask.roles)


def test_generation_stops_on_an_end_of_turn_that_is_not_eos(llama3: Any) -> None:
    """Llama 3 ends turns with <|eot_id|>, not EOS: the saved generation config stops on both."""
    from transformers import GenerationConfig

    task = task_for(llama3)
    task.max_new_tokens = 7
    model = type("Model", (), {"generation_config": GenerationConfig(eos_token_id=llama3.eos_token_id)})()
    task.finalize_model(model)
    eot = llama3.convert_tokens_to_ids("<|eot_id|>")
    assert eot != llama3.eos_token_id
    assert model.generation_config.eos_token_id == [llama3.eos_token_id, eot]
    assert model.generation_config.max_new_tokens == 7
    task.finalize_model(model)  # once only
    assert model.generation_config.eos_token_id == [llama3.eos_token_id, eot]


def test_metadata_restores_the_task(llama3: Any) -> None:
    task = task_for(llama3, system_prompt="Be brief.", train_on="last", truncation="drop")
    again = ChatTask()
    plain = tiny_models.build_tiny_tokenizer("llama")
    plain.add_special_tokens({"bos_token": "<|begin_of_text|>", "additional_special_tokens": LLAMA3_SPECIALS})
    again.restore(json.loads(json.dumps(task.metadata())), tokenizer=plain)  # a tokenizer saved without its template
    assert again.metadata() == task.metadata() and plain.chat_template == LLAMA3_TEMPLATE


def test_the_data_checks_see_conversations(tmp_path: Path) -> None:
    """Duplicated conversations and leaks are found in the messages layout; prompt/completion conflicts too."""
    from texttune.data.checks import CheckSettings
    from texttune.tasks.data_checks import check_tables

    train = table_from(tmp_path, [GOOD, {"messages": CONVERSATION}, GOOD])
    report = check_tables(ChatTask(), [("train", train), ("validation", train)], settings=CheckSettings(near=False))
    assert report["splits"]["train"]["rows"] == 3
    assert report["splits"]["train"]["duplicates"]["count"] == 1
    assert report["splits"]["validation"]["leaks"]["count"] == 3
    assert report["splits"]["train"]["lengths"]["messages"]["max"] == 5  # turns
    pairs = select_columns(from_lists({"prompt": ["Hi", "Hi"], "completion": ["Hello", "Bye"]}), ChatTask.roles, {})
    report = check_tables(ChatTask(), [("train", pairs)], settings=CheckSettings(near=False))
    assert report["splits"]["train"]["conflicts"]["count"] == 1


GENERATION_TAGS_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def test_masks_agree_with_the_templates_generation_tags() -> None:
    """A template with {% generation %} tags: transformers' assistant mask and the incremental spans agree."""
    tok = tiny_models.build_tiny_tokenizer("llama-chat")
    tok.chat_template = GENERATION_TAGS_TEMPLATE
    [feature], _ = encode(task_for(tok), {"messages": [CONVERSATION]})
    tagged = tok.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    assert tagged["input_ids"] == feature["input_ids"]
    assert tagged["assistant_masks"] == [int(label != IGNORE) for label in feature["labels"]]
    assert sum(tagged["assistant_masks"]) > 0


def test_fit_inputs_and_targets_are_prompts_and_completions(chatml: Any) -> None:
    from texttune.tasks.tables import pairs_table

    table = pairs_table(ChatTask(), ["What does gzip do?"], ["It compresses files."])
    assert table is not None
    task = task_for(chatml)
    assert task.encode(table.rows)[0][0] == encode(task, {"messages": [CONVERSATION[1:3]]})[0][0]


def test_the_audit_counts_the_end_of_turn_as_the_stop_token(llama3: Any) -> None:
    """<|eot_id|> is not EOS, and the model's generation config does not list it before saving: the audit still
    sees each reply's stop token trained; without it every row would be flagged."""
    task = task_for(llama3)
    features, _ = encode(task, {"messages": [CONVERSATION, CONVERSATION[:3]]})
    found = loss_mask.audit(task, features, stop_ids={llama3.eos_token_id}, decoder_only=True)
    assert found["stop_token_not_trained"]["count"] == 0 and task.end_id in found["stop_tokens"]
    bare = type("Collating", (), {"collate": task.collate})()  # the same features, no task stop ids
    assert loss_mask.audit(bare, features, stop_ids={llama3.eos_token_id}, decoder_only=True)[
        "stop_token_not_trained"]["count"] == 2
