"""The model card: ``model/README.md``, what a saved model is, how well it does and how to use it.

Written with the model (``texttune train`` once its metrics are final, ``TaskModel.save``), in the
Hugging Face layout: a YAML header the hub reads (``library_name``, ``pipeline_tag``, ``base_model``,
``tags``, ``model-index`` with the validation metrics) and sections a reader needs: the evaluation
with its 95% intervals, the zero-shot model and the baselines beside it, the training options, how
to load it, and its limits. Everything comes from the run's own files (``texttune.json``,
``config.yaml``, ``metrics.json``): the card states what was measured, never more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from texttune._version import __version__
from texttune.files import read_json, write_text
from texttune.runs.model_dir import METADATA_FILE, model_name

CARD_FILE = "README.md"
#: Tasks transformers 5 still has a pipeline for (``pipeline(tag, model=dir)`` loads a texttune model as is).
PIPELINES = ("text-generation", "fill-mask", "token-classification", "text-classification")
#: Hub ids of the offline aliases, so a card names the model its weights came from.
ALIAS_HUB_IDS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2", "smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct"}
#: Training options a reader of the card needs to reproduce or judge the run (config.yaml has them all).
TRAINING_KEYS = ("train_file", "validation_file", "max_train_samples", "max_eval_samples", "max_steps", "max_epochs",
                 "batch_size", "learning_rate", "head_learning_rate", "lr_schedule", "warmup_ratio", "weight_decay",
                 "max_source_length", "max_target_length", "max_length", "peft", "lora_r", "precision", "seed")


def write_model_card(model_dir: Path, *, pipeline_tag: str | None, run_root: Path | None = None,
                     name: str | None = None) -> Path:
    """Write ``model_dir/README.md`` from the model's metadata and, when it comes from a run, its config and metrics.

    ``name``: the model's title (default: its run's directory name; a push uses the repository's name)."""
    metadata = read_json(model_dir / METADATA_FILE)
    config = metrics = None
    if run_root is not None and (run_root / "config.yaml").is_file():
        config = yaml.safe_load((run_root / "config.yaml").read_text(encoding="utf-8")) or {}
        metrics = read_json(run_root / "metrics.json") if (run_root / "metrics.json").is_file() else None
    text = model_card(metadata, name=name or model_name(model_dir), pipeline_tag=pipeline_tag, config=config, metrics=metrics)
    write_text(model_dir / CARD_FILE, text)
    return model_dir / CARD_FILE


def model_card(metadata: dict[str, Any], *, name: str, pipeline_tag: str | None, config: dict[str, Any] | None,
               metrics: dict[str, Any] | None) -> str:
    """The card's text: YAML header, then the sections."""
    task, backbone = metadata["task"], str(metadata.get("backbone") or "")
    base = ALIAS_HUB_IDS.get(backbone) or (backbone if _hub_id(backbone) else None)
    fine = (metrics or {}).get("fine_tuned") or {}
    header: dict[str, Any] = {"library_name": "transformers", "tags": ["texttune", task] + (["lora"] if metadata.get("peft") else [])}
    if pipeline_tag:  # a task of one's own may not name one
        header["pipeline_tag"] = pipeline_tag
    if base:
        header["base_model"] = base
    if fine:
        header["model-index"] = [{"name": name, "results": [{
            "task": {"type": pipeline_tag or task, "name": task},
            "dataset": {"name": Path(str((config or {}).get("validation_file") or "validation split")).name,
                        "type": "local", "split": "validation"},
            "metrics": [{"type": key, "value": value, "name": f"{key} (validation)"} for key, value in fine.items()
                        if isinstance(value, (int, float))]}]}]
    parts = ["---", yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip(), "---", "",
             f"# {name}", "",
             f"A {task} model fine-tuned from `{backbone}` with [texttune](https://pypi.org/project/texttune/) "
             f"{metadata.get('texttune_version') or __version__}"
             f"{' (LoRA adapters, ' + ('merged' if metadata['peft'].get('merged') else 'kept apart') + ')' if metadata.get('peft') else ''}"
             f"{', ' + str(metadata['trained_steps']) + ' optimizer steps' if metadata.get('trained_steps') else ''}.", ""]
    parts += _evaluation(metrics) + _training(config) + _usage(metadata, pipeline_tag) + _limits(config, metrics)
    return "\n".join(parts).rstrip() + "\n"


