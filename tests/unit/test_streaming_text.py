"""RowText: a row's tokens turned into text pieces (inference/streaming.py), with a byte-level toy tokenizer."""

from __future__ import annotations

from texttune.inference.streaming import CANCELLED, LENGTH, STOP, RowSink, RowText

END = 0


class Bytes:
    """Token id n > 0 is the byte n - 1 (like byte-level BPE, a character may span tokens); 0 is the end token."""

    @staticmethod
    def ids(text: str) -> list[int]:
        return [b + 1 for b in text.encode("utf-8")]

    @staticmethod
    def decode(ids: list[int], skip_special_tokens: bool = True) -> str:
        return bytes(i - 1 for i in ids if i != END).decode("utf-8", errors="replace")


def _row(stops: tuple[str, ...] = (), max_new_tokens: int = 100, **sink: object) -> tuple[RowText, list[str]]:
    pieces: list[str] = []
    row = RowText(Bytes(), stops=stops, end_ids={END}, skip_ids=set(), max_new_tokens=max_new_tokens, prompt_tokens=3,
                  sink=RowSink(emit=pieces.append, **sink))  # type: ignore[arg-type]
    return row, pieces


def _feed(row: RowText, text: str) -> bool:
    return any([row.add(t) for t in Bytes.ids(text)])


def test_pieces_join_to_the_text_and_a_split_character_waits_for_its_bytes() -> None:
    row, pieces = _row()
    assert not _feed(row, "café au lait")
    assert "\ufffd" not in "".join(pieces)  # é is two tokens: nothing half of it is sent
    assert row.add(END)
    result = row.result()
    assert result.text == "café au lait" and "".join(pieces) == result.text
    assert result.finish_reason == STOP and result.completion_tokens == len(Bytes.ids("café au lait")) + 1
    assert len(pieces) > 3


def test_a_stop_string_split_over_tokens_is_held_back_then_cut() -> None:
    row, pieces = _row(stops=("END",))
    _feed(row, "abc E")
    assert "".join(pieces) == "abc "  # "E" could begin "END"
    _feed(row, "xEN")  # not the stop: released, but "EN" may be
    assert "".join(pieces) == "abc Ex"
    assert _feed(row, "D and more")
    assert row.result().text == "abc Ex" and row.result().finish_reason == STOP and "".join(pieces) == "abc Ex"


def test_the_length_limit_and_a_caller_who_left() -> None:
    row, pieces = _row(max_new_tokens=4)
    assert _feed(row, "abcdef")
    assert row.result().finish_reason == LENGTH and row.result().text == "abcd" and "".join(pieces) == "abcd"
    gone = {"left": False}
    row, _ = _row(cancelled=lambda: gone["left"])
    _feed(row, "ab")
    gone["left"] = True
    assert row.add(Bytes.ids("c")[0]) and row.result().finish_reason == CANCELLED and row.result().completion_tokens == 2
