"""One self-contained HTML page describing a run, written from its run directory.

Why one file with everything inlined (CSS, plots as ``data:`` URLs): it can be
mailed, attached to an issue or opened from an archive years later, offline,
without texttune. Every value from the run is escaped; a file the run did not
write (a crash, an older texttune) leaves its section saying so.
"""

from __future__ import annotations

import base64
import logging
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from texttune.errors import ConfigError
from texttune.files import write_text
from texttune.runs.classes import ClassRecords, ConfusionView, class_records, confusion_view, per_label_key
from texttune.runs.intervals import FOOTNOTE, paired_note, value_cell
from texttune.runs.lr_find_plot import LR_FIND_PLOT, LR_FIND_SOURCE
from texttune.runs.lr_find_plot import caption as lr_find_caption
from texttune.runs.plots import (
    CONFUSION_PLOT,
    PLOT_NAMES,
    main_metric,
    number,
    read_config,
    read_json_file,
    read_jsonl_file,
    write_plots,
)
from texttune.runs.report_classes import has_per_label_scores, misclassified_rows, per_class
from texttune.runs.report_data import data_checks_section
from texttune.runs.report_html import CSS, Html, esc, fmt, table, text_cell

logger = logging.getLogger(__name__)

MAX_PREDICTIONS, MAX_SAMPLE_ROWS, MAX_SAMPLE_STEPS = 20, 5, 6
PLOT_SOURCES = ("logs/metrics.csv", "evals.jsonl", "metrics.json", "data_stats.json", "status.json", "config.yaml",
                "predictions.jsonl", LR_FIND_SOURCE)
PLOT_CAPTIONS = {
    "loss.png": "Training loss per logged step, validation loss per evaluation",
    "lr.png": "Learning rate per step",
    "metric.png": "Main metric per evaluation, with the baselines and the zero-shot score",
    "lengths.png": "Token lengths per split",
}
TEXT_KEYS = ("input", "reference", "prediction")


@dataclass
class Run:
    """The run directory's files, each None when missing or unreadable."""

    root: Path
    config: dict[str, Any]
    status: Any
    environment: Any
    data_stats: Any
    metrics: Any
    model_summary: Any
    evals: list[dict[str, Any]] | None
    predictions: list[dict[str, Any]] | None
    zero_shot_predictions: list[dict[str, Any]] | None
    main: str | None = None
    higher: bool | None = None
    classes: ClassRecords | None = None  # predictions.jsonl as classification records (runs/classes.py)
    confusion: ConfusionView | None = None  # what confusion.png shows (single-label runs)
    lr_find: Any = None  # lr_find.json (--learning-rate auto)
    plots: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def read(cls, root: Path) -> Run:
        main, higher = main_metric(root)
        metrics, predictions = read_json_file(root / "metrics.json"), read_jsonl_file(root / "predictions.jsonl")
        classes = class_records(metrics, predictions)
        return cls(root=root, config=read_config(root), status=read_json_file(root / "status.json"),
                   environment=read_json_file(root / "environment.json"), data_stats=read_json_file(root / "data_stats.json"),
                   metrics=metrics, model_summary=read_json_file(root / "model_summary.json"),
                   evals=read_jsonl_file(root / "evals.jsonl"), predictions=predictions,
                   zero_shot_predictions=read_jsonl_file(root / "predictions_zero_shot.jsonl"), main=main, higher=higher,
                   classes=classes, confusion=confusion_view(classes), lr_find=read_json_file(root / LR_FIND_SOURCE))

    def missing(self, name: str) -> Html:
        """The note a section shows instead of its content."""
        path = self.root / name
        why = "file missing" if not path.exists() else "file incomplete or not readable"
        return Html(f"<p class=missing>not recorded ({why}: {esc(name)})</p>")

    def get(self, key: str) -> Any:
        """A field from status.json, else config.yaml."""
        status = self.status if isinstance(self.status, dict) else {}
        return status.get(key, self.config.get(key))


# --------------------------------------------------------------------------- entry point


