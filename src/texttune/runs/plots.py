"""PNG plots of a run, drawn from the run directory's files alone.

Why from the files: the same code then works on a finished run, a crashed one,
one still training, or a run written by an older texttune, without the engine.
Every input may be missing or cut short (a crash mid-write): a plot whose data
is absent is skipped (logged at debug level), never an error.

Plots are drawn on a :class:`matplotlib.figure.Figure` with an explicit Agg
canvas: nothing needs a display and the process-wide pyplot backend (a
notebook's, say) is left untouched. matplotlib is imported only when plotting.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

from texttune.extras import missing
from texttune.files import atomic_file, read_jsonl_records
from texttune.metrics.registry import higher_is_better
from texttune.runs.classes import ConfusionView, class_records, confusion_view, row_normalised
from texttune.runs.lr_find_plot import LR_FIND_PLOT, LR_FIND_SOURCE, caption, draw_lr_find

logger = logging.getLogger(__name__)

#: Small figures keep the HTML report (which embeds them) light: ~20-40 kB each.
FIGSIZE = (6.4, 3.6)
DPI = 100

PLOT_NAMES = ("loss.png", "lr.png", "metric.png", "lengths.png")
#: Drawn only for single-label classification runs (see runs/classes.py), after PLOT_NAMES.
CONFUSION_PLOT = "confusion.png"


# --------------------------------------------------------------------------- tolerant readers


def read_json_file(path: Path) -> Any:
    """The parsed JSON in ``path``, or None when it is missing or unreadable (logged at debug)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.debug("cannot read %s: %s", path, exc)
        return None


def read_jsonl_file(path: Path) -> list[dict[str, Any]] | None:
    """The JSON objects in ``path`` (cut-off lines skipped); None when missing or unreadable."""
    records = read_jsonl_records(path)
    if records is None and path.exists():
        logger.debug("cannot read %s", path)
    return records


def read_metrics_csv(path: Path) -> list[dict[str, float]] | None:
    """Lightning's CSV log as rows of the numeric values each row has (rows are sparse).

    None when the file is missing or unreadable.
    """
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, csv.Error) as exc:
        logger.debug("cannot read %s: %s", path, exc)
        return None
    parsed = []
    for row in rows:
        values = {key: number(value) for key, value in row.items() if key}
        parsed.append({key: value for key, value in values.items() if value is not None})
    return parsed


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None (empty CSV cells, text, NaN, booleans)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def main_metric(run_dir: Path) -> tuple[str | None, bool | None]:
    """The run's main metric and whether higher is better, from status.json (``(None, None)`` when not known)."""
    status = read_json_file(run_dir / "status.json")
    metric = recorded_main_metric(run_task(run_dir), status if isinstance(status, dict) else {})
    return (metric, higher_is_better(metric)) if metric else (None, None)


#: The main metric of runs written before status.json recorded it (texttune 0.1.0 up to 2026-12-04). A
#: frozen record of history: new tasks always record theirs, so this never grows.
_EARLIER_MAIN_METRICS = {"summarization": "rougeL", "translation": "bleu", "text2text": "rougeL", "masked-lm": "perplexity",
                         "causal-lm": "perplexity", "question-answering": "f1", "token-classification": "f1"}


def recorded_main_metric(task: Any, status: dict[str, Any]) -> str | None:
    """status.json's ``main_metric``; for a run that predates it, its task's main metric then."""
    metric = status.get("main_metric")
    if isinstance(metric, str):
        return metric
    return _EARLIER_MAIN_METRICS.get(task) if isinstance(task, str) else None


def run_task(run_dir: Path) -> str | None:
    """The run's task name: status.json first, then config.yaml."""
    status = read_json_file(run_dir / "status.json")
    if isinstance(status, dict) and isinstance(status.get("task"), str):
        return status["task"]
    config = read_config(run_dir)
    return config.get("task") if isinstance(config.get("task"), str) else None


