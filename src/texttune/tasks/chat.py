"""Chat fine-tuning: conversations in, loss on the assistant's turns only, the next reply out.

A row is one conversation (``messages``, ShareGPT ``conversations`` or ``prompt``/``completion``: see
``tasks/conversations.py``). It is rendered by the backbone's chat template (or ``--chat-template FILE``) and
tokenized once; labels are the tokens of the assistant turns, each with its end-of-turn token (so the model learns to
stop), found by rendering the conversation turn by turn, never by searching for the reply's text. Everything else
is -100. The loss-mask audit (tasks/loss_mask.py) then checks the result before step 1.

Evaluation: loss and perplexity on the assistant tokens, and a generated reply for the last assistant turn of
each row (its history and the generation prompt) scored against the reference with ROUGE and exact match. The
saved model keeps its template (the tokenizer saves it) and stops on the end-of-turn token under plain
transformers too (``generation_config.eos_token_id``). docs/chat.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from texttune.backbones import Backbone
from texttune.config import GENERATION_OPTIONS, GenerationConfig, RunConfig, option
from texttune.data import ColumnRole, Table
from texttune.errors import BackboneError, ConfigError, DataError
from texttune.inference.backends import backend_name
from texttune.inference.generation import Prompts, generate_prompts
from texttune.inference.options import TRANSFORMERS
from texttune.metrics import generation_length, normalize_answer, rouge
from texttune.tasks.base import pad_batch
from texttune.tasks.causal_loss import supports_target_only, target_only_loss
from texttune.tasks.chunking import check_fits, fingerprint, perplexity, score_chunks
from texttune.tasks.conversations import (
    IGNORE,
    Message,
    check_messages,
    cut_left,
    end_of_turn,
    exchanges,
    label_tokens,
    render,
    render_spans,
    row_messages,
    turns,
    with_system,
)
from texttune.tasks.packing import model_inputs

log = logging.getLogger("texttune")

DEFAULT_MAX_LENGTH = 1024
MAX_NEW_TOKENS_CAP = 512  # the longest reply predict generates by default, whatever the training replies


@dataclass
class ChatOptions:
    """How conversations are rendered, which turns train, and what happens to long ones."""

    system_prompt: str | None = option(None, "System message added to every conversation that has none (training, "
                                       "evaluation and predict).")
    chat_template: str | None = option(None, "A Jinja chat template file: for a backbone without one, or to replace "
                                       "its own. The saved model keeps it.")
    train_on: str = option("all", "Assistant turns that carry loss: all of them, or only the last of each "
                           "conversation.", choices=("all", "last"))
    max_length: int | None = option(None, f"Tokens per conversation (default: {DEFAULT_MAX_LENGTH}, or what the "
                                    "backbone reads if less).", ge=8)
    truncation: str = option("left", "Conversations over --max-length: left drops their earliest exchanges (the "
                             "system prompt kept) until they fit, and drops a row that does not fit with its last "
                             "exchange alone; drop drops every such row. Dropped rows are counted.",
                             choices=("left", "drop"))


class ChatTask:
    """Conversations -> assistant-only loss on a decoder-only model; the next reply on predict."""

    name: ClassVar[str] = "chat"
    pipeline_tag: ClassVar[str] = "text-generation"  # the Hugging Face pipeline and hub tag (model card)
    api_name: ClassVar[str] = "Chat"
    options: ClassVar[type] = ChatOptions
    generates: ClassVar[bool] = True
    audits_loss_mask: ClassVar[bool] = True  # tasks/loss_mask.py checks the assistant-only labels before step 1
    heads: ClassVar[tuple[str, ...]] = ()  # nothing new: the LM head is pretrained
    description: ClassVar[str] = ("chat fine-tuning of a decoder-only model on conversations (loss on assistant turns; "
                                  "ROUGE-L of the last reply, perplexity)")
    # prompt and completion first: fit(inputs=..., targets=...) fills the first two roles (tables.pairs_table)
    roles: ClassVar[tuple[ColumnRole, ...]] = (
        ColumnRole("prompt", ("prompt",), kind="any", required=False,
                   help="instead of messages: the user's text (or a list of turns)"),
        ColumnRole("completion", ("completion",), kind="any", required=False,
                   help="with prompt: the assistant's reply (or a list of turns)"),
        ColumnRole("messages", ("messages", "conversations"), kind="any", required=False,
                   help='the conversation: a list of {"role", "content"} (or ShareGPT {"from", "value"}) turns'),
    )
    input_keys: ClassVar[tuple[str, ...]] = ("messages", "prompt")
    main_metric: ClassVar[str] = "rougeL"
    metric_names: ClassVar[tuple[str, ...]] = ("rouge1", "rouge2", "rougeL", "rougeLsum", "exact_match", "gen_len",
                                               "perplexity", "loss")
    default_backbone: ClassVar[str] = "smollm2-135m"
    # Measured (benchmarks/recipes.py --case chat-smollm2, docs/recipes.md): SmolLM2-135M-Instruct, 320 conversations of
    # tests/slow/test_chat_real.py, 40 x 8, ROUGE-L of the last reply on 48 held-out ones, seeds 0-2: 35.98 (35.29-37.04)
    # at the generic 5e-5 without warmup, 37.07 (34.19-40.15) at 3e-4 with warmup 0.1; seed 0 also 1e-4 35.86 and 2e-4
    # 36.38. The same rates as causal-lm, where the gain was clearer (perplexity on every seed).
    train_defaults: ClassVar[dict[str, Any]] = {"learning_rate": 3e-4, "warmup_ratio": 0.1}
    # Under --peft lora (rank 8, alpha 16): 22.01 at 5e-5 (seed 0) -> 33.88 (32.33-36.40) at 2e-3 with warmup 0.1,
    # seeds 0-2; 5e-3 gave 35.49 on seed 0 only, so the rate measured on every seed stays.
    lora_train_defaults: ClassVar[dict[str, Any]] = {"learning_rate": 2e-3, "warmup_ratio": 0.1}
    request_options: ClassVar[tuple[str, ...]] = GENERATION_OPTIONS

    def __init__(self, options: ChatOptions | None = None) -> None:
        options = options or ChatOptions()
        self.system_prompt = options.system_prompt
        self.chat_template_file = options.chat_template
        self.train_on = options.train_on
        self.max_length_option = options.max_length
        self.max_length = options.max_length or DEFAULT_MAX_LENGTH
        self.truncation = options.truncation
        self.tokenizer: Any = None
        self.template: str | None = None  # the template's source, once bound (metadata: feature cache key, restore)
        self.end_text: str | None = None  # the end-of-turn text, e.g. "<|im_end|>"
        self.end_id: int | None = None
        self.max_new_tokens: int | None = None
        self._eval_cache: dict[str, tuple[Any, list[tuple[list[Message], str]]]] = {}

    # -- rows -------------------------------------------------------------------
    def _conversations(self, rows: Any, *, locate: Any = None, needs_reply: bool = True) -> list[list[Message]]:
        """Every row's conversation, checked, with the system prompt added where it has none."""
        locate = locate or (lambda i: f"row {i + 1}")
        columns = [key for key in ("messages", "prompt", "completion") if key in rows.column_names]
        if not {"messages", "prompt"} & set(columns):
            raise DataError("no conversation column: give a 'messages' (or ShareGPT 'conversations') column of turns, "
                            "or 'prompt' and 'completion' columns (or name yours with --messages-column / --prompt-column)")
        values = {key: rows[key] for key in columns}
        out = []
        for i in range(len(rows)):
            where = locate(i)
            messages = row_messages({key: values[key][i] for key in columns}, where=where)
            check_messages(messages, where=where, needs_reply=needs_reply)
            out.append(with_system(messages, self.system_prompt))
        return out

    def check_table(self, table: Table, *, training: bool) -> None:
        """Every conversation read and checked while rows still map to file lines (roles, order, content)."""
        self._conversations(table.rows, locate=table.locate)

    def parse_input(self, value: Any, index: int) -> dict[str, Any]:
        """A predict input: text (one user message), a list of turns, or a row with messages or prompt."""
        where = f"input {index}"
        if isinstance(value, str):
            messages = [{"role": "user", "content": value}] if value.strip() else []
        elif isinstance(value, dict):
            row = {("messages" if key == "conversations" else key): v for key, v in value.items()}
            messages = row_messages(row, where=where)
        else:
            messages = turns(value, where=where)
        check_messages(messages, where=where, needs_reply=False)
        if messages[-1]["role"] == "assistant":
            raise DataError(f"{where}: the conversation ends with an assistant turn; end it with the user's message to "
                            "get the next reply")
        return {"messages": messages}

    def chat_input(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """A chat request's turns as they are (:meth:`parse_input` checks them)."""
        return messages

    # -- the Task protocol ------------------------------------------------------
    def auto_class(self, family: str) -> str:
        if family == "causal":
            return "AutoModelForCausalLM"
        raise BackboneError(f"task 'chat' needs a decoder-only backbone (Llama, SmolLM2, Qwen...), but this one is "
                            f"{family!r}; for an encoder-decoder use text2text")

    def bind(self, backbone: Backbone, config: RunConfig) -> None:
        self.auto_class(backbone.family)
        tokenizer = backbone.tokenizer
        if self.chat_template_file is not None:
            path = Path(self.chat_template_file)
            if not path.is_file():
                raise ConfigError(f"--chat-template {path}: no such file")
            tokenizer.chat_template = path.read_text(encoding="utf-8")
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(f"backbone {backbone.name!r} has no chat template; give one with --chat-template FILE "
                              "(a Jinja template, e.g. ChatML)")
        if not getattr(tokenizer, "is_fast", False):
            raise BackboneError(f"task 'chat' needs a fast tokenizer (character offsets locate the assistant turns); "
                                f"backbone {backbone.name!r} has a slow one")
        if self.max_length_option is not None:
            check_fits(self.max_length, backbone)
        else:  # the default, capped at what the backbone reads
            limits = [getattr(backbone.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
            self.max_length = min([DEFAULT_MAX_LENGTH, *(n for n in limits if isinstance(n, int) and 0 < n < 1_000_000)])
        self._attach(tokenizer)

    def _attach(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.template = tokenizer.chat_template
        self.end_text, self.end_id = end_of_turn(tokenizer)

    @property
    def stop_token_ids(self) -> tuple[int, ...]:
        """The end-of-turn token: a reply ends with it (the loss-mask audit checks that it is trained)."""
        return () if self.end_id is None else (self.end_id,)

    def learn(self, train_rows: Any) -> dict[str, Any]:
        replies = [m["content"] for conversation in self._conversations(train_rows) for m in conversation
                   if m["role"] == "assistant"]
        lengths = sorted(len(self.tokenizer(r, add_special_tokens=False)["input_ids"]) + 1 for r in replies)
        self.max_new_tokens = min(lengths[-1], MAX_NEW_TOKENS_CAP, self.max_length)
        return {"assistant_turns": len(replies), "reply_tokens_max": lengths[-1],
                "reply_tokens_p50": lengths[len(lengths) // 2], "max_new_tokens": self.max_new_tokens,
                "end_of_turn": self.end_text, "max_length": self.max_length}

    def model_kwargs(self) -> dict[str, Any]:
        return {}

    def _length(self, messages: list[Message]) -> int:
        text = render(self.tokenizer, messages, where="a conversation")
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def _fit(self, messages: list[Message]) -> int | None:
        """How many leading exchanges to drop so the conversation fits --max-length; None: it cannot fit."""
        if self._length(messages) <= self.max_length:
            return 0
        last = len(exchanges(messages)) - 1
        if self.truncation == "drop" or last < 1 or self._length(cut_left(messages, last)) > self.max_length:
            return None
        low, high = 1, last  # fewest exchanges dropped that fits: shorter as more are dropped, so bisect
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if self._length(cut_left(messages, middle)) <= self.max_length else (middle + 1, high)
        return low

    def _encode(self, conversations: list[list[Message]]) -> tuple[dict[str, list[Any]], dict[str, Any]]:
        """Token ids, labels and row index of each conversation that fits, and what was cut or dropped."""
        assert self.tokenizer is not None and self.end_text is not None, "bind() first"
        out: dict[str, list[Any]] = {"input_ids": [], "labels": [], "row": []}
        dropped, cut, exchanges_dropped = [], 0, 0
        for i, messages in enumerate(conversations):
            drop = self._fit(messages)
            if drop is None:
                dropped.append(i)
                continue
            cut, exchanges_dropped = cut + bool(drop), exchanges_dropped + drop
            rendered = render_spans(self.tokenizer, cut_left(messages, drop), where=f"row {i + 1}", end=self.end_text,
                                    last_only=self.train_on == "last")
            ids, labels = label_tokens(self.tokenizer, rendered)
            out["input_ids"].append(ids)
            out["labels"].append(labels)
            out["row"].append(i)
        lengths = [len(ids) for ids in out["input_ids"]] or [0]
        loss_tokens = sum(sum(1 for x in labels if x != IGNORE) for labels in out["labels"])
        stats = {"rows": len(conversations), "rows_dropped_too_long": len(dropped), "rows_cut_left": cut,
                 "exchanges_dropped": exchanges_dropped, "input_tokens_mean": round(sum(lengths) / len(lengths), 1),
                 "input_tokens_max": max(lengths), "loss_tokens": loss_tokens, "dropped_rows": dropped[:20]}
        return out, stats

    def encode(self, rows: Any) -> tuple[Any, dict[str, Any]]:
        from datasets import Dataset

        columns, stats = self._encode(self._conversations(rows))
        if stats["rows_dropped_too_long"]:
            log.warning("chat: %d of %d conversations dropped: longer than --max-length %d tokens%s (e.g. row %s)",
                        stats["rows_dropped_too_long"], stats["rows"], self.max_length,
                        " even with only their last exchange" if self.truncation == "left" else "",
                        ", ".join(str(i + 1) for i in stats["dropped_rows"][:3]))
        if not columns["row"]:
            raise DataError(f"every conversation ({stats['rows']}) is longer than --max-length {self.max_length} tokens; "
                            "raise --max-length or shorten the conversations")
        return Dataset.from_dict(columns), stats

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        return pad_batch([{"input_ids": f["input_ids"], "labels": f["labels"]} for f in features], pad_token_id=pad)

    def packing_capacity(self) -> int:
        """Tokens a packed training row holds (tasks/packing.py): one conversation at ``--max-length``."""
        return self.max_length

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        if supports_target_only(model):  # the same mean loss, the head run only on assistant positions
            return target_only_loss(model, batch)
        return model(**model_inputs(batch)).loss  # a packed batch without its counts, cache off

    # -- evaluation and prediction ------------------------------------------------
    def _evaluation_data(self, rows: Any) -> tuple[list[dict[str, Any]], list[tuple[list[Message], str]]]:
        """The rows' loss features and (history, reference reply) pairs, computed once per set of rows."""
        key = fingerprint(rows)
        if key not in self._eval_cache:
            conversations = self._conversations(rows)
            columns, _ = self._encode(conversations)
            features = [dict(zip(columns, values)) for values in zip(*columns.values())]
            self._eval_cache = {key: (features, [(c[:-1], c[-1]["content"]) for c in conversations])}
        return self._eval_cache[key]

    def _row_losses(self, model: Any, features: list[dict[str, Any]], batch_size: int) -> dict[int, tuple[float, int]]:
        """Row index -> (summed loss, scored tokens) over its assistant tokens; batches of similar length."""
        ordered = sorted(features, key=lambda f: len(f["input_ids"]))
        losses = {}
        for start in range(0, len(ordered), batch_size):
            chunk = ordered[start : start + batch_size]
            sums, counts = score_chunks(model, self.collate(chunk), batch_size=len(chunk), shift=True)
            losses.update({f["row"]: (s, c) for f, s, c in zip(chunk, sums, counts)})
        return losses

    def _prompt_ids(self, history: list[Message]) -> list[int]:
        """The generation prompt of ``history`` (ending with the user's turn), its earliest exchanges dropped while it
        is over --max-length (the system prompt and the last exchange kept)."""
        ids: list[int] = []
        for drop in range(max(len(exchanges(history)), 1)):
            text = render(self.tokenizer, cut_left(history, drop), where="a conversation", generation_prompt=True)
            ids = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
            if len(ids) <= self.max_length:
                break
        return ids

    def _stop_on_end(self, model: Any) -> None:
        """Generation stops at the end-of-turn token as well as at EOS (a template's turn end is often not EOS)."""
        config = getattr(model, "generation_config", None)
        if config is None or self.end_id is None:
            return
        eos = config.eos_token_id if config.eos_token_id is not None else self.tokenizer.eos_token_id
        ids = [int(i) for i in (eos if isinstance(eos, (list, tuple)) else [eos]) if i is not None]
        if self.end_id not in ids:
            config.eos_token_id = [*ids, self.end_id] if ids else self.end_id

    def prompts(self, model: Any, rows: list[dict[str, Any]], *, generation: GenerationConfig) -> Prompts:
        """Each row's conversation (the system prompt added) rendered up to the assistant's turn; the reply ends at
        the end-of-turn marker."""
        return self._prompts(model, [with_system(row["messages"], self.system_prompt) for row in rows], generation)

    def _prompts(self, model: Any, histories: list[list[Message]], generation: GenerationConfig) -> Prompts:
        if generation.max_new_tokens is None:
            generation = replace(generation, max_new_tokens=self.max_new_tokens or MAX_NEW_TOKENS_CAP)
        self._stop_on_end(model)
        return Prompts(tokenizer=self.tokenizer, ids=[self._prompt_ids(h) for h in histories], decoder_only=True,
                       options=generation, end_text=self.end_text)

    def _generate(self, model: Any, histories: list[list[Message]], generation: GenerationConfig) -> list[str]:
        return generate_prompts(model, self._prompts(model, histories, generation))

    def evaluate(self, model: Any, rows: Any, *, generation: GenerationConfig) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Loss and perplexity on the assistant tokens (a transformers model), and the last reply of every row
        generated from its history and scored against the reference; one record per row."""
        features, pairs = self._evaluation_data(rows)
        losses = self._row_losses(model, features, generation.generation_batch_size) \
            if backend_name(model) == TRANSFORMERS else {}
        predictions = self._generate(model, [history for history, _ in pairs], generation)
        records = []
        for i, ((history, reference), prediction) in enumerate(zip(pairs, predictions)):
            record: dict[str, Any] = {"conversation": history, "reference": reference, "prediction": prediction}
            if i in losses:
                record["loss_sum"], record["loss_tokens"] = round(losses[i][0], 6), losses[i][1]
            records.append(record)
        return self.score_records(records), records

    def score_records(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """Metrics from evaluate's records (a distributed evaluation gathers them from every process)."""
        metrics = self._score([r["prediction"] for r in records], [r["reference"] for r in records])
        scored = [r for r in records if r.get("loss_tokens")]
        if scored:
            metrics.update(perplexity([r["loss_sum"] for r in scored], [r["loss_tokens"] for r in scored]))
        return metrics

    def _score(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        exact = sum(normalize_answer(p) == normalize_answer(r) for p, r in zip(predictions, references))
        return {**rouge(predictions, references), "exact_match": round(100 * exact / len(predictions), 4),
                **generation_length(predictions)}

    def baselines(self, rows: Any) -> dict[str, tuple[dict[str, float], list[dict[str, Any]]]]:
        """Echo the user's last message: what a reply scores that only repeats the question; with one record per
        row, so the fine-tuned model is tested against it on the same rows (paired bootstrap)."""
        pairs = [(c[:-1], c[-1]["content"]) for c in self._conversations(rows)]
        echoes = [next((m["content"] for m in reversed(history) if m["role"] == "user"), "") for history, _ in pairs]
        records = [{"conversation": history, "reference": reference, "prediction": echo}
                   for (history, reference), echo in zip(pairs, echoes)]
        return {"echo_last_user": (self.score_records(records), records)}

    def predict(self, model: Any, inputs: list[dict[str, Any]], *, generation: GenerationConfig) -> list[dict[str, Any]]:
        """The next assistant reply to each conversation (from :meth:`parse_input`)."""
        return [{"output": text} for text in generate_prompts(model, self.prompts(model, inputs, generation=generation))]

    def finalize_model(self, model: Any) -> None:
        """Plain transformers then generates as texttune does: stops at the end-of-turn token, no 20-token limit."""
        model.generation_config.max_new_tokens = self.max_new_tokens
        self._stop_on_end(model)

    def metadata(self) -> dict[str, Any]:
        return {"system_prompt": self.system_prompt, "chat_template": self.template, "train_on": self.train_on,
                "max_length": self.max_length, "truncation": self.truncation, "max_new_tokens": self.max_new_tokens,
                "end_of_turn": self.end_text}

    def restore(self, metadata: dict[str, Any], *, tokenizer: Any = None, model: Any = None) -> None:
        self.system_prompt = metadata.get("system_prompt")
        self.train_on = metadata.get("train_on", "all")
        self.max_length = metadata.get("max_length") or DEFAULT_MAX_LENGTH
        self.truncation = metadata.get("truncation", "left")
        self.max_new_tokens = metadata.get("max_new_tokens")
        if tokenizer is not None:
            if not getattr(tokenizer, "chat_template", None) and metadata.get("chat_template"):
                tokenizer.chat_template = metadata["chat_template"]  # a tokenizer saved without it
            self._attach(tokenizer)
