"""Reading prediction inputs (file or stdin) and writing outputs (JSONL, CSV or stdout)."""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import Any

from texttune.data import Table, from_lists, load_table, take
from texttune.errors import DataError
from texttune.files import write_text


def _stdin_table() -> Table:
    lines = [(n, line) for n, line in enumerate(sys.stdin.read().splitlines(), start=1) if line.strip()]
    if not lines:
        raise DataError("stdin: no input (pass --input-file, or pipe JSONL records or one text per line)")
    if all(line.lstrip().startswith("{") for _, line in lines):
        records = []
        for n, line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"stdin line {n}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(record, dict):
                raise DataError(f"stdin line {n}: expected a JSON object")
            records.append(record)
        keys = list(dict.fromkeys(k for r in records for k in r))
        return from_lists({k: [r.get(k) for r in records] for k in keys}, name="stdin")
    return from_lists({"text": [line for _, line in lines]}, name="stdin")


def read_raw_inputs(input_file: str | None, *, limit: int | None) -> Table:
    """The input rows as written (file or stdin), read before any model loads so a bad file fails fast."""
    return take(load_table(input_file, split="test") if input_file else _stdin_table(), limit)


def read_inputs(model: Any, raw: Table, *, from_stdin: bool, columns: dict[str, str]) -> list[dict[str, Any]]:
    """Rows to predict: each with the original record (echoed in the output) and the mapped input."""
    if from_stdin and raw.rows.column_names == ["text"]:
        roles = model.input_roles()
        if len(roles) == 1 or not any(r.required for r in roles):  # plain lines: each line is the one input the
            columns = {roles[0].role: "text"}  # task needs (chat, whose inputs are alternatives: the prompt)
    mapped = model.input_table(raw, columns=columns)
    originals = raw.rows.to_list()
    return [{"record": original, "row": row} for original, row in zip(originals, mapped.rows.to_list())]


def write_outputs(output_file: str | None, records: list[dict[str, Any]], outputs: list[Any]) -> None:
    """JSONL (default, and on stdout) or CSV, chosen by the output file's extension."""
    rows = [{**r["record"], "prediction": out} for r, out in zip(records, outputs)]
    if output_file and output_file.lower().endswith((".csv", ".tsv")):
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), delimiter="\t" if output_file.lower().endswith(".tsv") else ",")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in row.items()})
        text = buffer.getvalue()
    else:
        text = "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
    if output_file:
        write_text(output_file, text)
    else:
        sys.stdout.write(text)
