"""Conversations for the chat task: three data layouts read as one list of turns, checked, and rendered with loss spans.

Layouts (each row one conversation; docs/chat.md):

- ``messages`` (OpenAI): a list of ``{"role": ..., "content": ...}``;
- ``conversations`` (ShareGPT): a list of ``{"from": ..., "value": ...}``, ``human`` -> user, ``gpt`` -> assistant;
- ``prompt`` / ``completion``: text (one user turn, one assistant turn) or lists of turns (TRL's conversational pairs).

Loss spans come from the template itself, by rendering incrementally: the assistant turn ``i`` is the text between
``render(turns[:i], add_generation_prompt=True)`` and ``render(turns[:i+1])``, cut just after its end-of-turn marker.
Each rendering must be a prefix of the whole conversation's rendering, else the template is not incremental (it
rewrites earlier turns) and the spans would be wrong: refused. Nothing is found by searching for the reply's text,
so a reply that also occurs in the prompt, or a template that changes the reply (``| trim``), cannot misplace them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from texttune.errors import ConfigError, DataError

IGNORE = -100  # label value the loss ignores
ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system", "user": "user", "assistant": "assistant"}
#: A reply the probe conversation uses to find the template's end-of-turn text (kept intact by trim/strip filters).
PROBE_REPLY = "texttuneprobereply"

Message = dict[str, str]


@dataclass
class Rendered:
    """One conversation as the template writes it, and the character spans ``[start, end)`` that carry loss."""

    text: str
    spans: list[tuple[int, int]]


# --------------------------------------------------------------------------- parsing and checks


def _turn(turn: Any, index: int, where: str) -> Message:
    """One turn as ``{"role", "content"}``, from either the OpenAI or the ShareGPT keys."""
    if not isinstance(turn, dict):
        raise DataError(f"{where}: turn {index + 1} is not an object with role and content ({type(turn).__name__})")
    role, content, names = turn.get("role"), turn.get("content"), ROLES
    if role is None and turn.get("from") is not None:  # ShareGPT
        source = turn["from"]
        role, content, names = SHAREGPT_ROLES.get(source, source), turn.get("value"), tuple(SHAREGPT_ROLES)
    if role not in ROLES:
        raise DataError(f"{where}: turn {index + 1} has unknown role {role!r}; valid: {', '.join(names)}")
    if not isinstance(content, str):
        got = "no content" if content is None else f"{type(content).__name__} {str(content)[:40]!r}"
        raise DataError(f"{where}: turn {index + 1} ({role}) content must be text, got {got}")
    if not content.strip():
        raise DataError(f"{where}: turn {index + 1} ({role}) has empty content")
    return {"role": role, "content": content}


def turns(value: Any, *, where: str) -> list[Message]:
    """A list of turns (OpenAI or ShareGPT keys) as ``[{"role", "content"}]``; a DataError naming ``where`` otherwise."""
    if not isinstance(value, (list, tuple)):
        raise DataError(f"{where}: a conversation must be a list of turns, got {type(value).__name__}")
    return [_turn(t, i, where) for i, t in enumerate(value)]


def _side(value: Any, role: str, where: str) -> list[Message]:
    """A prompt or completion cell: text is one turn of ``role``; a list is turns."""
    if isinstance(value, str):
        return [_turn({"role": role, "content": value}, 0, where)]
    return turns(value, where=where)


def row_messages(row: dict[str, Any], *, where: str) -> list[Message]:
    """The conversation of one table row, whatever its layout (keys ``messages`` or ``prompt``/``completion``)."""
    if row.get("messages") is not None:
        if row.get("prompt") is not None:
            raise DataError(f"{where}: the row has both a conversation and a prompt column; keep one layout")
        return turns(row["messages"], where=where)
    if row.get("prompt") is None:
        raise DataError(f"{where}: no conversation (a messages/conversations list, or a prompt)")
    completion = [] if row.get("completion") is None else _side(row["completion"], "assistant", where + " (completion)")
    return _side(row["prompt"], "user", where + " (prompt)") + completion


def check_messages(messages: Sequence[Message], *, where: str, needs_reply: bool) -> None:
    """Roles in an order every template understands: at most one system turn, first; with ``needs_reply``
    (training and evaluation rows) the last turn is the assistant's, the reply trained on or scored against."""
    if not messages:
        raise DataError(f"{where}: the conversation has no turns")
    systems = [i for i, m in enumerate(messages) if m["role"] == "system"]
    if len(systems) > 1:
        raise DataError(f"{where}: two system messages (turns {systems[0] + 1} and {systems[1] + 1}); keep one, first")
    if systems and systems[0] != 0:
        raise DataError(f"{where}: the system message is turn {systems[0] + 1}; it must be the first turn")
    if len(messages) == len(systems):
        raise DataError(f"{where}: the conversation has only a system message")
    if needs_reply and not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{where}: no assistant turn: nothing to train on or score against")
    if needs_reply and messages[-1]["role"] != "assistant":
        raise DataError(f"{where}: the conversation ends with a {messages[-1]['role']} turn; training and evaluation "
                        "rows must end with the assistant's reply")


