"""``texttune runs`` and ``texttune runs compare`` on real (tiny) training runs.

Why: the unit tests read run directories the test wrote; this checks the
listing and the comparison against what the engine really writes, so a change
in the run directory layout cannot silently blank the table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from texttune.runs.catalog import format_value

DATA = Path(__file__).resolve().parents[1] / "data"
FAST = ["--max-steps", "2", "--batch-size", "4", "--no-progress-bar", "--max-eval-samples", "6"]
Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def two_runs(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/lr-a and runs/lr-b: the tiny T5 fine-tuned for two steps with two learning rates."""
    from texttune.cli.main import main

    root = tmp_path_factory.mktemp("runs-cli")
    for name, lr in (("lr-a", "5e-5"), ("lr-b", "1e-3")):
        code = main(["-q", "train", "summarization", "--backbone", str(tiny_model_dir("t5")), "--train-file",
                     str(DATA / "summarization.jsonl"), "--output-dir", str(root / "runs" / name), "--learning-rate", lr, *FAST])
        assert code == 0
    return root / "runs"


def fine_tuned(run: Path) -> dict[str, float]:
    return json.loads((run / "metrics.json").read_text(encoding="utf-8"))["fine_tuned"]


def test_runs_lists_both_runs(two_runs: Path, cli: Cli, tiny_model_dir: Callable[[str], Path]) -> None:
    code, out, err = cli("runs", two_runs.parent)
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    assert set(rows) == {"runs/lr-a", "runs/lr-b"}
    for name, row in rows.items():
        cells = row.split()
        assert cells[1:3] == ["summarization", tiny_model_dir("t5").name]  # task, the backbone's folder name
        assert cells[3:7] == ["summarization.jsonl", "completed", "2", "rougeL"]
        assert f"-> {format_value(fine_tuned(two_runs / name.split('/')[1])['rougeL'])}" in row

    code, out, err = cli("runs", two_runs, "--json")
    assert code == 0, err
    records = {r["name"]: r for r in json.loads(out)}
    assert records["lr-a"]["best"] == fine_tuned(two_runs / "lr-a")["rougeL"]
    assert records["lr-b"]["status"] == "completed" and records["lr-b"]["duration_s"] > 0


def test_runs_compare_shows_the_changed_option_and_metrics(two_runs: Path, cli: Cli) -> None:
    a, b = two_runs / "lr-a", two_runs / "lr-b"
    code, out, err = cli("runs", "compare", a, b)
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.split() == ["learning_rate", "5e-05", "0.001"] for line in lines), out
    assert "config: 1 option differs" in out
    for metric in ("rougeL", "rouge1", "gen_len"):
        row = next(line for line in lines if line.split()[:1] == [metric])
        values = [cell.rstrip("*") for cell in row.split()[1:]]
        assert values == [format_value(fine_tuned(a)[metric]), format_value(fine_tuned(b)[metric])]

    code, out, err = cli("runs", "compare", a, b, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["config"]["differing"] == {"learning_rate": [5e-5, 1e-3]}
    rouge = next(m for m in data["metrics"] if m["metric"] == "rougeL" and m["kind"] == "fine_tuned")
    assert rouge["values"] == [fine_tuned(a)["rougeL"], fine_tuned(b)["rougeL"]]


def one_error_line(code: int, err: str) -> str:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("texttune: error: "), lines
    return lines[0]


def test_runs_bad_input_is_one_line(two_runs: Path, tmp_path: Path, cli: Cli) -> None:
    line = one_error_line(*cli("runs", "compare", two_runs / "lr-a")[::2])
    assert "at least two run directories, got 1" in line
    line = one_error_line(*cli("runs", "compare", two_runs / "lr-a", tmp_path)[::2])
    assert f"{tmp_path} is not a run directory" in line
    line = one_error_line(*cli("runs", tmp_path / "missing")[::2])
    assert f"{tmp_path / 'missing'}: no such directory" in line
    line = one_error_line(*cli("runs", two_runs, tmp_path)[::2])
    assert "runs compare RUN RUN" in line
    code, out, _ = cli("runs", tmp_path)
    assert code == 0 and out.strip() == f"no runs found under {tmp_path} (a run directory has a config.yaml or status.json)"