def _hub_id(name: str) -> bool:
    """Whether a backbone name reads as a hub repository (owner/name), not a local path."""
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and not Path(name).exists()


def _evaluation(metrics: dict[str, Any] | None) -> list[str]:
    fine = (metrics or {}).get("fine_tuned") or {}
    if not fine:
        return ["## Evaluation", "", "Not evaluated: this model was saved without a training run's metrics.", ""]
    intervals = (metrics or {}).get("intervals") or {}
    others = {"zero-shot": (metrics or {}).get("zero_shot") or {},
              **{f"baseline: {k}": v for k, v in ((metrics or {}).get("baselines") or {}).items()}}
    columns = ["metric", "fine-tuned", "95% interval", *others]
    lines = ["## Evaluation", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for key, value in fine.items():
        if not isinstance(value, (int, float)):
            continue
        bounds = (intervals.get("fine_tuned") or {}).get(key) or {}
        interval = f"{bounds['low']:g} - {bounds['high']:g}" if "low" in bounds else ""
        lines.append("| " + " | ".join([key, f"{value:g}", interval, *(_num(o.get(key)) for o in others.values())]) + " |")
    data = ((metrics or {}).get("evaluation_data") or {}).get("validation") or {}
    boot = (metrics or {}).get("bootstrap") or {}
    lines += ["", f"On {data.get('rows', '?')} validation rows ({data.get('sha256', 'hash not recorded')})"
              + (f"; intervals from {boot['resamples']} bootstrap resamples of the rows." if boot.get("resamples") else "."),
              ""]
    for against, tests in (((metrics or {}).get("paired") or {}).items()):
        rows = tests.items() if against == "baselines" else [("zero-shot", tests)]
        for label, test in rows:
            main = test.get(boot.get("main_metric")) if isinstance(test, dict) else None
            if isinstance(main, dict) and "p_value" in main:
                lines.append(f"- against {label}: {boot['main_metric']} {main['difference']:+g}, p = {main['p_value']:g} "
                             "(paired bootstrap)")
    return lines + [""]


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else ""


def _training(config: dict[str, Any] | None) -> list[str]:
    if not config:
        return []
    rows = [f"| `{key}` | {config[key]} |" for key in TRAINING_KEYS if config.get(key) not in (None, "")]
    return ["## Training", "", "| option | value |", "|---|---|", *rows, "",
            "The run's `config.yaml` holds every option (`texttune train --config config.yaml` reruns it).", ""]


def _usage(metadata: dict[str, Any], pipeline_tag: str | None) -> list[str]:
    """How to load it: texttune, then transformers' pipeline where transformers 5 still has one for the task, else
    its Auto class (transformers 5 removed the summarization, translation, text2text and question-answering
    pipelines)."""
    lines = ["## How to use", "", "```python", "import texttune", "", 'model = texttune.load("path/to/this/model")',
             'print(model.predict(["your input"]))', "```", "",
             "`texttune predict`, `texttune evaluate` and `texttune serve` take the directory as well. With transformers "
             "alone:", "", "```python"]
    if pipeline_tag in PIPELINES:
        aggregation = (metadata.get("task_state") or {}).get("aggregation")
        extra = f', aggregation_strategy="{aggregation}"' if pipeline_tag == "token-classification" and aggregation else ""
        lines += ["from transformers import pipeline", "",
                  f'run = pipeline("{pipeline_tag}", model="path/to/this/model"{extra})']
    else:
        lines += [f"from transformers import AutoTokenizer, {metadata['auto_class']}", "",
                  'tokenizer = AutoTokenizer.from_pretrained("path/to/this/model")',
                  f'model = {metadata["auto_class"]}.from_pretrained("path/to/this/model")',
                  f"# transformers 5 has no {pipeline_tag or metadata['task']} pipeline; texttune.load adds the prompt "
                  "layout it was trained with"]
    return lines + ["```", ""]


def _limits(config: dict[str, Any] | None, metrics: dict[str, Any] | None) -> list[str]:
    trained_on = Path(str((config or {}).get("train_file") or "")).name or "its training data"
    return ["## Intended use and limits", "",
            f"Fine-tuned for the task and the kind of text in `{trained_on}`, and evaluated only on the validation "
            "rows above, by one training run (its seed in the options): scores on other data, domains or languages "
            "are unknown. The model reproduces patterns of its training data, including their errors and biases.", ""]
