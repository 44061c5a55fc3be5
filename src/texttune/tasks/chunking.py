"""Plain text -> fixed-size token chunks, and perplexity: shared by masked-lm and causal-lm.

Language modelling trains on running text, not on (input, target) pairs. Every
document is tokenized, the token streams are concatenated and cut into chunks of
exactly ``max_length`` tokens: the recipe of transformers' ``run_mlm.py`` and
``run_clm.py`` (``group_texts``). Unlike ``group_texts``, which cuts each batch of
1,000 documents separately and silently drops a remainder per batch, a whole split
is cut at once, so there is at most one partial chunk: it is dropped, or padded
with ``--pad-last-chunk``, and the statistics say how many tokens that was.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from texttune.errors import BackboneError, DataError
from texttune.metrics.rowwise import perplexity_statistics

DEFAULT_MAX_LENGTH = 128
IGNORE = -100  # label value the loss ignores
_TOKENIZE_BATCH = 1000  # documents per tokenizer call: bounded memory, fast-tokenizer parallelism


def check_fits(size: int, backbone: Any) -> None:
    """Refuse chunks longer than the backbone reads before any data work.

    The limit is the smaller of the position embeddings and the tokenizer's
    ``model_max_length`` (RoBERTa has 514 positions but reads 512 tokens).
    """
    limits = [getattr(backbone.config, "max_position_embeddings", None), getattr(backbone.tokenizer, "model_max_length", None)]
    limit = min((int(n) for n in limits if isinstance(n, int) and 0 < n < 1_000_000), default=None)
    if limit is not None and size > limit:
        raise BackboneError(f"--max-length {size} is longer than backbone {backbone.name!r} reads ({limit} tokens); use at most {limit}")


def pad_id(tokenizer: Any) -> int:
    """The id used to fill a padded last chunk (never scored: its attention mask is 0)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def chunk_documents(rows: Any, tokenizer: Any, *, size: int, pad_last: bool, add_special_tokens: bool,
                    append_eos: bool = False, offsets: bool = False) -> tuple[Any, dict[str, Any]]:
    """Tokenize the ``text`` column, concatenate and cut into chunks of ``size`` tokens.

    Returns a ``datasets.Dataset`` with ``input_ids``, ``attention_mask`` and
    ``special_tokens_mask`` (and ``offset_mapping`` with ``offsets``, for whole-word
    masking), every row exactly ``size`` long, plus statistics: rows, chunks,
    tokens, dropped_tokens, padded_tokens. ``append_eos`` ends every document with
    the EOS token, so a decoder learns where documents stop.
    """
    import numpy as np
    from datasets import Dataset

    keys = ["input_ids", "special_tokens_mask", *(["offset_mapping"] if offsets else [])]
    parts: dict[str, list[Any]] = {key: [] for key in keys}
    eos = tokenizer.eos_token_id
    if append_eos and eos is None:
        raise BackboneError("this tokenizer has no end-of-sequence token to separate documents")
    for start, texts in _batches(rows["text"]):
        # verbose=False: documents longer than the model reads are expected here (they are cut into chunks).
        enc = tokenizer(texts, add_special_tokens=add_special_tokens, return_special_tokens_mask=True,
                        return_offsets_mapping=offsets, return_attention_mask=False, return_token_type_ids=False, verbose=False)
        for i, special in enumerate(enc["special_tokens_mask"]):
            if all(special):
                raise DataError(f"row {start + i + 1}: the text {texts[i][:40]!r} has no tokens for this tokenizer; "
                                "remove the row or fix its text")
            parts["input_ids"].append(np.asarray(enc["input_ids"][i] + ([eos] if append_eos else []), dtype=np.int64))
            parts["special_tokens_mask"].append(np.asarray(special + ([1] if append_eos else []), dtype=np.int8))
            if offsets:
                parts["offset_mapping"].append(np.asarray(enc["offset_mapping"][i], dtype=np.int64).reshape(-1, 2))
    flat = {key: np.concatenate(values) for key, values in parts.items()}  # (N,) or (N, 2)
    total = len(flat["input_ids"])
    flat["attention_mask"] = np.ones(total, dtype=np.int8)
    full, rest = divmod(total, size)
    padded = size - rest if pad_last and rest else 0
    if padded:  # pad tokens are special (never masked) and unattended (never scored)
        fill = {"input_ids": pad_id(tokenizer), "special_tokens_mask": 1, "attention_mask": 0, "offset_mapping": 0}
        for key, values in flat.items():
            flat[key] = np.concatenate([values, np.full((padded, *values.shape[1:]), fill[key], dtype=values.dtype)])
    chunks = len(flat["input_ids"]) // size
    if chunks == 0:
        raise DataError(f"the data ({len(rows)} rows) has {total} tokens, fewer than one chunk of --max-length {size}; "
                        "give more text, a smaller --max-length, or --pad-last-chunk")
    columns = {key: values[: chunks * size].reshape(chunks, size, *values.shape[1:]).tolist() for key, values in flat.items()}
    stats = {"rows": len(rows), "chunks": chunks, "chunk_tokens": size, "tokens": total,
             "dropped_tokens": 0 if pad_last else rest, "padded_tokens": padded}
    return Dataset.from_dict(columns), stats


