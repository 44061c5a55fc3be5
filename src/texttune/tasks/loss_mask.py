"""The loss-mask audit: before step 1, which tokens of the training batches will carry loss.

Fine-tuning a generator fails silently when its labels are wrong: a prompt template that
does not match masks every label (the loss is 0 and nothing is learned), the end-of-sequence
or end-of-turn token is masked (pad = EOS, padding masked by id) so the model never learns to
stop, or truncation cuts a target off entirely. None of this raises; the run trains and the
model is bad. So the recipe collates a sample of the encoded training rows exactly as
training will (``task.collate``) and counts, per row:

- loss tokens: labels that are not -100 (decoder-only: from position 1 on, since the label at
  position t is predicted from position t-1 and position 0 has nothing before it);
- whether a stop token (EOS, or the generation config's end-of-turn tokens) carries loss;
- decoder-only: whether every labelled token equals the input token at its position (labels
  are the inputs themselves, masked; anything else is a misaligned or shifted mask).

No loss token in the sample, or misaligned labels, stop the run before training (ConfigError);
rows without loss and rows whose stop token is not trained are loud warnings. The numbers go to
data_report.json (``loss_mask``) and the report's "Data checks" section.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from texttune.errors import ConfigError

log = logging.getLogger("texttune")

IGNORE = -100
#: Rows audited (the first ones of the training features): enough to see a systematic fault, cheap to collate.
SAMPLE_ROWS = 2000
BATCH = 64
MAX_ROWS = 20  # row indices kept per finding


def applies(task: Any, features: Any) -> bool:
    """The audit applies to tasks that declare ``audits_loss_mask`` (one training row is one prompt and its answer:
    text2text, chat) and train on token labels. Not causal-lm: its chunks cut documents anywhere, so most chunks
    rightly hold no EOS, and every token carries loss by construction."""
    return bool(getattr(task, "audits_loss_mask", False)) and "labels" in getattr(features, "column_names", ())


def stop_token_ids(*, tokenizer: Any, model: Any = None) -> set[int]:
    """The ids a generated answer may end with: the tokenizer's EOS and the model's generation EOS ids (an
    instruct model's end-of-turn token, e.g. ``<|im_end|>`` or ``<|eot_id|>``)."""
    ids: set[int] = set()
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is not None:
        ids.add(int(eos))
    generation = getattr(model, "generation_config", None)
    configured = getattr(generation, "eos_token_id", None)
    if configured is not None:
        ids.update(int(i) for i in (configured if isinstance(configured, (list, tuple)) else [configured]))
    return ids


def audit(task: Any, features: Any, *, stop_ids: set[int], decoder_only: bool, sample: int = SAMPLE_ROWS) -> dict[str, Any]:
    """Collate the first ``sample`` rows of ``features`` with ``task.collate`` and count who carries loss.

    Findings name rows by the table row a feature came from (its ``row`` column, kept by tasks that drop rows
    while encoding, e.g. chat), else by the feature's own index.
    """
    n = min(len(features), sample)
    # A task's own stop tokens (chat: the template's end-of-turn, e.g. <|eot_id|>, before the saved model's
    # generation config lists it)
    stop_ids = set(stop_ids) | {int(i) for i in getattr(task, "stop_token_ids", ())}
    rows_without, no_stop, misaligned = [], [], []
    tokens = loss_tokens = 0
    for start in range(0, n, BATCH):
        part = [features[i] for i in range(start, min(start + BATCH, n))]
        batch = task.collate(part)
        inputs, labels = batch["input_ids"].tolist(), batch["labels"].tolist()
        mask = batch["attention_mask"].tolist() if "attention_mask" in batch else None
        for j, (ids, row) in enumerate(zip(inputs, labels)):
            # the row of the table when the features say (chat drops rows too long to fit), so messages name file lines
            index = int(part[j].get("row", start + j))
            scored = _scored(ids, row, decoder_only=decoder_only)
            # decoder-only: the tokens of the sequence; encoder-decoder: the decoder's (every target token is scored)
            tokens += (sum(mask[j]) if mask is not None else len(ids)) if decoder_only else len(scored)
            if decoder_only and any(ids[t] != label for t, label in scored):
                misaligned.append(index)
            loss_tokens += len(scored)
            if not scored:
                rows_without.append(index)
            elif not stop_ids & {label for _, label in scored}:
                no_stop.append(index)
    return {"rows_checked": n, "decoder_only": decoder_only, "tokens": tokens, "loss_tokens": loss_tokens,
            "loss_share": round(loss_tokens / tokens, 4) if tokens else 0.0, "stop_tokens": sorted(stop_ids),
            "rows_without_loss": _finding(rows_without, n), "stop_token_not_trained": _finding(no_stop, n),
            "labels_not_inputs": _finding(misaligned, n)}


def _scored(ids: list[int], labels: list[int], *, decoder_only: bool) -> list[tuple[int, int]]:
    """(position, label) of the labels the loss uses; decoder-only labels are shifted, so position 0 is never one."""
    first = 1 if decoder_only else 0
    return [(t, label) for t, label in enumerate(labels) if t >= first and label != IGNORE]


def _finding(rows: list[int], total: int) -> dict[str, Any]:
    return {"count": len(rows), "rate": round(len(rows) / total, 6) if total else 0.0, "rows": rows[:MAX_ROWS]}


def enforce(found: dict[str, Any], *, source: str, lines: Any = None) -> None:
    """Refuse a run no token of which would be trained, or whose labels are not its inputs; warn on the rest.

    ``lines(i)`` names row i's place in the file (e.g. ``train.jsonl line 12``) for the messages.
    """
    where = _where(found["rows_without_loss"]["rows"], lines) or _where(found["labels_not_inputs"]["rows"], lines)
    if found["loss_tokens"] == 0:
        raise ConfigError(f"{source}: no token carries loss in the first {found['rows_checked']} training rows (every "
                          f"label is masked, e.g. {where}): check the target column and --max-source-length / "
                          "--max-target-length (a prompt that fills the whole length leaves no room for the target)")
    bad = found["labels_not_inputs"]
    if bad["count"]:
        raise ConfigError(f"{source}: {bad['count']} of {found['rows_checked']} rows have labels that are not their "
                          f"input tokens ({_where(bad['rows'], lines)}): the loss mask is misaligned")
    without, stop = found["rows_without_loss"], found["stop_token_not_trained"]
    if without["count"]:
        log.warning("loss mask: %d of %d training rows carry no loss (their target was cut off entirely or is empty; "
                    "e.g. %s): they train nothing", without["count"], found["rows_checked"],
                    _where(without["rows"], lines))
    if stop["count"]:
        log.warning("loss mask: in %d of %d training rows no stop token (ids %s) carries loss (e.g. %s): the model may "
                    "not learn to stop", stop["count"], found["rows_checked"], found["stop_tokens"],
                    _where(stop["rows"], lines))
    log.info("loss mask: %d of %d tokens (%.1f%%) carry loss in %d training rows; stop token trained in %d rows",
             found["loss_tokens"], found["tokens"], 100 * found["loss_share"], found["rows_checked"],
             found["rows_checked"] - without["count"] - stop["count"])


def _where(rows: Iterable[int], lines: Any) -> str:
    rows = list(rows)[:3]
    return ", ".join(lines(i) if lines is not None else f"row {i}" for i in rows)
