"""The ``texttune`` argument parser: subcommands, and flags generated from the config dataclasses.

``texttune train TASK`` gets one subparser per registered task with only the options that
task takes; evaluate and predict take every task's column and request options, checked
against the model's task once it is known (cli/main.py).
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from texttune._version import __version__
from texttune.cli.options import add_columns, add_fields, add_section
from texttune.demo import DEMO_OPTIONS
from texttune.inference.exports import FORMATS
from texttune.inference.options import InferenceConfig
from texttune.tasks import TASKS
from texttune.tasks.registry import all_request_options, generation_fields, request_option_help

GENERATION = "generation"
INFERENCE = "inference"
#: The data options of ``texttune train`` (evaluate and predict have their own).
TRAIN_DATA_OPTIONS = {"train_file", "validation_file", "test_file", "validation_fraction", "max_train_samples", "max_eval_samples",
                      "streaming", "shuffle_buffer", "data_checks", "dedupe", "near_duplicate_threshold",
                      "leak_warning_rate"}
#: The options of ``texttune inspect``.
INSPECT_OPTIONS = {"near_duplicate_threshold", "leak_warning_rate"}
#: Options of evaluate/predict that choose the backend, device and dtype rather than how to generate.
INFERENCE_OPTIONS = {f.name for f in fields(InferenceConfig)}


def _all_roles() -> list[tuple[str, str, tuple[str, ...]]]:
    """Column flags of every task, for evaluate/predict (the task is known only once a model is loaded)."""
    seen: dict[str, tuple[list[str], tuple[str, ...]]] = {}
    for name, cls in TASKS.items():
        for role in cls().roles:
            seen.setdefault(role.role, ([], role.defaults))[0].append(name)
    return [(role, f"model's {role!r} input or target (tasks: {', '.join(tasks)})", defaults)
            for role, (tasks, defaults) in seen.items()]


def _add_request_options(parser: argparse.ArgumentParser) -> None:
    """predict's per-request options: every task's, each refused (before loading) by a model whose task lacks it."""
    found = all_request_options()
    helps = {option: request_option_help(by_task) for option, by_task in found.items()}
    add_fields(parser.add_argument_group("per-request options (the model's task says which apply)"),
               [next(iter(by_task.values())) for by_task in found.values()], help_of=helps)


def _add_train(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """``texttune train TASK``: one subcommand per registered task, with only the options that task takes."""
    train = sub.add_parser("train", help="Fine-tune a backbone for a task.", description="Fine-tune a backbone for a task.")
    tasks = train.add_subparsers(dest="task", metavar="TASK", required=True)
    for name, cls in TASKS.items():
        p = tasks.add_parser(name, parents=[common], help=cls.description, description=f"Fine-tune for {name}: {cls.description}.")
        p.add_argument("--config", dest="_config", metavar="YAML", help="Read options from a YAML file (keys are option names); flags "
                                                                        "override it.")
        add_columns(p, [(r.role, r.help, r.defaults) for r in cls().roles])
        add_section(p, "data", only=TRAIN_DATA_OPTIONS)
        add_section(p, "task", cls=cls.options, title=f"{name} options")
        for section in ("model", "train", "peft"):
            add_section(p, section, defaults=getattr(cls, "train_defaults", None),
                        lora_defaults=getattr(cls, "lora_train_defaults", None))
        add_section(p, GENERATION, only=set(generation_fields(cls)),
                    title=None if cls.generates else "evaluation")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="texttune", description="Fine-tune, evaluate, run and serve transformer models for text tasks, "
                                                                  "offline.")
    parser.add_argument("--version", action="version", version=f"texttune {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="Only print results and errors.")
    # -q also after the subcommand; SUPPRESS keeps the subparser from resetting a -q given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="Only print results and errors.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(sub, common)

    ev = sub.add_parser("evaluate", parents=[common], help="Score a trained model on a labelled data file.")
    ev.add_argument("model_dir", metavar="RUN_OR_MODEL_DIR", help="A texttune run directory or its model/ directory.")
    ev.add_argument("--metrics-file", help="Write the metrics here as flat JSON (metric name -> number).")
    ev.add_argument("--predictions-file", help="Write per-row predictions here as JSONL.")
    ev.add_argument("--json", action="store_true", help="Print the metrics as flat JSON (metric name -> number) instead of "
                                                        "the table of values and 95 percent bootstrap intervals.")
    add_section(ev, "train", only={"bootstrap", "seed"}, title="intervals")
    add_section(ev, "data", only={"data_file", "max_eval_samples"})
    add_columns(ev, _all_roles())
    add_section(ev, GENERATION, title="generation (generation tasks) and evaluation batch size")
    add_section(ev, INFERENCE)

    pr = sub.add_parser("predict", parents=[common], help="Run a trained model on inputs (file or stdin).")
    pr.add_argument("model_dir", metavar="RUN_OR_MODEL_DIR", help="A texttune run directory or its model/ directory.")
    pr.add_argument("--input-file", help="Inputs: CSV, TSV, JSON, JSONL, Parquet. Default: stdin (JSONL records or one text per line).")
    pr.add_argument("--output-file", help="Where to write predictions: .jsonl or .csv. Default: stdout (JSONL).")
    add_section(pr, "data", only={"max_predict_samples"})
    add_columns(pr, _all_roles())
    _add_request_options(pr)
    add_section(pr, GENERATION, only={"generation_batch_size"}, title="batching")
    add_section(pr, INFERENCE)

    _add_export(sub, common)
    _add_push(sub, common)
    _add_inspect(sub, common)

    sv = sub.add_parser("serve", parents=[common], help="Serve a trained model over HTTP (API, playground, metrics).",
                        description="Serve a model saved by texttune over HTTP: POST /v1/predict, GET /v1/model, the OpenAI-compatible "
                                    "POST /v1/chat/completions, /v1/completions and GET /v1/models, /health, /ready, "
                                    "/metrics (Prometheus), /docs (OpenAPI) and a browser playground at /.")
    sv.add_argument("model_dir", metavar="RUN_OR_MODEL_DIR", help="A texttune run directory or its model/ directory.")
    sv.add_argument("--adapter", action="append", dest="adapters", metavar="NAME=RUN_DIR", default=argparse.SUPPRESS,
                    help="LoRA adapters saved apart (--no-merge-adapters) for the same task and backbone, served over the "
                         "model as NAME (the 'model' of /v1/chat/completions and /v1/completions); repeat for several.")
    add_section(sv, "serve")

    sub.add_parser("tasks", help="List the tasks, their columns, metrics and default backbones.")

    rp = sub.add_parser("report", parents=[common], help="Write a run's HTML report (config, data, metrics, plots, predictions).",
                        description="Write one self-contained HTML file describing a run: config, environment, data statistics, "
                                    "metrics (baselines, zero-shot, fine-tuned), plots and sample predictions.")
    rp.add_argument("run_dir", metavar="RUN_DIR", help="A texttune run directory (finished, failed or still running).")
    rp.add_argument("--output", metavar="FILE", help="Where to write the HTML (default: RUN_DIR/report.html).")

    runs = sub.add_parser(
        "runs", parents=[common], help="List the runs under a directory, or compare runs (texttune runs compare A B).",
        usage="%(prog)s [DIR] [--depth N] [--json]\n       %(prog)s compare RUN RUN [RUN ...] [--json]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="texttune runs [DIR]\n  List the run directories under DIR (default: the current directory): task, backbone,\n"
                    "  data, status, steps, main metric (zero-shot -> fine-tuned), duration, start time.\n"
                    "texttune runs compare RUN RUN [RUN ...]\n  The config options that differ between the runs, their metrics side by "
                    "side\n"
                    "  (best marked) and each run's status, steps and duration; for two runs evaluated on the same rows\n"
                    "  (checked by a hash of the rows), a paired bootstrap test of each metric (docs/evaluation.md).\n"
                    "A first word 'compare' always means the comparison: list a directory named compare\n"
                    "as ./compare.")
    runs.add_argument("words", nargs="*", metavar="DIR | compare RUN "
                                                  "RUN", help="A directory to search, or 'compare' and two or more run directories.")
    runs.add_argument("--depth", type=int, default=3, help="How many directory levels below DIR to search (default: 3).")
    runs.add_argument("--json", action="store_true", help="Print JSON instead of a table (for scripts).")
    runs.add_argument("--unpaired", action="store_true", help="compare: skip the paired bootstrap test of two runs (and its "
                                                              "check that both were evaluated on the same rows).")

    demo = sub.add_parser("demo", parents=[common], help="Fine-tune the default offline backbone on bundled Debian summaries (~5 min on 2 "
                                                         "CPU cores).")
    demo.add_argument("--output-dir", default="runs/demo", help="Run directory (default: runs/demo; replaced if it is a previous demo "
                                                                "run).")
    demo.add_argument("--backbone", default=None, help="Backbone to use instead of the summarization default.")
    demo.add_argument("--max-steps", type=int, default=None, help=f"Training steps (default: {DEMO_OPTIONS['max_steps']}).")
    return parser


def _add_export(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """``texttune export``: format and quantization are checked by the library (one-line errors, exit 2)."""
    formats = "; ".join(f"{name}: {fmt.purpose}" for name, fmt in FORMATS.items())
    ex = sub.add_parser("export", parents=[common], help="Convert a trained model for another runtime (" + ", ".join(FORMATS) + ").",
                        description="Convert a texttune model for another runtime, written atomically (an interrupted "
                                    "export leaves nothing). Formats: " + formats + ". See docs/inference.md.")
    ex.add_argument("model_dir", metavar="RUN_OR_MODEL_DIR", help="A texttune run directory or its model/ directory.")
    ex.add_argument("--format", required=True, metavar="FORMAT", help="Target format: " + ", ".join(FORMATS) + ".")
    ex.add_argument("--quantization", default=None, metavar="TYPE",
                    help="Weight type; each format has its own choices and default: " + "; ".join(
                        f"{name}: {', '.join(fmt.module.QUANTIZATIONS)} (default {fmt.module.DEFAULT_QUANTIZATION})"
                        for name, fmt in FORMATS.items()) + ".")
    ex.add_argument("--output", required=True, metavar="DIR", help="Directory to write (a new one, or an earlier export to replace).")


def _add_push(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """``texttune push RUN_OR_MODEL_DIR OWNER/NAME``: publish through huggingface_hub (runs/publish.py)."""
    ps = sub.add_parser("push", parents=[common], help="Publish a trained model (and its card) to the Hugging Face hub.",
                        description="Upload a texttune model directory to a hub repository: weights, tokenizer, "
                                    "texttune.json and its model card (refreshed from the run), optionally the run's "
                                    "HTML report. Uses your huggingface_hub login (huggingface-cli login or HF_TOKEN).")
    ps.add_argument("model_dir", metavar="RUN_OR_MODEL_DIR", help="A texttune run directory or its model/ directory.")
    ps.add_argument("repo_id", metavar="OWNER/NAME", help="The hub repository (created if missing).")
    ps.add_argument("--private", action="store_true", help="Create the repository private.")
    ps.add_argument("--revision", metavar="BRANCH", help="Push to this branch (created if missing) instead of main.")
    ps.add_argument("--with-report", action="store_true", dest="report", help="Also upload the run's report.html.")
    ps.add_argument("--dry-run", action="store_true", help="List what would be uploaded, and the card; send nothing.")
    ps.add_argument("--json", action="store_true", help="Print the upload as JSON (files, card, URL).")


def _add_inspect(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """``texttune inspect DATA [DATA ...] --task NAME``: the data checks on their own (docs/data-checks.md)."""
    ins = sub.add_parser("inspect", parents=[common], help="Check data files: duplicates, leaks, near-duplicates, "
                                                           "conflicts, empty cells, lengths, the task's own checks.",
                         description="Run the data checks a training run runs, on files of your own. The first file is "
                                     "the reference (training data): rows of the others whose input occurs in it are "
                                     "leaks. Prints a summary; --output writes the JSON report (data_report.json).")
    ins.add_argument("files", nargs="+", metavar="DATA", help="Data files (CSV, TSV, JSON, JSONL, Parquet...), training data first.")
    ins.add_argument("--task", required=True, metavar="TASK", help=f"The task whose columns to check: {', '.join(TASKS)}.")
    ins.add_argument("--output", metavar="FILE", help="Write the full report here as JSON.")
    add_columns(ins, _all_roles())
    add_section(ins, "data", only=INSPECT_OPTIONS)
