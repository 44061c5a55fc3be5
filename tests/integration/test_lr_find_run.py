"""``--learning-rate auto`` end to end on the tiny BERT: the probe changes nothing but the rate (losses step for step
equal to a run given the picked numbers), the choice is recorded (lr_find.json, config.yaml, the plot in the report),
a resume reuses it without probing; and a run given in epochs decays its schedule over all of its steps."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from run_files import read_json

DATA = Path(__file__).resolve().parents[1] / "data"
Cli = Callable[..., tuple[int, str, str]]
#: 6 steps of 4 with dropout on: enough for diverging losses to show if the probe left anything behind.
RUN = ["--train-file", str(DATA / "classification.jsonl"), "--validation-file", str(DATA / "classification-val.jsonl"),
       "--label-column", "section", "--max-steps", "6", "--batch-size", "4", "--max-eval-samples", "4",
       "--log-every-steps", "1", "--no-progress-bar", "--no-baselines", "--no-tensorboard", "--samples-per-eval", "0"]


def train(cli: Cli, backbone: Path, out: Path, *extra: str) -> Path:
    code, _, err = cli("-q", "train", "text-classification", "--backbone", backbone, "--output-dir", out, *RUN, *extra)
    assert code == 0, err
    return out


def logged(run: Path, column: str) -> list[tuple[int, float]]:
    with (run / "logs" / "metrics.csv").open() as handle:
        return [(int(row["step"]), float(row[column])) for row in csv.DictReader(handle) if row.get(column)]


@pytest.fixture(scope="module")
def auto_run(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from texttune.cli.main import main

    out = tmp_path_factory.mktemp("lr-auto") / "run"
    code = main(["-q", "train", "text-classification", "--backbone", str(tiny_model_dir("bert")), "--output-dir", str(out),
                 *RUN, "--learning-rate", "auto"])
    assert code == 0
    return out


def test_auto_trains_exactly_as_the_picked_numbers_given_explicitly(auto_run: Path, tiny_model_dir: Callable[[str], Path],
                                                                    cli: Cli, tmp_path: Path) -> None:
    chosen = read_json(auto_run / "lr_find.json")
    rate, head = chosen["learning_rate"], chosen["head_learning_rate"]
    explicit = train(cli, tiny_model_dir("bert"), tmp_path / "explicit", "--learning-rate", repr(rate),
                     "--head-learning-rate", repr(head))
    losses = logged(auto_run, "train_loss")
    assert len(losses) == 6
    assert losses == logged(explicit, "train_loss")  # bit for bit: same weights, dropout stream and batches after the probe
    assert logged(auto_run, "lr") == logged(explicit, "lr")
    assert not (explicit / "lr_find.json").exists()


def test_the_choice_is_in_config_yaml_as_numbers_and_in_lr_find_json(auto_run: Path) -> None:
    chosen = read_json(auto_run / "lr_find.json")
    config = yaml.safe_load((auto_run / "config.yaml").read_text())
    assert (config["learning_rate"], config["head_learning_rate"]) == (chosen["learning_rate"], chosen["head_learning_rate"])
    assert isinstance(config["learning_rate"], float) and config["batch_size"] == 4
    assert chosen["head_learning_rate"] == float(f"{10 * chosen['learning_rate']:.3g}")  # text-classification's ratio
    assert chosen["curve"] and all(point["lr"] > 0 for point in chosen["curve"]) and chosen["picked_by"]
    assert read_json(auto_run / "metrics.json")["timing"]["lr_find_s"] >= chosen["seconds"] > 0


def test_the_report_shows_the_range_test(auto_run: Path, tmp_path: Path) -> None:
    from texttune.runs.report import write_report

    assert (auto_run / "plots" / "lr_find.png").read_bytes().startswith(b"\x89PNG")
    html = write_report(auto_run, output=tmp_path / "report.html").read_text()
    rate = read_json(auto_run / "lr_find.json")["learning_rate"]
    assert "alt='lr_find.png'" in html and f"Learning-rate range test: chose {rate:.3g}" in html


@pytest.mark.parametrize("config_says", ["number", "auto"])
def test_a_resumed_run_reuses_the_rate_and_never_probes(auto_run: Path, cli: Cli, tmp_path: Path, config_says: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """config.yaml holds the numbers; were it still to say auto (killed between the probe and the rewrite), the
    choice comes from lr_find.json. Either way the range test does not run again."""
    from texttune.engine import lr_find

    def no_probe(**_: Any) -> Any:
        raise AssertionError("the range test ran again on resume")

    monkeypatch.setattr(lr_find, "range_test", no_probe)
    run = Path(shutil.copytree(auto_run, tmp_path / "run"))
    chosen = read_json(run / "lr_find.json")
    if config_says == "auto":
        saved = yaml.safe_load((run / "config.yaml").read_text())
        saved.update(learning_rate="auto", head_learning_rate=3e-3)  # as written when the run started
        (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    code, _, err = cli("-q", "train", "text-classification", "--resume", "latest", "--output-dir", run,
                       "--max-steps", "8", "--learning-rate", "auto")
    assert code == 0, err
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (config["learning_rate"], config["head_learning_rate"]) == (chosen["learning_rate"], chosen["head_learning_rate"])
    assert read_json(run / "status.json")["steps"] == 8
    assert read_json(run / "lr_find.json") == chosen


def test_auto_with_a_head_rate_of_ones_own_is_refused_before_anything_is_written(tiny_model_dir: Callable[[str], Path],
                                                                                 cli: Cli, tmp_path: Path) -> None:
    code, out, err = cli("-q", "train", "text-classification", "--backbone", tiny_model_dir("bert"), "--output-dir",
                         tmp_path / "run", *RUN, "--learning-rate", "auto", "--head-learning-rate", "1e-3")
    assert code == 2 and out == "" and "cannot be combined with --learning-rate auto" in err
    assert not (tmp_path / "run").exists()


def test_a_run_given_in_epochs_decays_over_all_its_steps(tiny_model_dir: Callable[[str], Path], cli: Cli,
                                                         tmp_path: Path) -> None:
    """No --max-steps: the schedule's length is the epochs' optimizer steps (24 rows / 4 per batch x 2 epochs = 12),
    and its warmup the minimum rule's."""
    rows = (DATA / "classification.jsonl").read_text().splitlines()[:24]
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    code, _, err = cli("-q", "train", "text-classification", "--backbone", tiny_model_dir("bert"), "--output-dir", run,
                       "--train-file", data, "--validation-file", DATA / "classification-val.jsonl", "--label-column",
                       "section", "--max-epochs", "2", "--batch-size", "4", "--max-eval-samples", "4", "--log-every-steps",
                       "1", "--no-progress-bar", "--no-baselines", "--no-tensorboard", "--learning-rate", "1e-3")
    assert code == 0, err
    rates = logged(run, "lr")  # logged after each step's scheduler step: the rate of the step that follows
    assert [step for step, _ in rates] == list(range(12))

    def rate_of(step: int) -> float:  # text-classification's warmup ratio 0.1 of 12 steps: the minimum, 12 // 5 = 2
        return 1e-3 * (step / 2 if step < 2 else (12 - step) / 10)

    assert [rate for _, rate in rates] == pytest.approx([rate_of(k + 1) for k in range(12)], rel=1e-6)
    assert rates[-1][1] == 0.0  # the schedule ends with the last of the 2 epochs' steps
