"""``texttune`` command line: parse arguments, call the library, print results.

Every user error (:class:`texttune.errors.TexttuneError`) is printed as one line
on stderr with exit status 2; no traceback. The logic lives in the library.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from texttune._version import __version__
from texttune.cli import io as cli_io
from texttune.cli.options import add_columns, add_section, given
from texttune.demo import DEMO_OPTIONS
from texttune.errors import TexttuneError

GENERATION = "generation"
INFERENCE = "inference"
#: The data options of ``texttune train`` (evaluate and predict have their own).
TRAIN_DATA_OPTIONS = {"train_file", "validation_file", "validation_fraction", "max_train_samples", "max_eval_samples",
                      "streaming", "shuffle_buffer"}
#: Options of evaluate/predict that choose the backend rather than how to generate.
INFERENCE_OPTIONS = {"backend", "compute_type", "threads"}


def _all_roles() -> list[tuple[str, str, tuple[str, ...]]]:
    """Column flags of every task, for evaluate/predict (the task is known only once a model is loaded)."""
    from texttune.tasks import TASKS

    seen: dict[str, tuple[list[str], tuple[str, ...]]] = {}
    for name, cls in TASKS.items():
        for role in cls().roles:
            seen.setdefault(role.role, ([], role.defaults))[0].append(name)
    return [(role, f"model's {role!r} input or target (tasks: {', '.join(tasks)})", defaults)
            for role, (tasks, defaults) in seen.items()]


def _add_request_options(parser: argparse.ArgumentParser) -> None:
    """predict's per-request options: every task's, each refused (before loading) by a model whose task lacks it."""
    from texttune.cli.options import add_fields
    from texttune.tasks.registry import all_request_options, request_option_help

    found = all_request_options()
    helps = {option: request_option_help(by_task) for option, by_task in found.items()}
    add_fields(parser.add_argument_group("per-request options (the model's task says which apply)"),
               [next(iter(by_task.values())) for by_task in found.values()], help_of=helps)


def _add_train(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """``texttune train TASK``: one subcommand per registered task, with only the options that task takes."""
    from texttune.tasks import TASKS
    from texttune.tasks.registry import generation_fields

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
            add_section(p, section)
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

    sv = sub.add_parser("serve", parents=[common], help="Serve a trained model over HTTP (API, playground, metrics).",
                        description="Serve a model saved by texttune over HTTP: POST /v1/predict, GET /v1/model, /health, /ready, "
                                    "/metrics (Prometheus), /docs (OpenAPI) and a browser playground at /.")
    sv.add_argument("model_dir", metavar="RUN_OR_MODEL_DIR", help="A texttune run directory or its model/ directory.")
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
                    "  (best marked) and each run's status, steps and duration.\n"
                    "A first word 'compare' always means the comparison: list a directory named compare\n"
                    "as ./compare.")
    runs.add_argument("words", nargs="*", metavar="DIR | compare RUN "
                                                  "RUN", help="A directory to search, or 'compare' and two or more run directories.")
    runs.add_argument("--depth", type=int, default=3, help="How many directory levels below DIR to search (default: 3).")
    runs.add_argument("--json", action="store_true", help="Print JSON instead of a table (for scripts).")

    demo = sub.add_parser("demo", parents=[common], help="Fine-tune the default offline backbone on bundled Debian summaries (~5 min on 2 "
                                                         "CPU cores).")
    demo.add_argument("--output-dir", default="runs/demo", help="Run directory (default: runs/demo; replaced if it is a previous demo "
                                                                "run).")
    demo.add_argument("--backbone", default=None, help="Backbone to use instead of the summarization default.")
    demo.add_argument("--max-steps", type=int, default=None, help=f"Training steps (default: {DEMO_OPTIONS['max_steps']}).")
    return parser


def _add_export(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """``texttune export``: format and quantization are checked by the library (one-line errors, exit 2)."""
    ex = sub.add_parser("export", parents=[common], help="Convert a trained model for a faster inference engine (CTranslate2).",
                        description="Convert a texttune model to CTranslate2 (int8/float32 on CPU, float16 on GPU): the "
                                    "converted model, its tokenizer and texttune.json, written atomically. evaluate, predict "
                                    "and serve use an export directly. See docs/inference.md.")
    ex.add_argument("model_dir", metavar="RUN_OR_MODEL_DIR", help="A texttune run directory or its model/ directory.")
    ex.add_argument("--format", required=True, metavar="FORMAT", help="Target format: ctranslate2.")
    ex.add_argument("--quantization", default="int8", metavar="TYPE",
                    help="Weight type: int8 (default), int8_float32, int8_float16, int8_bfloat16, int16, float32, float16, bfloat16.")
    ex.add_argument("--output", required=True, metavar="DIR", help="Directory to write (a new one, or an earlier export to replace).")


def _configure_logging(quiet: bool, *, training: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("texttune: %(message)s"))
    logger = logging.getLogger("texttune")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    uvicorn = logging.getLogger("uvicorn")  # the server's own messages (startup errors; access log when asked for)
    uvicorn.handlers[:] = [handler]
    uvicorn.setLevel(logging.WARNING if quiet else logging.INFO)
    uvicorn.propagate = False
    if training:
        import warnings

        # Lightning resets "lightning.pytorch" to INFO on import, but not its children: its
        # "GPU available" banners and tips come through these two.
        for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
            logging.getLogger(name).setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # a Lightning-internal deprecation
        warnings.filterwarnings("ignore", message=".*log_every_n_steps.*")  # short runs log less often; fine
    try:
        import datasets
        import transformers

        datasets.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def cmd_train(args: argparse.Namespace) -> int:
    from texttune.api import api_class
    from texttune.config_yaml import read_yaml
    from texttune.runs.summary import comparison_table

    options = read_yaml(args._config) if args._config else {}
    options.update(given(args, exclude={"command", "task", "quiet"}))
    model = api_class(args.task).from_options(options)
    # The data files come from the options (with --resume, from the run's own config.yaml).
    result = model.fit(output_dir=model.config.train.output_dir)
    print(comparison_table(result.metrics))
    print(f"\nrun directory: {result.run_dir}\nmodel: {result.model_dir}")
    return 0


def _load(args: argparse.Namespace) -> object:
    """The model of ``args.model_dir`` on the backend the flags ask for (checked before anything loads)."""
    from texttune.api import load

    return load(args.model_dir, backend=getattr(args, "backend", None), compute_type=getattr(args, "compute_type", None),
                threads=getattr(args, "threads", None))


def _model_task(args: argparse.Namespace) -> Any:
    """The task (default options) of the model ``args.model_dir``, from its texttune.json: options are checked
    against it before the model loads, so a typo costs no loading time."""
    from texttune.api import saved_task

    return saved_task(args.model_dir)


def _split(opts: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """(columns by role, the other options) of evaluate/predict's flags."""
    columns = {k[: -len("_column")]: v for k, v in opts.items() if k.endswith("_column")}
    rest = {k: v for k, v in opts.items() if not k.endswith("_column") and k not in INFERENCE_OPTIONS}
    return columns, rest