def write_report(run_dir: Path, *, output: Path | None = None) -> Path:
    """Write the HTML report of ``run_dir`` (default ``RUN_DIR/report.html``) atomically; return its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a directory; pass a texttune run directory")
    if not (run_dir / "config.yaml").exists() and not (run_dir / "status.json").exists():
        raise ConfigError(f"{run_dir} is not a texttune run directory (it has no config.yaml or status.json)")
    target = Path(output) if output is not None else run_dir / "report.html"
    if target.is_dir():
        target = target / "report.html"
    run = Run.read(run_dir)
    run.plots = _plots(run_dir, PLOT_NAMES + ((CONFUSION_PLOT,) if run.confusion is not None else ())
                       + ((LR_FIND_PLOT,) if run.lr_find is not None else ()))
    write_text(target, render(run))
    return target


def _plots(run_dir: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """The PNGs to embed: (re)drawn when missing or older than the files they are drawn from."""
    plot_dir = run_dir / "plots"
    drawn = [plot_dir / name for name in names if (plot_dir / name).exists()]
    sources = [(run_dir / s).stat().st_mtime for s in PLOT_SOURCES if (run_dir / s).exists()]
    if len(drawn) < len(names) or max(sources, default=0) > min(p.stat().st_mtime for p in drawn):
        try:
            write_plots(run_dir)
        except OSError as exc:  # a read-only run directory: embed what is there
            logger.warning("could not write plots in %s (%s); using the existing ones", plot_dir, exc)
    images = {}
    for name in names:
        try:
            data = (plot_dir / name).read_bytes()
        except OSError:
            continue
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            images[name] = data
    return images


def render(run: Run) -> str:
    """The whole page."""
    task, backbone = run.get("task") or "unknown task", run.get("backbone") or "unknown backbone"
    state = run.status.get("state", "unknown") if isinstance(run.status, dict) else "unknown"
    title = f"texttune report: {task} · {Path(str(backbone)).name} · {state}"
    classes = [("classes", "Per class", per_class(run.metrics, run.classes, run.confusion, run.plots.get(CONFUSION_PLOT)))
               ] if has_per_label_scores(run.metrics) else []
    errors = [("misclassified", "Misclassified validation rows", misclassified_rows(run.classes))] if run.classes else []
    sections = [("summary", "Run", _summary(run)), ("metrics", "Metrics", _metrics(run)), *classes,
                ("plots", "Plots", _plot_section(run)), ("evaluations", "Evaluations during training", _evals(run)),
                ("predictions", "Sample predictions", _predictions(run)), *errors,
                ("samples", "Predictions at each evaluation", _samples(run)),
                ("data", "Data", _data(run)), ("data-checks", "Data checks", data_checks_section(run.root)),
                ("model", "Model", _model(run)),
                ("config", "Configuration", _config(run)), ("environment", "Environment", _environment(run))]
    nav = "".join(f'<a href="#{sid}">{esc(name)}</a>' for sid, name, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{esc(name)}</h2>{content}</section>' for sid, name, content in sections)
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body><main>"
            f"<h1>{esc(task)} · {esc(Path(str(backbone)).name)} <span class='badge {esc(state)}'>{esc(state)}</span></h1>"
            f"<div class=sub>{esc(run.root.resolve())} · report written {esc(time.strftime('%Y-%m-%d %H:%M:%S'))}</div>"
            f"<nav>{nav}</nav>{body}</main></body></html>\n")


# --------------------------------------------------------------------------- sections


def _duration(seconds: Any) -> str | None:
    s = number(seconds)
    if s is None:
        return None
    if s < 60:
        return f"{s:.1f} s"
    minutes, secs = divmod(int(round(s)), 60)
    return f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _summary(run: Run) -> Html:
    status = run.status if isinstance(run.status, dict) else {}
    fine = run.metrics.get("fine_tuned") if isinstance(run.metrics, dict) else None
    best = fine.get(run.main) if isinstance(fine, dict) and run.main else None
    rows = [["task", run.get("task")], ["backbone", run.get("backbone")], ["state", status.get("state")],
            ["steps", status.get("steps")], ["duration", _duration(status.get("duration_s"))],
            ["started", status.get("started")], ["finished", status.get("finished")], ["last update", status.get("updated")],
            ["training data", run.config.get("train_file")], ["validation data", run.config.get("validation_file")],
            ["test data (scored once, with the best weights)", run.config.get("test_file")],
            [f"fine-tuned {run.main}" if run.main else "main metric", best]]
    parts = [table([], [r for r in rows if r[1] is not None])]
    if status.get("error"):
        parts.append(Html(f"<p><b>Error</b></p><pre>{esc(status['error'])}</pre>"))
    if run.status is None:
        parts.insert(0, run.missing("status.json"))
    return Html("".join(parts))


def _metric_order(run: Run, names: list[str]) -> list[str]:
    return sorted(dict.fromkeys(names), key=lambda n: n != run.main)


def _metrics(run: Run) -> Html:
    if not isinstance(run.metrics, dict):
        return run.missing("metrics.json")
    m = run.metrics
    columns = [(f"baseline {name}", v, "baselines", name) for name, v in (m.get("baselines") or {}).items()
               if isinstance(v, dict)]
    columns += [(title, m.get(key), key, None) for key, title in (("zero_shot", "zero-shot"), ("fine_tuned", "fine-tuned"),
                                                                  ("test", "test")) if isinstance(m.get(key), dict)]
    if not columns:
        return Html("<p class=missing>not recorded (metrics.json has no scores yet)</p>")
    names = _metric_order(run, [k for _, values, *_ in columns for k in values])
    per_label = [n for n in names if per_label_key(n) is not None]  # shown in the per-class section instead
    names = [n for n in names if per_label_key(n) is None]
    zero, fine = m.get("zero_shot") or {}, m.get("fine_tuned") or {}
    rows, classes = [], []
    for name in names:
        diff = None
        if number(fine.get(name)) is not None and number(zero.get(name)) is not None:
            delta = number(fine[name]) - number(zero[name])  # type: ignore[operator]
            better = run.higher if name == run.main else None
            arrow = "" if better is None or delta == 0 else (" up" if (delta > 0) == better else " down")
            diff = Html(f"<span class='{arrow.strip()}'>{esc(f'{delta:+.4g}')}</span>{esc(paired_note(m, name))}")
        label = name if name != run.main else f"{name} (main, {'higher' if run.higher else 'lower'} is better)"
        rows.append([label, *[value_cell(m, key, values, name, baseline=b, number=fmt) for _, values, key, b in columns], diff])
        classes.append("main" if name == run.main else "")
    other = [[k, v] for k, v in m.items() if k not in {"baselines", "zero_shot", "fine_tuned", "test"}
             and not isinstance(v, (dict, list))]
    note = f"<p class=sub>{len(per_label)} per-label scores: in <a href='#classes'>Per class</a></p>" if per_label else ""
    legend = f"<p class=sub>{esc(FOOTNOTE)}</p>" if m.get("intervals") else ""
    return Html(table(["metric", *[t for t, *_ in columns], "fine-tuned − zero-shot"], rows, row_classes=classes, cls="metrics")
                + legend + note + (table([], other) if other else "") + _memory(m.get("memory")))


MEMORY_ROWS = (("device", "training device"), ("peak_rss_bytes", "peak resident memory (RSS) of the process"),
               ("peak_gpu_bytes", "peak GPU memory allocated by torch during training"),
               ("peak_gpu_reserved_bytes", "peak GPU memory reserved by torch's allocator during training"))


def _memory(memory: Any) -> str:
    """metrics.json "memory" as a small table (nothing for runs that did not record it)."""
    if not isinstance(memory, dict):
        return ""
    rows = []
    for key, label in MEMORY_ROWS:
        value, size = memory.get(key), number(memory.get(key)) if key.endswith("bytes") else None
        if size is not None:
            value = f"{size / 2**20:,.0f} MiB ({int(size):,} bytes)"
        elif key.startswith("peak_gpu") and value is None:
            value = "none (no CUDA device)"
        rows.append([label, value])
    return "<h3>Memory</h3>" + table([], rows)


def _plot_section(run: Run) -> Html:
    figures = []
    for name in PLOT_NAMES:
        if name in run.plots:
            data = base64.b64encode(run.plots[name]).decode("ascii")
            figures.append(f"<figure><img alt='{esc(name)}' width=640 height=360 src='data:image/png;base64,{data}'>"
                           f"<figcaption>{esc(PLOT_CAPTIONS[name])}</figcaption></figure>")
        else:
            figures.append(f"<p class=missing>{esc(name)}: not drawn (no data recorded for it)</p>")
    if LR_FIND_PLOT in run.plots:  # --learning-rate auto
        data = base64.b64encode(run.plots[LR_FIND_PLOT]).decode("ascii")
        figures.append(f"<figure><img alt='{LR_FIND_PLOT}' width=640 height=360 src='data:image/png;base64,{data}'>"
                       f"<figcaption>{esc(lr_find_caption(run.lr_find))}</figcaption></figure>")
    return Html(f"<div class=plots>{''.join(figures)}</div>")


def _evals(run: Run) -> Html:
    if run.evals is None:
        return run.missing("evals.jsonl")
    if not run.evals:
        return Html("<p class=missing>no evaluation recorded yet</p>")
    names = _metric_order(run, [k for e in run.evals for k in e if k != "step"])
    values = [number(e.get(run.main)) for e in run.evals] if run.main else []
    scored = [v for v in values if v is not None]
    best = (max(scored) if run.higher else min(scored)) if scored else None
    first_best = values.index(best) if best is not None else -1
    classes = ["best" if i == first_best else "" for i in range(len(run.evals))]
    note = "" if best is None else f"<p class=sub>best {esc(run.main)} highlighted</p>"
    return Html(table(["step", *names], [[e.get("step"), *[e.get(n) for n in names]] for e in run.evals],
                      row_classes=classes) + note)


def _same_row(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two prediction records are for the same example (same input-side and reference values)."""
    return all(a.get(k) == b.get(k) for k in ("input", "id", "question", "tokens", "conversation", "reference") if k in a)


