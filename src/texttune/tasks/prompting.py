"""Turn (input, target) text pairs into token ids for each backbone family.

Encoder-decoder backbones read ``prefix + input`` and learn to emit the target.
Decoder-only backbones read one sequence, ``prompt + target + EOS``; the prompt is
the tokenizer's chat template when it has one (instruction-tuned models answer
best in the format they were tuned on), else a plain ``instruction / input /
Response:`` layout. Only target tokens (and EOS) carry loss: labels are -100 over
the prompt, so the model is not trained to reproduce its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IGNORE = -100  # label value the loss ignores (PyTorch CrossEntropyLoss default ignore_index)
PLAIN_TEMPLATE = "{instruction}\n\n{input}\n\nResponse:"


@dataclass
class Encoded:
    """Token ids of one example. ``labels`` is empty when there is no target."""

    input_ids: list[int]
    labels: list[int]
    source_truncated: bool
    target_truncated: bool


class PromptFormat:
    """How one backbone family sees a text-to-text example."""

    def __init__(self, *, tokenizer: Any, family: str, prefix: str, decoder_start_token_id: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.family = family
        self.prefix = prefix
        self.decoder_start_token_id = decoder_start_token_id
        self.uses_chat_template = family == "causal" and bool(getattr(tokenizer, "chat_template", None))

    def _truncate_text(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """Cut ``text`` to ``max_tokens`` tokens; decoded back so it fits inside a template."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= max_tokens:
            return text, False
        return self.tokenizer.decode(ids[:max_tokens], skip_special_tokens=True), True

    def prompt_text(self, text: str) -> str:
        """The decoder-only prompt string for one input (no target)."""
        if self.uses_chat_template:
            content = f"{self.prefix}\n\n{text}" if self.prefix else text
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
            )
        if not self.prefix:
            return f"{text}\n\nResponse:"
        return PLAIN_TEMPLATE.format(instruction=self.prefix, input=text)

    def encode(self, text: str, target: str | None, *, max_source_length: int, max_target_length: int) -> Encoded:
        """Token ids for training (with target) or generation (target None)."""
        if self.family == "causal":
            return self._encode_causal(text, target, max_source_length, max_target_length)
        return self._encode_seq2seq(text, target, max_source_length, max_target_length)

    def _encode_seq2seq(self, text: str, target: str | None, max_src: int, max_tgt: int) -> Encoded:
        full = self.tokenizer(self.prefix + text, truncation=False)["input_ids"]
        source = self.tokenizer(self.prefix + text, truncation=True, max_length=max_src)["input_ids"]
        labels: list[int] = []
        target_cut = False
        if target is not None:
            all_labels = self.tokenizer(text_target=target, truncation=False)["input_ids"]
            labels = self.tokenizer(text_target=target, truncation=True, max_length=max_tgt)["input_ids"]
            target_cut = len(all_labels) > len(labels)
            # BERT-style tokenizers start targets with [CLS], which bert2bert already
            # feeds as the decoder start token: keep it once, not twice.
            if self.decoder_start_token_id is not None and labels and labels[0] == self.decoder_start_token_id:
                labels = labels[1:]
        return Encoded(source, labels, len(full) > len(source), target_cut)

    def _encode_causal(self, text: str, target: str | None, max_src: int, max_tgt: int) -> Encoded:
        text, source_cut = self._truncate_text(text, max_src)
        prompt = self.prompt_text(text)
        # The chat template already contains any BOS token; a plain prompt gets the tokenizer's.
        prompt_ids = self.tokenizer(prompt, add_special_tokens=not self.uses_chat_template)["input_ids"]
        if target is None:
            return Encoded(prompt_ids, [], source_cut, False)
        body = target if self.uses_chat_template else " " + target
        target_ids = self.tokenizer(body, add_special_tokens=False)["input_ids"]
        target_cut = len(target_ids) > max_tgt - 1
        target_ids = target_ids[: max_tgt - 1] + [self.tokenizer.eos_token_id]
        return Encoded(prompt_ids + target_ids, [IGNORE] * len(prompt_ids) + target_ids, source_cut, target_cut)

    def target_length(self, target: str) -> int:
        """Tokens the model must generate for ``target`` (with EOS): sets max_new_tokens defaults."""
        body = target if (self.family != "causal" or self.uses_chat_template) else " " + target
        return len(self.tokenizer(body, add_special_tokens=False)["input_ids"]) + 1