def with_system(messages: list[Message], system_prompt: str | None) -> list[Message]:
    """``messages`` with ``system_prompt`` as the first turn where it has no system turn of its own."""
    if not system_prompt or (messages and messages[0]["role"] == "system"):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


def exchanges(messages: Sequence[Message]) -> list[int]:
    """Indices where an exchange starts: a user turn (after a turn that is not the user's) and the replies after it."""
    return [i for i, m in enumerate(messages) if m["role"] == "user" and (i == 0 or messages[i - 1]["role"] != "user")]


def cut_left(messages: Sequence[Message], dropped: int) -> list[Message]:
    """The conversation without its first ``dropped`` exchanges (and what came before the first), the system turn
    kept. ``dropped`` is at most ``len(exchanges(messages)) - 1``: the last exchange always stays."""
    if dropped == 0:
        return list(messages)
    system = [m for m in messages[:1] if m["role"] == "system"]
    return system + list(messages[exchanges(messages)[dropped]:])


# --------------------------------------------------------------------------- templates


def render(tokenizer: Any, messages: Sequence[Message], *, where: str, generation_prompt: bool = False) -> str:
    """``messages`` rendered by the tokenizer's chat template (text); a template error names ``where``."""
    try:
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=generation_prompt)
    except Exception as exc:  # jinja2's TemplateError from raise_exception, or a template bug
        raise DataError(f"{where}: the chat template refused this conversation ({' '.join(str(exc).split())[:200]})") from None


def end_of_turn(tokenizer: Any) -> tuple[str, int]:
    """The text and token id that close an assistant turn in this template (e.g. ``<|im_end|>``, ``<|eot_id|>``).

    Found from a probe conversation: what the template writes after the reply, up to the first whitespace. It
    must be one token, so training puts loss on it and generation can stop on it.
    """
    probe = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": PROBE_REPLY}]
    span = render(tokenizer, probe, where="the chat template").removeprefix(
        render(tokenizer, probe[:1], where="the chat template", generation_prompt=True))
    tail = span[span.find(PROBE_REPLY) + len(PROBE_REPLY):].split() if PROBE_REPLY in span else []
    if not tail:
        raise ConfigError("the chat template writes nothing after an assistant reply (no end-of-turn marker such as "
                          "<|im_end|>): a model trained on it would never stop; give --chat-template a template that "
                          "closes each turn")
    ids = tokenizer(tail[0], add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ConfigError(f"the chat template ends assistant turns with {tail[0]!r}, which is {len(ids)} tokens in this "
                          "tokenizer's vocabulary, not one: generation cannot stop on it; use a backbone whose vocabulary "
                          "has it, or a --chat-template ending turns with one of its special tokens")
    return tail[0], int(ids[0])


def render_spans(tokenizer: Any, messages: Sequence[Message], *, where: str, end: str, last_only: bool) -> Rendered:
    """The conversation's rendering and the spans of its assistant turns (the last only with ``last_only``).

    Each span runs from the end of the generation prompt to just after the turn's end-of-turn text ``end``:
    the reply and its end-of-turn marker carry loss, the template's layout around them does not.
    """
    text = render(tokenizer, messages, where=where)
    turns_trained = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    spans = []
    for i in turns_trained[-1:] if last_only else turns_trained:
        before = render(tokenizer, messages[:i], where=where, generation_prompt=True)
        after = render(tokenizer, messages[: i + 1], where=where)
        if not (text.startswith(after) and after.startswith(before)):
            raise DataError(f"{where}: the chat template is not incremental (rendering turn {i + 1} changes the text "
                            "of the turns before it), so the assistant turns cannot be located; give --chat-template "
                            "a template that renders each turn the same whatever follows")
        stop = after.rfind(end, len(before))
        if stop < 0:
            raise DataError(f"{where}: turn {i + 1} (assistant) is rendered without the end-of-turn marker {end!r}")
        spans.append((len(before), stop + len(end)))
    return Rendered(text, spans)


def label_tokens(tokenizer: Any, rendered: Rendered) -> tuple[list[int], list[int]]:
    """Token ids of the rendering (tokenized once, no added specials: the template has them) and labels: the
    token itself where its first character lies in a span, -100 elsewhere."""
    enc = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    ids: list[int] = enc["input_ids"]
    labels = [IGNORE] * len(ids)
    spans = iter(rendered.spans)
    span = next(spans, None)
    for t, (start, _) in enumerate(enc["offset_mapping"]):
        while span is not None and start >= span[1]:
            span = next(spans, None)
        if span is not None and span[0] <= start < span[1]:
            labels[t] = ids[t]
    return ids, labels