def cmd_evaluate(args: argparse.Namespace) -> int:
    from texttune.config import generation_from_mapping
    from texttune.data import load_table
    from texttune.errors import ConfigError
    from texttune.runs.files import write_json
    from texttune.tasks.registry import generation_fields

    opts = given(args, exclude={"command", "quiet", "model_dir", "metrics_file", "predictions_file", "data_file", "max_eval_samples"})
    if not getattr(args, "data_file", None):
        raise ConfigError("pass --data-file with the data to evaluate on")
    columns, generation = _split(opts)
    task = _model_task(args)
    taken = generation_fields(type(task))
    for option in generation:
        if option not in taken:
            raise ConfigError(f"option {option!r} does not apply to task {task.name!r} (it does not generate); "
                              f"valid: {', '.join(taken)}")
    generation_from_mapping(generation)
    limit = _limit(args, "max_eval_samples")
    data = load_table(args.data_file, split="validation")
    model = _load(args)
    metrics = model.evaluate(data, columns=columns or None, max_samples=limit,
                             predictions_file=args.predictions_file, generation=generation)
    if args.metrics_file:
        write_json(args.metrics_file, metrics)
    print(json.dumps(metrics, indent=2))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from texttune.config import generation_from_mapping
    from texttune.tasks.registry import split_request_options

    opts = given(args, exclude={"command", "quiet", "model_dir", "input_file", "output_file", "max_predict_samples"})
    columns, options = _split(opts)
    batch_size = options.pop("generation_batch_size", None)
    generation, own = split_request_options(_model_task(args), options)  # refuses another task's option by name
    generation_from_mapping({**generation, **({"generation_batch_size": batch_size} if batch_size is not None else {})})
    raw = cli_io.read_raw_inputs(args.input_file, limit=_limit(args, "max_predict_samples"))
    model = _load(args)
    records = cli_io.read_inputs(model, raw, from_stdin=not args.input_file, columns=columns)
    outputs = model.predict([r["row"] for r in records], batch_size=batch_size, **generation, **own)
    cli_io.write_outputs(args.output_file, records, outputs)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from texttune.api import load
    from texttune.config import serve_config
    from texttune.serving import serve

    config = serve_config(given(args, exclude={"command", "quiet", "model_dir"}))
    return serve(args.model_dir, config=config, load_model=load)


