"""``texttune`` command line: parse arguments, call the library, print results.

Every user error (:class:`texttune.errors.TexttuneError`) is printed as one line
on stderr with exit status 2; no traceback. The logic lives in the library.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from texttune.api import api_class, check_load, inspect_data, load, push, saved_task, scoring_task
from texttune.cli import io as cli_io
from texttune.cli.demo import run_demo
from texttune.cli.options import given
from texttune.cli.parser import INFERENCE_OPTIONS, build_parser
from texttune.config import TrainConfig, generation_from_mapping, serve_config
from texttune.config_checks import check_limit
from texttune.config_fields import coerce, coerce_field, not_an_option
from texttune.config_yaml import read_yaml
from texttune.data import load_table
from texttune.data.checks import summary_lines
from texttune.errors import ConfigError, TexttuneError
from texttune.files import write_json
from texttune.inference.exports import export
from texttune.inference.options import inference_options
from texttune.runs.catalog import find_runs, format_runs, runs_json
from texttune.runs.compare import compare_runs, format_comparison
from texttune.runs.publish import describe, describe_json
from texttune.runs.report import write_report
from texttune.runs.summary import comparison_table, evaluation_table
from texttune.tasks import TASKS
from texttune.tasks.registry import generation_fields, option_owners, own_option_names, split_request_options


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
        warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")  # --resume: expected
    try:
        import datasets
        import transformers

        datasets.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def cmd_train(args: argparse.Namespace) -> int:
    options = read_yaml(args._config) if args._config else {}
    options.update(given(args, exclude={"command", "task", "quiet"}))
    model = api_class(args.task).from_options(options)
    # The data files come from the options (with --resume, from the run's own config.yaml).
    result = model.fit(output_dir=model.config.train.output_dir)
    print(comparison_table(result.metrics))
    print(f"\nrun directory: {result.run_dir}\nmodel: {result.model_dir}")
    return 0


def _load(args: argparse.Namespace) -> object:
    """The model of ``args.model_dir`` on the backend, device and dtype the flags ask for (checked before anything loads)."""
    return load(args.model_dir, **inference_options(args))


def _model_task(args: argparse.Namespace) -> Any:
    """The task (default options) of the model ``args.model_dir``, from its texttune.json: options are checked
    against it before the model loads, so a typo costs no loading time."""
    return saved_task(args.model_dir)


def _split(opts: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """(columns by role, the other options) of evaluate/predict's flags."""
    columns = {k[: -len("_column")]: v for k, v in opts.items() if k.endswith("_column")}
    rest = {k: v for k, v in opts.items() if not k.endswith("_column") and k not in INFERENCE_OPTIONS}
    return columns, rest


def cmd_evaluate(args: argparse.Namespace) -> int:
    opts = given(args, exclude={"command", "quiet", "model_dir", "metrics_file", "predictions_file", "data_file", "max_eval_samples",
                                "json", "bootstrap", "seed"})
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
    check_load(args.model_dir, **inference_options(args))
    limit = _limit(args, "max_eval_samples")
    data = load_table(args.data_file, split="validation")
    model = _load(args)
    resamples = 0 if args.json else _train_option(args, "bootstrap")  # --json: the metrics alone, as before
    found = model.evaluation(data, columns=columns or None, max_samples=limit, predictions_file=args.predictions_file,
                             generation=generation, bootstrap=resamples, seed=_train_option(args, "seed"))
    if args.metrics_file:
        write_json(args.metrics_file, found.metrics)
    print(json.dumps(found.metrics, indent=2) if args.json else
          evaluation_table(found.metrics, found.intervals, rows=found.rows, resamples=found.resamples))
    return 0


def _train_option(args: argparse.Namespace, name: str) -> Any:
    """A TrainConfig option given to another command (evaluate's --bootstrap, --seed), checked, or its default."""
    field = next(f for f in fields(TrainConfig) if f.name == name)
    return coerce_field(name, getattr(args, name, field.default), field)


def cmd_predict(args: argparse.Namespace) -> int:
    opts = given(args, exclude={"command", "quiet", "model_dir", "input_file", "output_file", "max_predict_samples"})
    columns, options = _split(opts)
    batch_size = options.pop("generation_batch_size", None)
    generation, own = split_request_options(_model_task(args), options)  # refuses another task's option by name
    generation_from_mapping({**generation, **({"generation_batch_size": batch_size} if batch_size is not None else {})})
    check_load(args.model_dir, **inference_options(args))  # a missing GPU fails before stdin is read
    raw = cli_io.read_raw_inputs(args.input_file, limit=_limit(args, "max_predict_samples"))
    model = _load(args)
    records = cli_io.read_inputs(model, raw, from_stdin=not args.input_file, columns=columns)
    outputs = model.predict([r["row"] for r in records], batch_size=batch_size, **generation, **own)
    cli_io.write_outputs(args.output_file, records, outputs)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from texttune.serving import serve

    config = serve_config(given(args, exclude={"command", "quiet", "model_dir", "adapters"}))
    return serve(args.model_dir, config=config, load_model=load, adapters=getattr(args, "adapters", None))


def cmd_export(args: argparse.Namespace) -> int:
    print(export(args.model_dir, output=args.output, format=args.format, quantization=args.quantization))
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    upload = push(args.model_dir, args.repo_id, private=args.private, revision=args.revision, report=args.report,
                  dry_run=args.dry_run)
    print(json.dumps(describe_json(upload), indent=2) if args.json else describe(upload))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    opts = given(args, exclude={"command", "quiet", "files", "task", "output"})
    columns, options = _split(opts)
    if args.task not in TASKS:
        raise ConfigError(f"unknown task {args.task!r}; valid: {', '.join(TASKS)}")
    report = inspect_data(args.files, task=args.task, columns=columns or None, options=options)
    if args.output:
        write_json(args.output, report)
    print("\n".join(summary_lines(report)))
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    for name, cls in TASKS.items():
        cols = ", ".join(f"{r.flag} ({'/'.join(r.defaults[:3])})" for r in cls().roles)
        own = ", ".join(f"--{o.replace('_', '-')}" for o in own_option_names(cls)) or "none"
        print(f"{name}\n  {cls.description}\n  Python: texttune.{cls.api_name}\n  columns: {cols}\n  options: {own}\n"
              f"  metrics: {', '.join(cls.metric_names)}\n  default backbone: {cls.default_backbone}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    print(write_report(Path(args.run_dir), output=Path(args.output) if args.output else None))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    if args.words[:1] == ["compare"]:
        comparison = compare_runs([Path(w) for w in args.words[1:]], task_of=None if args.unpaired else scoring_task)
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
    return run_demo(output_dir=Path(args.output_dir), backbone=args.backbone, max_steps=args.max_steps)


def _limit(args: argparse.Namespace, name: str) -> int | None:
    """A ``--max-*-samples`` flag as a positive int (None when not given), checked like every option."""
    value = getattr(args, name, None)
    return None if value is None else check_limit(name, coerce(name, value, int | None, None))


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "serve": cmd_serve, "export": cmd_export,
            "push": cmd_push, "tasks": cmd_tasks, "inspect": cmd_inspect,
            "report": cmd_report,
            "runs": cmd_runs,
            "demo": cmd_demo}


def _foreign_flag(args: argparse.Namespace, unknown: list[str]) -> str | None:
    """The one-line refusal of a flag that belongs to another task than ``texttune train TASK``'s, or None."""
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