def _predictions(run: Run) -> Html:
    if run.predictions is None:
        return run.missing("predictions.jsonl")
    shown, zero = run.predictions[:MAX_PREDICTIONS], run.zero_shot_predictions or []
    pairs = [zero[i] if i < len(zero) and _same_row(r, zero[i]) else None for i, r in enumerate(shown)]
    keys = list(dict.fromkeys(k for r in shown for k in r if k not in TEXT_KEYS))
    keys = (["input"] if any("input" in r for r in shown) else []) + keys + ["reference", "prediction"]
    with_zero = any(pairs)
    words = [isinstance(r.get("tokens"), list) for r in shown]  # token classification: tokens and tags per word
    rows = [[i + 1, *[text_cell(r.get(k), words=words[i]) for k in keys],
             *([text_cell(z.get("prediction"), words=words[i]) if z else "–"] if with_zero else [])]
            for i, (r, z) in enumerate(zip(shown, pairs))]
    note = f"<p class=sub>first {len(shown)} of {len(run.predictions)} rows of predictions.jsonl"
    note += ", with the zero-shot model's output for the same rows" if with_zero else ""
    return Html(note + "</p>" + table(["#", *keys, *(["zero-shot prediction"] if with_zero else [])], rows, cls="preds"))


def _samples(run: Run) -> Html:
    files = sorted((run.root / "samples").glob("*.jsonl")) if (run.root / "samples").is_dir() else []
    if not files:
        return Html("<p class=missing>not recorded (no samples/*.jsonl)</p>")
    if len(files) > MAX_SAMPLE_STEPS:  # evenly spaced, always the last
        files = [files[round(i * (len(files) - 1) / (MAX_SAMPLE_STEPS - 1))] for i in range(MAX_SAMPLE_STEPS)]
    steps = [(f.stem, (read_jsonl_file(f) or [])[:MAX_SAMPLE_ROWS]) for f in files]
    count = max(len(records) for _, records in steps)
    first = next((records for _, records in steps if records), [])
    rows = []
    for i in range(count):
        ref = first[i].get("reference") if i < len(first) else None
        words = i < len(first) and isinstance(first[i].get("tokens"), list)
        cells: list[Any] = [i + 1, text_cell(ref, words=words)]
        for _, records in steps:
            record = records[i] if i < len(records) else {}
            cells.append(text_cell(record.get("prediction", record if record else None), words=words))
        rows.append(cells)
    names = [f"step {int(stem[5:])}" if re.fullmatch(r"step-\d+", stem) else stem for stem, _ in steps]
    return table(["#", "reference", *names], rows, cls="preds")


