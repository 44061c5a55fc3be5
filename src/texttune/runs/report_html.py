"""HTML building blocks for the run report: escaping, value formatting, tables, the page's CSS.

Everything that reaches the page goes through :func:`esc` (or :func:`table`,
which escapes every cell that is not already :class:`Html`), so text from a
run (a prediction containing ``<script>``, say) is shown, never interpreted.
"""

from __future__ import annotations

import html
import json
from typing import Any

from texttune.runs.plots import number

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2330;margin:0;background:#f4f5f8}
main{max-width:1180px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:24px;margin:8px 0 2px}h2{font-size:18px;margin:0 0 10px}
section{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:16px 20px;margin:16px 0}
nav{font-size:13px}nav a{margin-right:12px;color:#2456a6;text-decoration:none}
.sub{color:#5b6475;font-size:13px}.dim{color:#98a0ad}.missing{color:#a05a00;font-style:italic}
table{border-collapse:collapse;font-size:13px;margin:4px 0 10px}
th,td{border-bottom:1px solid #e7e9ee;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f0f2f6;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.main td{background:#fff6d8;font-weight:600}tr.best td{background:#e9f7ec}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:13px;color:#fff;background:#6b7280}
.completed{background:#1f8a4c}.failed{background:#c0392b}.running{background:#2f6fd6}.interrupted{background:#b7791f}
.up{color:#1f8a4c}.down{color:#c0392b}
.cell{max-height:9em;overflow:auto;white-space:pre-wrap;word-break:break-word;min-width:12em}
table.preds td{max-width:360px}pre{background:#f6f7f9;padding:8px;overflow:auto;white-space:pre-wrap}
.plots{display:flex;flex-wrap:wrap;gap:14px}figure{margin:0;flex:1 1 460px;max-width:640px}figcaption{font-size:12px;color:#5b6475}
img{width:100%;height:auto;border:1px solid #e7e9ee}
figure.wide{max-width:900px}tr.weak td{background:#fdecea}.scores b{color:#1f8a4c}.scores .miss{color:#c0392b}
"""


class Html(str):
    """Markup that is already safe (built here from escaped parts): tables insert it as is."""


def esc(value: Any) -> Html:
    return Html(html.escape(str(value), quote=True))


def fmt(value: Any) -> str:
    """A value for a table cell: numbers compact, containers as JSON, None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return fmt(int(value))
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def table(headers: list[Any], rows: list[list[Any]], *, row_classes: list[str] | None = None, cls: str = "") -> Html:
    """An HTML table; cells are escaped unless they are :class:`Html`; numeric cells align right."""
    def cell(tag: str, value: Any) -> str:
        numeric = number(value) is not None and not isinstance(value, str)
        text = value if isinstance(value, Html) else esc(fmt(value))
        return f"<{tag}{' class=n' if numeric else ''}>{text}</{tag}>"

    head = f"<thead><tr>{''.join(cell('th', h) for h in headers)}</tr></thead>" if headers else ""
    body = "".join(f"<tr{f' class={row_classes[i]}' if row_classes and row_classes[i] else ''}>"
                   + "".join(cell("td", v) for v in row) + "</tr>" for i, row in enumerate(rows))
    return Html(f"<table{f' class={cls}' if cls else ''}>{head}<tbody>{body}</tbody></table>")


def text_cell(value: Any, *, words: bool = False) -> Html:
    """A scrollable text cell; with ``words`` (token-level records) a list of strings reads as space-separated words."""
    if words and isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = " ".join(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) and "role" in v for v in value):
        # a conversation (chat records): one "role: content" line per turn, not a JSON dump
        lines = "".join(f"<div><b>{esc(v.get('role'))}:</b> {esc(v.get('content'))}</div>" for v in value)
        return Html(f"<div class=cell>{lines}</div>")
    return Html(f"<div class=cell>{esc(value if isinstance(value, str) else fmt(value))}</div>")