def read_config(run_dir: Path) -> dict[str, Any]:
    """config.yaml as a dict ({} when missing or unreadable)."""
    import yaml

    try:
        data = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, yaml.YAMLError) as exc:
        logger.debug("cannot read %s: %s", run_dir / "config.yaml", exc)
        return {}
    return data if isinstance(data, dict) else {}


def align_steps(rows: list[dict[str, float]], evals: list[dict[str, Any]]) -> list[dict[str, float]]:
    """The CSV rows with ``step`` counted like evals.jsonl (optimizer steps done).

    Lightning's CSV ``step`` counts from 0 (the row logged after 5 optimizer steps
    says 4), while evals.jsonl records the trainer's global step (5). When the
    validation rows are exactly one behind the recorded evaluations, every row is
    moved by one so all plots share one step axis; otherwise rows are kept as logged.
    """
    logged = sorted({row["step"] for row in rows if "step" in row and any(k.startswith("val_") for k in row)})
    recorded = sorted({s for s in (number(e.get("step")) for e in evals) if s is not None})
    n = min(len(logged), len(recorded))
    if n and all(a + 1 == b for a, b in zip(logged[:n], recorded[:n])):
        return [{**row, "step": row["step"] + 1} if "step" in row else row for row in rows]
    return rows


def series(rows: list[dict[str, float]], column: str) -> tuple[list[float], list[float]]:
    """(steps, values) of the rows that have ``column`` (and a step)."""
    points = [(row["step"], row[column]) for row in rows if column in row and "step" in row]
    return [p[0] for p in points], [p[1] for p in points]


# --------------------------------------------------------------------------- plots


def write_plots(run_dir: Path) -> list[Path]:
    """Write ``RUN_DIR/plots/{loss,lr,metric,lengths}.png`` from the run's files; return the files written.

    A single-label classification run also gets ``confusion.png``, a ``--learning-rate auto`` run
    ``lr_find.png`` (runs/lr_find_plot.py). A plot whose data is
    missing is skipped. Each PNG is replaced atomically.
    """
    run_dir = Path(run_dir)
    if missing("plots"):
        logger.warning("no plots: matplotlib is not installed (pip install 'texttune[plots]')")
        return []
    rows = read_metrics_csv(run_dir / "logs" / "metrics.csv")
    if rows is None:
        logger.debug("no logs/metrics.csv in %s: no loss or learning-rate plot", run_dir)
        rows = []
    rows = align_steps(rows, read_jsonl_file(run_dir / "evals.jsonl") or [])
    written = []
    for name, draw in (("loss.png", lambda fig: _draw_loss(fig, rows)),
                       ("lr.png", lambda fig: _draw_lr(fig, rows)),
                       ("metric.png", lambda fig: _draw_metric(fig, run_dir)),
                       ("lengths.png", lambda fig: _draw_lengths(fig, run_dir))):
        path = _render(run_dir / "plots" / name, draw)
        if path is not None:
            written.append(path)
    view = run_confusion(run_dir)
    if view is not None:
        path = _render(run_dir / "plots" / CONFUSION_PLOT, lambda fig: _draw_confusion(fig, view),
                       figsize=confusion_figsize(view), title=view.title)
        written += [path] if path is not None else []
    lr_find = read_json_file(run_dir / LR_FIND_SOURCE)  # --learning-rate auto's range test
    if lr_find is not None:
        path = _render(run_dir / "plots" / LR_FIND_PLOT, lambda fig: draw_lr_find(fig, lr_find), title=caption(lr_find))
        written += [path] if path is not None else []
    return written


def run_confusion(run_dir: Path) -> ConfusionView | None:
    """What confusion.png shows for this run (None: not a single-label classification run)."""
    return confusion_view(class_records(read_json_file(run_dir / "metrics.json"),
                                        read_jsonl_file(run_dir / "predictions.jsonl")))