def _batches(texts: Any) -> Iterator[tuple[int, list[str]]]:
    for start in range(0, len(texts), _TOKENIZE_BATCH):
        yield start, list(texts[start : start + _TOKENIZE_BATCH])


def fingerprint(rows: Any) -> str:
    """A key for caching what was computed from these rows (datasets fingerprints the content)."""
    return str(getattr(rows, "_fingerprint", None) or id(rows))


def score_chunks(model: Any, features: dict[str, Any], *, batch_size: int, shift: bool) -> tuple[list[float], list[int]]:
    """Summed cross-entropy and scored-token count per chunk.

    ``features``: ``input_ids``, ``attention_mask``, ``labels`` tensors of shape
    (chunks, T); labels -100 are not scored. ``shift``: next-token prediction
    (causal LM: logits at t score label t+1); otherwise each position scores its
    own label (masked LM). Runs in eval mode without gradients.
    """
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    sums: list[float] = []
    counts: list[int] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(features["input_ids"]), batch_size):
                part = {k: v[start : start + batch_size].to(device) for k, v in features.items()}
                logits = model(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits  # (B, T, V)
                labels = part["labels"]  # (B, T)
                if shift:
                    logits, labels = logits[:, :-1], labels[:, 1:]
                losses = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=IGNORE, reduction="none")  # (B, T')
                sums.extend(losses.sum(dim=1).tolist())
                counts.extend((labels != IGNORE).sum(dim=1).tolist())
    finally:
        model.train(was_training)
    return sums, counts


def perplexity(sums: list[float], counts: list[int]) -> dict[str, float]:
    """``loss``: mean cross-entropy per scored token over the whole set; ``perplexity``: exp(loss)."""
    scored = sum(counts)
    if scored == 0:
        raise DataError("the evaluation data has no scored tokens (too little text for one masked token); give more text")
    loss = sum(sums) / scored
    return {"perplexity": round(math.exp(min(loss, 700.0)), 4), "loss": round(loss, 6)}


def chunk_records(tokenizer: Any, features: dict[str, Any], sums: list[float], counts: list[int]) -> list[dict[str, Any]]:
    """One record per chunk for predictions.jsonl: its text as the model saw it, tokens scored, mean loss."""
    records = []
    for i, (ids, mask) in enumerate(zip(features["input_ids"].tolist(), features["attention_mask"].tolist())):
        text = tokenizer.decode([t for t, m in zip(ids, mask) if m], skip_special_tokens=False)
        records.append({"chunk": i, "text": text, "scored_tokens": counts[i], "loss": round(sums[i] / max(counts[i], 1), 4),
                        "loss_sum": float(sums[i])})
    return records


def score_chunk_records(records: list[dict[str, Any]]) -> dict[str, float]:
    """Perplexity and loss from :func:`chunk_records` (their ``loss_sum`` and ``scored_tokens``): the bootstrap's scorer."""
    return perplexity([r["loss_sum"] for r in records], [r["scored_tokens"] for r in records])


def chunk_statistics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-chunk (loss sum, tokens) of :func:`chunk_records`, for the fast bootstrap (metrics/rowwise.py)."""
    return perplexity_statistics([r["loss_sum"] for r in records], [r["scored_tokens"] for r in records])
