"""Token streaming: a batch generated together, each row's text handed out while it grows.

What the OpenAI-compatible routes of the server need and :func:`generate_texts` does not give:
each row's text as it is generated, stop sequences, why a row ended (``stop`` or ``length``) and
how many tokens it took, and a way for a caller who has gone to end its row. A backend reports
every new token of every row (``token_generation`` in ``inference/backends.py``: a transformers
stopping criterion, CTranslate2's step callback); :class:`RowText` turns one row's tokens into
text pieces and decides when the row is done. The same code serves streamed and whole answers,
so a streamed reply joined is the whole reply, by construction.

Incremental detokenization: decoding one token at a time is wrong for byte-level BPE (a
character split over tokens) and for SentencePiece (a word's leading space depends on what
precedes it). As text-generation-inference does, a row decodes a short window of its recent
tokens twice, with and without the newest, and sends the difference once it no longer ends in
an incomplete character (U+FFFD): O(1) work per token instead of decoding the whole reply again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from texttune.inference.backends import backend_for, special_ids
from texttune.inference.generation import Prompts

log = logging.getLogger("texttune.inference")

#: Why a row ended: OpenAI's ``finish_reason`` values, and "cancelled" for a caller who left.
STOP, LENGTH, CANCELLED = "stop", "length", "cancelled"


@dataclass(frozen=True)
class Finished:
    """One row's whole answer."""

    text: str
    finish_reason: str  # STOP (end of sequence or a stop sequence), LENGTH (max_new_tokens) or CANCELLED
    prompt_tokens: int
    completion_tokens: int  # tokens generated, the end-of-sequence token included


@dataclass(frozen=True)
class RowSink:
    """Where one row's text goes while it is generated (called on the model thread), and whether its caller left."""

    emit: Callable[[str], None] | None = None
    cancelled: Callable[[], bool] = lambda: False


class RowText:
    """One row's generated tokens as text: pieces out as they become final, the end decided here.

    ``stops``: strings that end the reply (left out of it, as OpenAI does). A piece that could be the
    start of a stop string is held back until the next tokens show it is not.
    """

    def __init__(self, tokenizer: Any, *, stops: Sequence[str], end_ids: set[int], skip_ids: set[int],
                 max_new_tokens: int, prompt_tokens: int, sink: RowSink, forced_end: bool = False) -> None:
        """``forced_end``: the model's generation config forces an end token at the last step (BART): a row that ends
        there ran out of tokens (``length``), it did not choose to stop."""
        self.tokenizer = tokenizer
        self.forced_end = forced_end
        self.stops = tuple(s for s in stops if s)
        self.end_ids, self.skip_ids = end_ids, skip_ids
        self.max_new_tokens, self.prompt_tokens = max_new_tokens, prompt_tokens
        self.sink = sink
        self.ids: list[int] = []  # the text's tokens (special and forced ones left out)
        self.prefix_offset = self.read_offset = 0  # the decoding window: ids[prefix_offset:read_offset] is decoded
        self.text = ""  # the reply so far (a stop string cut off)
        self.sent = 0  # characters of text already emitted
        self.count = 0  # tokens generated
        self.reason: str | None = None

    def add(self, token: int) -> bool:
        """Take the row's next token; True when the row is done (later tokens are ignored)."""
        if self.reason is not None:
            return True
        if self.sink.cancelled():
            self.reason = CANCELLED
            return True
        self.count += 1
        if token in self.end_ids:
            return self.finish(LENGTH if self.forced_end and self.count >= self.max_new_tokens else STOP)
        if token not in self.skip_ids:
            self.ids.append(token)
            self._decode()
            if self._cut_at_stop():
                return self.finish(STOP, cut=True)
        if self.count >= self.max_new_tokens:
            return self.finish(LENGTH)
        self._emit(final=False)
        return False

    def finish(self, reason: str, *, cut: bool = False) -> bool:
        """End the row and send the rest of its text. ``cut``: a stop string has cut the text already; else an
        incomplete character left at the end is decoded as it stands (and may complete a stop string)."""
        if self.reason is None:
            self.reason = reason
            if not cut:
                self._decode(final=True)
                if self._cut_at_stop():
                    self.reason = STOP
            self._emit(final=True)
        return True

    def result(self) -> Finished:
        """The row's answer. A row the backend ended without an end token ran out of steps (CTranslate2 leaves the
        forced end token out and stops a step early), unless it had steps left: then it stopped."""
        if self.reason is None:
            steps = self.max_new_tokens - (1 if self.forced_end else 0)
            self.finish(LENGTH if self.count >= steps else STOP)
        return Finished(text=self.text, finish_reason=self.reason or STOP, prompt_tokens=self.prompt_tokens,
                        completion_tokens=self.count)

    def _decode(self, *, final: bool = False) -> None:
        """Add the text of the tokens not yet decoded; an incomplete character waits for its next bytes, unless
        ``final`` (it then stays as U+FFFD, as a whole decode shows it)."""
        decode = self.tokenizer.decode
        before = decode(self.ids[self.prefix_offset:self.read_offset], skip_special_tokens=True)
        after = decode(self.ids[self.prefix_offset:], skip_special_tokens=True)
        if len(after) > len(before) and (final or not after.endswith("\ufffd")):
            self.text += after[len(before):]
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)

    def _cut_at_stop(self) -> bool:
        """Cut the text at the first stop string; True if there is one."""
        longest = max((len(s) for s in self.stops), default=0)
        start = max(self.sent - longest, 0)
        found = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
        if not found:
            return False
        self.text = self.text[:min(found)]
        return True

    def _emit(self, *, final: bool) -> None:
        upto = len(self.text) if final else len(self.text) - self._held_back()
        if upto > self.sent:
            piece, self.sent = self.text[self.sent:upto], upto
            if self.sink.emit is not None:
                self.sink.emit(piece)

    def _held_back(self) -> int:
        """Characters at the end that must wait: trailing spaces (a tokenizer's clean-up may still remove one
        before punctuation) and the longest ending that begins a stop string."""
        text = self.text
        held = len(text) - len(text.rstrip())
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(text)), 0, -1):
                if text.endswith(stop[:k]):
                    held = max(held, k)
                    break
        return held


