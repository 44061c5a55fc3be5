"""The report's "Data checks" section, drawn from the run's data_report.json (texttune/data/checks.py).

A table of counts per split (duplicates, leaks, near-duplicates, conflicts, empty cells, the
task's own findings), the truncation rates at the run's max lengths, the warnings, and a few
example rows with their file lines. A run without data_report.json (data checks off, an older
texttune) says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from texttune.runs.plots import read_json_file
from texttune.runs.report_html import Html, esc, table

DATA_REPORT = "data_report.json"
COUNTED = ("duplicates", "leaks", "near_duplicates", "conflicts", "conflicts_with_reference")
MAX_EXAMPLES = 5


def _count(finding: Any) -> Any:
    if not isinstance(finding, dict) or "count" not in finding:
        return None
    rate = finding.get("rate")
    return f"{finding['count']} ({rate:.2%})" if isinstance(rate, (int, float)) and finding["count"] else finding["count"]


def _rows(splits: dict[str, Any]) -> list[list[Any]]:
    names = list(splits)
    rows = [["rows", *[s.get("rows") for s in splits.values()]]]
    rows += [[key.replace("_", " "), *[_count(s.get(key)) for s in splits.values()]] for key in COUNTED
             if any(key in s for s in splits.values())]
    roles = list(dict.fromkeys(r for s in splits.values() for r in (s.get("empty_cells") or {})))
    rows += [[f"empty {role}", *[_count((s.get("empty_cells") or {}).get(role, {"count": 0})) for s in splits.values()]]
             for role in roles]
    found = list(dict.fromkeys(k for s in splits.values() for k, v in (s.get("task") or {}).items() if "count" in v))
    rows += [[key.replace("_", " "), *[_count((s.get("task") or {}).get(key)) for s in splits.values()]] for key in found]
    for role in dict.fromkeys(r for s in splits.values() for r in (s.get("lengths") or {})):
        cells = []
        for name in names:
            v = (splits[name].get("lengths") or {}).get(role)
            cells.append(f"{v['p50']}/{v['p95']}/{v['p99']}/{v['max']} {v.get('unit', '')}" if isinstance(v, dict) else None)
        rows.append([f"{role} length p50/p95/p99/max", *cells])
    return rows


def _examples(splits: dict[str, Any]) -> list[list[Any]]:
    out = []
    for name, split in splits.items():
        for key in COUNTED:
            finding = split.get(key)
            if isinstance(finding, dict) and finding.get("count"):
                out += [[name, key.replace("_", " "), e.get("where"), e.get("same_as", ""), e.get("text", "")]
                        for e in finding.get("examples", [])[:MAX_EXAMPLES]]
        for key, finding in (split.get("task") or {}).items():
            out += [[name, key.replace("_", " "), e.get("where"), "", ""] for e in finding.get("examples", [])[:MAX_EXAMPLES]]
    return out


def data_checks_section(root: Path) -> Html:
    """The section's HTML (every value escaped by ``table``/``esc``)."""
    report = read_json_file(Path(root) / DATA_REPORT)
    mask = _loss_mask(report.get("loss_mask")) if isinstance(report, dict) else Html("")
    if not isinstance(report, dict) or not isinstance(report.get("splits"), dict):
        if isinstance(report, dict) and "loss_mask" in report:  # --no-data-checks, or memory-mapped data
            return Html("<p class=missing>data checks not run (--no-data-checks, streaming or memory-mapped data)</p>"
                        + mask)
        why = "file missing" if not (Path(root) / DATA_REPORT).exists() else "file incomplete or not readable"
        return Html(f"<p class=missing>not recorded ({why}: {esc(DATA_REPORT)})</p>")
    splits = {k: v for k, v in report["splits"].items() if isinstance(v, dict)}
    parts = [Html(f"<p class=sub>texts compared after {esc(report.get('normalisation', ''))}; leaks and near-duplicates "
                  f"against {esc(report.get('reference', 'train'))}</p>")]
    parts += [Html(f"<p><b>warning:</b> {esc(w)}</p>") for w in report.get("warnings", [])]
    parts.append(table(["", *splits], _rows(splits)))
    truncation = report.get("truncation")
    if isinstance(truncation, dict) and any(truncation.values()):
        rows = [[f"{split} {k.replace('_truncated', '')}", v.get("count"), f"{v.get('rate', 0):.2%}"]
                for split, found in truncation.items() if isinstance(found, dict) for k, v in found.items()]
        parts.append(Html("<h3>Truncated at the run's max lengths</h3>") + table(["", "rows", "rate"], rows))
    if isinstance(report.get("dedupe"), dict):
        d = report["dedupe"]
        parts.append(Html(f"<p>--dedupe removed {esc(d.get('removed_train_rows'))} training rows "
                          f"({esc(d.get('train_rows_after'))} left)</p>"))
    examples = _examples(splits)
    if examples:
        parts.append(Html("<h3>Example rows</h3>") + table(["split", "finding", "row", "same as", "text"], examples))
    return Html("".join([*parts, mask]))


def _loss_mask(found: Any) -> Html:
    """The loss-mask audit (texttune/tasks/loss_mask.py): which training tokens carry loss, and the stop token."""
    if not isinstance(found, dict):
        return Html("")
    rows = [["training rows checked", found.get("rows_checked")],
            ["tokens carrying loss", f"{found.get('loss_tokens')} of {found.get('tokens')} ({found.get('loss_share', 0):.1%})"],
            ["rows without loss", _count(found.get("rows_without_loss"))],
            ["rows whose stop token is not trained", _count(found.get("stop_token_not_trained"))],
            ["stop token ids", ", ".join(str(i) for i in found.get("stop_tokens") or [])]]
    return Html("<h3>Loss mask (training rows as collated)</h3>") + table(["", ""], rows)