def _render(path: Path, draw: Any, *, figsize: tuple[float, float] = FIGSIZE, title: str | None = None) -> Path | None:
    """Draw on a fresh figure; save it to ``path`` atomically if ``draw`` returned True (``title`` in the PNG's metadata)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    if not draw(fig):
        logger.debug("skipped %s: no data", path.name)
        return None
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=DPI, metadata={"Title": title} if title else None)
    return path


def _integer_steps(ax: Any) -> None:
    """Ticks at whole steps only (a 4-step run would otherwise show 1.25, 1.5, ...)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _draw_loss(fig: Any, rows: list[dict[str, float]]) -> bool:
    train = series(rows, "train_loss")
    val = series(rows, "val_loss")
    if not train[0] and not val[0]:
        return False
    ax = fig.add_subplot()
    if train[0]:
        ax.plot(*train, label="training loss", color="tab:blue", linewidth=1.2, marker="." if len(train[0]) < 30 else None)
    if val[0]:
        ax.plot(*val, label="validation loss", color="tab:orange", marker="o", linewidth=1.5)
    ax.set(xlabel="step", ylabel="loss", title="Loss")
    _integer_steps(ax)
    ax.grid(alpha=0.3)
    ax.legend()
    return True


def _draw_lr(fig: Any, rows: list[dict[str, float]]) -> bool:
    columns = sorted({key for row in rows for key in row if key == "lr" or key.startswith("lr-")})
    if not any(series(rows, column)[0] for column in columns):
        return False
    ax = fig.add_subplot()
    for column in columns:
        steps, values = series(rows, column)
        if steps:
            ax.plot(steps, values, label=column, marker="." if len(steps) < 30 else None)
    ax.set(xlabel="step", ylabel="learning rate", title="Learning rate")
    _integer_steps(ax)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.grid(alpha=0.3)
    if len(columns) > 1:
        ax.legend()
    return True


