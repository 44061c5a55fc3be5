"""``texttune demo``: the README's first command, end to end, offline."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from texttune.demo import DEMO_OPTIONS, demo_data
from texttune.errors import ConfigError


def run_demo(*, output_dir: Path, backbone: str | None, max_steps: int | None) -> int:
    """Fine-tune, compare with zero-shot and lead-1, show examples, print next commands."""
    from texttune.api import Summarization
    from texttune.runs.summary import comparison_table

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
    print("Next:")
    print(f"  texttune predict {output_dir} --input-file {validation} --max-predict-samples 5")
    print(f"  echo 'A long description of some software package.' | texttune predict {output_dir}")
    print(f"  texttune evaluate {output_dir} --data-file {validation} --max-eval-samples 100 --metrics-file metrics.json")
    return 0
