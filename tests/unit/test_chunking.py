"""Chunking for the language-modelling tasks, and the plain-text reader.

Why: chunking silently decides what the model trains on. Every token of every
document must land in exactly one chunk, in order; the only tokens lost are the
last partial chunk's (and the statistics say how many), or that chunk is padded
with tokens that are neither masked nor scored. A document with no tokens, or
too little text for one chunk, must be refused with a message, not trained on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from texttune.data import from_lists, load_table
from texttune.errors import DataError
from texttune.tasks.chunking import chunk_documents, perplexity

DATA = Path(__file__).resolve().parents[1] / "data"


def documents() -> list[str]:
    lines = (DATA / "summarization.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["document"] for line in lines[:12]]


@pytest.fixture(scope="module")
def bert(tiny_model_dir: Callable[[str], Path]):  # noqa: ANN201 - a transformers tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir("bert"))


@pytest.fixture(scope="module")
def llama(tiny_model_dir: Callable[[str], Path]):  # noqa: ANN201
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir("llama"))


def test_chunks_are_the_concatenated_documents_in_order(bert) -> None:  # noqa: ANN001
    docs = documents()
    rows = from_lists({"text": docs}).rows
    features, stats = chunk_documents(rows, bert, size=32, pad_last=False, add_special_tokens=True)
    stream = [t for d in docs for t in bert(d)["input_ids"]]  # [CLS] doc [SEP] per document
    assert stats["tokens"] == len(stream)
    assert stats["chunks"] == len(stream) // 32 == len(features)
    assert stats["dropped_tokens"] == len(stream) % 32 and stats["padded_tokens"] == 0
    assert stats["rows"] == len(docs)
    assert all(len(ids) == 32 for ids in features["input_ids"])
    assert [t for ids in features["input_ids"] for t in ids] == stream[: stats["chunks"] * 32]
    assert all(m == 1 for mask in features["attention_mask"] for m in mask)
    # special-token flags travel with their tokens ([CLS]/[SEP] are never masked)
    flags = [f for mask in features["special_tokens_mask"] for f in mask]
    ids = [t for chunk in features["input_ids"] for t in chunk]
    assert all(bool(f) == (t in (bert.cls_token_id, bert.sep_token_id)) for f, t in zip(flags, ids))


def test_pad_last_chunk_keeps_every_token_and_pads_unattended(bert) -> None:  # noqa: ANN001
    rows = from_lists({"text": documents()}).rows
    features, stats = chunk_documents(rows, bert, size=32, pad_last=True, add_special_tokens=True)
    assert stats["dropped_tokens"] == 0
    assert stats["chunks"] * 32 == stats["tokens"] + stats["padded_tokens"]
    assert 0 < stats["padded_tokens"] < 32
    last = features[len(features) - 1]
    pads = stats["padded_tokens"]
    assert last["attention_mask"][-pads:] == [0] * pads and last["attention_mask"][:-pads] == [1] * (32 - pads)
    assert last["special_tokens_mask"][-pads:] == [1] * pads
    assert last["input_ids"][-pads:] == [bert.pad_token_id] * pads


def test_decoder_documents_end_with_eos(llama) -> None:  # noqa: ANN001
    docs = documents()[:3]
    rows = from_lists({"text": docs}).rows
    features, stats = chunk_documents(rows, llama, size=8, pad_last=True, add_special_tokens=True, append_eos=True)
    stream = [t for d in docs for t in [*llama(d)["input_ids"], llama.eos_token_id]]
    assert [t for ids in features["input_ids"] for t in ids][: len(stream)] == stream
    assert stats["tokens"] == len(stream)
    # no pad token in this tokenizer: the padded tail uses EOS, unattended
    assert features[len(features) - 1]["input_ids"][-1] == llama.eos_token_id


def test_whole_word_offsets_are_kept_per_token(bert) -> None:  # noqa: ANN001
    rows = from_lists({"text": documents()[:4]}).rows
    features, _ = chunk_documents(rows, bert, size=16, pad_last=False, add_special_tokens=True, offsets=True)
    assert all(len(chunk) == 16 and all(len(pair) == 2 for pair in chunk) for chunk in features["offset_mapping"])


def test_a_document_without_tokens_is_refused_by_row(bert) -> None:  # noqa: ANN001
    # A zero-width space passes the data layer's empty-string check but BERT's normaliser removes it.
    rows = from_lists({"text": ["A real sentence here.", "\u200b", "Another one."]}).rows
    with pytest.raises(DataError, match=r"row 2: .*no tokens"):
        chunk_documents(rows, bert, size=4, pad_last=False, add_special_tokens=True)


def test_too_little_text_for_one_chunk(bert) -> None:  # noqa: ANN001
    rows = from_lists({"text": ["Just a few words."]}).rows
    with pytest.raises(DataError, match=r"fewer than one chunk of --max-length 128.*--pad-last-chunk"):
        chunk_documents(rows, bert, size=128, pad_last=False, add_special_tokens=True)
    features, stats = chunk_documents(rows, bert, size=128, pad_last=True, add_special_tokens=True)
    assert stats["chunks"] == 1 and stats["padded_tokens"] == 128 - stats["tokens"]


def test_perplexity_is_exp_of_the_token_weighted_mean() -> None:
    # 2 chunks: 3 tokens summing to 6.0 and 1 token of 2.0 -> mean 2.0 per token (not per chunk)
    metrics = perplexity([6.0, 2.0], [3, 1])
    assert metrics["loss"] == pytest.approx(2.0)
    assert metrics["perplexity"] == pytest.approx(7.3891, abs=1e-3)
    with pytest.raises(DataError, match="no scored tokens"):
        perplexity([0.0], [0])


def test_txt_files_are_one_document_per_non_empty_line(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("First document.\n\n   \nSecond document, line 4.\n", encoding="utf-8")
    table = load_table(path)
    assert table.rows.column_names == ["text"]
    assert table.rows["text"] == ["First document.", "Second document, line 4."]
    assert table.locate(1) == f"{path} line 4"
    blank = tmp_path / "blank.txt"
    blank.write_text("\n \n", encoding="utf-8")
    with pytest.raises(DataError, match="no data rows"):
        load_table(blank)


def test_lines_break_only_at_newlines(tmp_path: Path) -> None:
    # Real reviews contain U+0085 (a mis-decoded ellipsis) and U+2028; str.splitlines() breaks at both.
    jsonl = tmp_path / "reviews.jsonl"
    jsonl.write_text(json.dumps({"text": "Wait\u0085 what\u2028next"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert load_table(jsonl).rows["text"] == ["Wait\u0085 what\u2028next"]
    txt = tmp_path / "reviews.txt"
    txt.write_text("one\u0085 line\r\ntwo\n", encoding="utf-8")
    assert load_table(txt).rows["text"] == ["one\u0085 line", "two"]