def _draw_metric(fig: Any, run_dir: Path) -> bool:
    name, higher = main_metric(run_dir)
    evals = read_jsonl_file(run_dir / "evals.jsonl") or []
    if name is None and evals:  # unknown task: the first metric the evaluations have
        name = next((k for k in evals[0] if k != "step" and number(evals[0][k]) is not None), None)
    points = [(number(e.get("step")), number(e.get(name))) for e in evals] if name else []
    points = [(s, v) for s, v in points if s is not None and v is not None]
    if not points:
        logger.debug("no evaluations of %s in %s/evals.jsonl", name or "the main metric", run_dir)
        return False
    ax = fig.add_subplot()
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color="tab:green", label="fine-tuning")
    metrics = read_json_file(run_dir / "metrics.json")
    metrics = metrics if isinstance(metrics, dict) else {}
    references = [("zero-shot", metrics["zero_shot"].get(name))] if isinstance(metrics.get("zero_shot"), dict) else []
    baselines = metrics.get("baselines") if isinstance(metrics.get("baselines"), dict) else {}
    references += [(f"baseline {b}", v.get(name)) for b, v in baselines.items() if isinstance(v, dict)]
    styles = ["dotted", "dashed", "dashdot", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1))]
    for (label, value), style in zip([(ref, number(v)) for ref, v in references], styles * 4):
        if value is not None:
            ax.axhline(value, linestyle=style, color="tab:gray" if label != "zero-shot" else "tab:red",
                       linewidth=1.2, label=f"{label} ({value:.4g})")
    direction = {True: "higher is better", False: "lower is better"}.get(higher)  # type: ignore[call-overload]
    ax.set(xlabel="step", ylabel=f"{name} ({direction})" if direction else name, title=f"{name} per evaluation")
    _integer_steps(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return True


def _histograms(stats: Any) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """{"input"/"target": {split: (edges, counts)}} from data_stats.json, valid histograms only."""
    found: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    if not isinstance(stats, dict):
        return found
    for split, values in stats.items():
        lengths = values.get("lengths") if isinstance(values, dict) else None
        for kind, entry in (lengths.items() if isinstance(lengths, dict) else []):
            hist = entry.get("histogram") if isinstance(entry, dict) else None
            edges = [number(x) for x in hist.get("edges", [])] if isinstance(hist, dict) else []
            counts = [number(x) for x in hist.get("counts", [])] if isinstance(hist, dict) else []
            if counts and len(edges) == len(counts) + 1 and None not in edges and None not in counts:
                found.setdefault(str(kind), {})[str(split)] = (edges, counts)  # type: ignore[assignment]
    return found


def _draw_lengths(fig: Any, run_dir: Path) -> bool:
    found = _histograms(read_json_file(run_dir / "data_stats.json"))
    if not found:
        logger.debug("no length histograms in %s/data_stats.json", run_dir)
        return False
    kinds = sorted(found, key=lambda k: (k != "input", k != "target", k))
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    colors = {"train": "tab:blue", "validation": "tab:orange", "test": "tab:green"}
    for ax, kind in zip(axes, kinds):
        for split, (edges, counts) in found[kind].items():
            # Densities: splits of different sizes and bin widths share one scale.
            total = sum(counts) or 1.0
            density = [c / (total * max(hi - lo, 1e-9)) for c, lo, hi in zip(counts, edges, edges[1:])]
            ax.stairs(density, edges, label=f"{split} ({int(total)})", color=colors.get(split), fill=split == "train",
                      alpha=0.35 if split == "train" else 1.0, linewidth=1.5)
        ax.set(xlabel=f"{kind} tokens", ylabel="share of examples per token", title=f"{kind.capitalize()} length")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return True


def _short(label: str, width: int = 22) -> str:
    return label if len(label) <= width else label[:width - 1] + "…"


def confusion_figsize(view: ConfusionView) -> tuple[float, float]:
    """Inches: a square-ish matrix that grows with the classes, or one row per confusion bar."""
    if view.kind == "matrix":
        side = min(9.0, 3.2 + 0.3 * len(view.labels))
        return (side + 1.6, side)
    return (FIGSIZE[0] + 1.6, 1.4 + 0.3 * max(1, len(view.confusions)))


def _draw_confusion(fig: Any, view: ConfusionView) -> bool:
    """The row-normalised matrix (true class per row), or the top confusions as horizontal bars."""
    ax = fig.add_subplot()
    title = view.title.replace(" (", "\n(", 1)
    if view.kind == "matrix":
        n = len(view.labels)
        shares = row_normalised(view.counts)
        image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="equal")
        size = "small" if n <= 12 else "x-small"
        ax.set_xticks(range(n), [_short(label) for label in view.labels], rotation=90, fontsize=size)
        ax.set_yticks(range(n), [f"{_short(label)} ({sum(row)})" for label, row in zip(view.labels, view.counts)],
                      fontsize=size)
        if n <= 12:
            for t, row in enumerate(shares):
                for p, share in enumerate(row):
                    if view.counts[t][p]:
                        ax.text(p, t, f"{share:.2f}", ha="center", va="center", fontsize="x-small",
                                color="white" if share > 0.55 else "black")
        fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class's rows")
        ax.set(xlabel="predicted class", ylabel="true class (rows)")
        ax.set_title(title, fontsize="medium")
        return True
    bars = view.confusions
    if not bars:
        ax.text(0.5, 0.5, "no confusions: every row is predicted right", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        ax.barh(range(len(bars)), [c for _, _, c, _ in bars], color="tab:red", alpha=0.75)
        ax.set_yticks(range(len(bars)), [f"{_short(t)} → {_short(p)}" for t, p, _, _ in bars], fontsize="small")
        ax.invert_yaxis()
        for i, (_, _, count, share) in enumerate(bars):
            ax.text(count, i, f" {count} ({share:.0%})", va="center", fontsize="x-small")
        ax.margins(x=0.15)
        ax.set_xlabel("rows")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize="medium")
    return True