def cmd_export(args: argparse.Namespace) -> int:
    from texttune.errors import ConfigError
    from texttune.inference.ct2_export import export

    if args.format != "ctranslate2":
        raise ConfigError(f"--format {args.format!r} is not supported; valid choices: 'ctranslate2'")
    print(export(args.model_dir, output=args.output, quantization=args.quantization))
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from texttune.tasks import TASKS
    from texttune.tasks.registry import own_option_names

    for name, cls in TASKS.items():
        cols = ", ".join(f"--{r.role}-column ({'/'.join(r.defaults[:3])})" for r in cls().roles)
        own = ", ".join(f"--{o.replace('_', '-')}" for o in own_option_names(cls)) or "none"
        print(f"{name}\n  {cls.description}\n  Python: texttune.{cls.api_name}\n  columns: {cols}\n  options: {own}\n"
              f"  metrics: {', '.join(cls.metric_names)}\n  default backbone: {cls.default_backbone}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from texttune.runs.report import write_report

    print(write_report(Path(args.run_dir), output=Path(args.output) if args.output else None))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from texttune.errors import ConfigError
    from texttune.runs.catalog import find_runs, format_runs, runs_json
    from texttune.runs.compare import compare_runs, format_comparison

    if args.words[:1] == ["compare"]:
        comparison = compare_runs([Path(w) for w in args.words[1:]])
        print(json.dumps(comparison.to_dict(), indent=2, default=str) if args.json else format_comparison(comparison))
        return 0
    if len(args.words) > 1:
        raise ConfigError(f"runs takes one directory, got {len(args.words)}: {' '.join(args.words)} "
                          "(to compare runs: texttune runs compare RUN RUN ...)")
    if args.depth < 0:
        raise ConfigError(f"--depth must be 0 or more, got {args.depth}")
    root = Path(args.words[0] if args.words else ".")
    found = find_runs(root, depth=args.depth)
    print(json.dumps(runs_json(found), indent=2, default=str) if args.json else format_runs(found, root=root))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from texttune.cli.demo import run_demo

    return run_demo(output_dir=Path(args.output_dir), backbone=args.backbone, max_steps=args.max_steps)


def _limit(args: argparse.Namespace, name: str) -> int | None:
    """A ``--max-*-samples`` flag as a positive int (None when not given), checked like every option."""
    from texttune.config_checks import check_limit
    from texttune.config_fields import coerce

    value = getattr(args, name, None)
    return None if value is None else check_limit(name, coerce(name, value, int | None, None))


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "serve": cmd_serve, "export": cmd_export,
            "tasks": cmd_tasks,
            "report": cmd_report,
            "runs": cmd_runs,
            "demo": cmd_demo}


def _foreign_flag(args: argparse.Namespace, unknown: list[str]) -> str | None:
    """The one-line refusal of a flag that belongs to another task than ``texttune train TASK``'s, or None."""
    from texttune.config_fields import not_an_option
    from texttune.tasks.registry import option_owners

    if getattr(args, "command", None) != "train":
        return None
    owners = option_owners()
    for word in unknown:
        if not word.startswith("--"):
            continue
        name = word[2:].split("=", 1)[0].replace("-", "_")
        name = name if name in owners or not name.startswith("no_") else name[3:]
        if args.task not in owners.get(name, (args.task,)):
            return not_an_option(word.split("=", 1)[0], args.task, valid=[], owners=owners[name])
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        foreign = _foreign_flag(args, unknown)
        if foreign is not None:
            print(f"texttune: error: {foreign}", file=sys.stderr)
            return 2
        parser.parse_args(argv)  # argparse's own message for any other unknown argument (exit 2)
    _configure_logging(args.quiet, training=args.command in {"train", "demo"})
    try:
        return COMMANDS[args.command](args)
    except TexttuneError as exc:
        print(f"texttune: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("texttune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