LENGTH_STATS = ("count", "min", "mean", "p50", "p90", "p99", "max")


def _flatten(values: dict[str, Any]) -> dict[str, Any]:
    """Statistics as label -> value; nested dicts (e.g. examples dropped, by reason) become "key: sub" rows."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update({f"{key}: {k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def _data(run: Run) -> Html:
    if not isinstance(run.data_stats, dict):
        return run.missing("data_stats.json")
    entries = {name: v for name, v in run.data_stats.items() if isinstance(v, dict)}
    splits = {name: v for name, v in entries.items() if "rows" in v or "lengths" in v or "source" in v}
    flat = {name: _flatten({k: v for k, v in values.items() if k not in ("lengths", "labels")}) for name, values in splits.items()}
    keys = list(dict.fromkeys(k for values in flat.values() for k in values))
    parts = [table(["", *splits], [[k, *[flat[s].get(k) for s in splits]] for k in keys])]
    lengths = [[f"{split} {kind}", *[stats.get(s) for s in LENGTH_STATS]]
               for split, values in splits.items() if isinstance(values.get("lengths"), dict)
               for kind, stats in values["lengths"].items() if isinstance(stats, dict)]
    if lengths:
        parts.append(Html("<h3>Token lengths</h3>") + table(["", *LENGTH_STATS], lengths))
    labelled = {s: v["labels"] for s, v in splits.items() if isinstance(v.get("labels"), dict)}
    if labelled:
        labels = list(dict.fromkeys(label for counts in labelled.values() for label in counts))
        rows = [[label, *[_share(counts, label) for counts in labelled.values()]] for label in labels]
        parts.append(Html("<h3>Label distribution</h3>") + table(["label", *labelled], rows))
    for name, values in entries.items():
        if name not in splits:
            parts.append(Html(f"<h3>{esc(name)}</h3>") + table([], [[k, v] for k, v in _flatten(values).items()]))
    return Html("".join(parts))


def _share(counts: dict[str, Any], label: str) -> str:
    total = sum(number(v) or 0 for v in counts.values())
    value = number(counts.get(label))
    return "–" if value is None else f"{fmt(counts[label])} ({100 * value / total:.1f}%)" if total else fmt(counts[label])


def _model(run: Run) -> Html:
    if not isinstance(run.model_summary, dict):
        return run.missing("model_summary.json")
    rows = []
    for key, value in run.model_summary.items():
        size = number(value) if key.endswith("bytes") else None
        rows.append([key, f"{size / 1e6:,.1f} MB ({int(size):,} bytes)" if size is not None else
                     f"{int(value):,}" if "parameters" in key and number(value) is not None else value])
    return table([], rows)


def _config(run: Run) -> Html:
    if not run.config:
        return run.missing("config.yaml")
    items = list(run.config.items())
    half = (len(items) + 1) // 2
    rows = [[*items[i], *(items[i + half] if i + half < len(items) else ("", ""))] for i in range(half)]
    return table(["option", "value", "option", "value"], rows)


def _environment(run: Run) -> Html:
    if not isinstance(run.environment, dict):
        return run.missing("environment.json")
    rows = []
    for key, value in run.environment.items():
        if isinstance(value, dict):
            rows += [[f"{key}: {k}", v] for k, v in value.items()]
        elif key == "command" and isinstance(value, list):
            rows.append([key, shlex.join(str(v) for v in value)])
        elif key == "gpus" and not value:
            rows.append([key, "none"])
        else:
            rows.append([key, value])
    return table([], rows)
