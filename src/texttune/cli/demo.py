"""``texttune demo``: the README's first command, end to end, offline."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from texttune.api import Summarization
from texttune.demo import DEMO_OPTIONS, demo_data
from texttune.errors import ConfigError
from texttune.runs.summary import comparison_table


def run_demo(*, output_dir: Path, backbone: str | None, max_steps: int | None) -> int:
    """Fine-tune, compare with zero-shot and lead-1, show examples, print next commands."""
    if output_dir.exists():
        if not (output_dir / "config.yaml").is_file():
            raise ConfigError(f"{output_dir} exists and is not a texttune run; pass another --output-dir")
        shutil.rmtree(output_dir)  # a previous demo run: the demo always starts fresh
    train, validation = demo_data()
    options = dict(DEMO_OPTIONS, **({"max_steps": max_steps} if max_steps else {}))
    task = Summarization(backbone=backbone, options=options)
    print(f"texttune demo: fine-tuning {task.backbone_name} for summarization on {train.parent.name} "
          f"({options['max_steps']} steps of {options['batch_size']}; data: {train.parent})", flush=True)
    start = time.perf_counter()
    result = task.fit(train=str(train), validation=str(validation), output_dir=output_dir)
    minutes = (time.perf_counter() - start) / 60
    print("\nValidation ROUGE (F1 x 100) on", options["max_eval_samples"], "held-out rows:\n")
    print(comparison_table(result.metrics, names=["rouge1", "rouge2", "rougeL", "rougeLsum", "gen_len"]))
    print("\nExamples (input / reference / generated):")
    records = [json.loads(line) for line in (output_dir / "predictions.jsonl").read_text().splitlines()[:3]]
    for i, r in enumerate(records, start=1):
        text = r["input"] if len(r["input"]) < 300 else r["input"][:297] + "..."
        print(f"\n[{i}] input:     {text}\n    reference: {r['reference']}\n    generated: {r['prediction']}")
    print(f"\nTraining and evaluation took {minutes:.1f} min. Model saved in {result.model_dir}\n")
    me = self_command()
    print("Next:")
    print(f"  {me} predict {output_dir} --input-file {validation} --max-predict-samples 5")
    print(f"  echo 'A long description of some software package.' | {me} predict {output_dir}")
    print(f"  {me} evaluate {output_dir} --data-file {validation} --max-eval-samples 100 --metrics-file metrics.json")
    return 0


def self_command() -> str:
    """How to run this texttune from here: ``texttune`` when that is what the PATH finds, else its path.

    ``make demo`` runs ``.venv/bin/texttune`` without activating the venv: the printed commands
    must work as shown, so they name the program by its path then.
    """
    program = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    on_path = shutil.which("texttune")
    if program is not None and program.name == "texttune" and program.is_file():
        if on_path and Path(on_path).resolve() == program:
            return "texttune"
        relative = os.path.relpath(program)
        return relative if not relative.startswith("..") else str(program)
    return "texttune" if on_path else f"{sys.executable} -m texttune.cli.main"