def stream_batch(model: Any, prompts: Prompts, sinks: Sequence[RowSink], *, stops: Sequence[str] = (),
                 seed: int | None = None) -> list[Finished]:
    """Generate for every prompt of one batch together, each row's text going to its sink while it grows.

    ``model``: a transformers model or a GenerationBackend. ``stops``: strings that end a reply (besides the
    model's end-of-sequence tokens and a chat template's end-of-turn text). Returns one Finished per prompt.
    """
    tokenizer = prompts.tokenizer
    backend = backend_for(model)
    _, eos = special_ids(tokenizer, getattr(model, "generation_config", None))
    end_ids = {int(i) for i in (eos if isinstance(eos, (list, tuple)) else [eos]) if i is not None}
    forced_end = getattr(getattr(model, "generation_config", None), "forced_eos_token_id", None) is not None
    skip_ids = {prompts.forced_bos_token_id} if prompts.forced_bos_token_id is not None else set()
    if not prompts.decoder_only:  # an encoder-decoder's decoder starts with a token that is not text (BART: BOS)
        skip_ids |= {i for i in (tokenizer.bos_token_id, tokenizer.pad_token_id) if i is not None}
    all_stops = (*stops, prompts.end_text) if prompts.end_text else tuple(stops)
    rows = [RowText(tokenizer, stops=all_stops, end_ids=end_ids, skip_ids=skip_ids,
                    max_new_tokens=int(prompts.options.max_new_tokens or 0), prompt_tokens=len(ids), sink=sink,
                    forced_end=forced_end)
            for ids, sink in zip(prompts.ids, sinks)]
    with backend.token_generation(tokenizer, decoder_only=prompts.decoder_only, options=prompts.options,
                                  forced_bos_token_id=prompts.forced_bos_token_id, seed=seed) as run:
        run(prompts.ids, lambda row, token: rows[row].add(token))
    return [row.result() for row in rows]
