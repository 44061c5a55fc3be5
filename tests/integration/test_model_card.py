"""What a saved model tells the tools people already use (issue 22): its model card, and pipeline() as is.

The card (model/README.md) must parse with huggingface_hub's own ModelCard, name the task and base,
and carry exactly the run's metrics. Where transformers 5 still has a pipeline for the task, the
saved directory loaded by ``pipeline(tag, model=dir)`` must give texttune's own predictions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from texttune import api, load

DATA = Path(__file__).parents[1] / "data"
TEXTS = ["the python package for parsing json", "a game about space ships", "sound tools for the command line"]


@pytest.fixture(scope="module")
def run(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [json.loads(line) for line in (DATA / "summarization.jsonl").read_text().splitlines()]
    model = api.Summarization(backbone=str(tiny_model_dir("t5")), options={"progress_bar": False, "tensorboard": False})
    result = model.fit(train={"document": [r["document"] for r in rows], "summary": [r["summary"] for r in rows]},
                       output_dir=tmp_path_factory.mktemp("card") / "run", max_steps=2, batch_size=4)
    return result.run_dir


def test_the_card_parses_and_carries_the_runs_metrics(run: Path) -> None:
    from huggingface_hub import ModelCard

    card = ModelCard.load(run / "model" / "README.md")
    metrics = json.loads((run / "metrics.json").read_text())
    assert card.data.pipeline_tag == "summarization" and card.data.library_name == "transformers"
    assert "texttune" in card.data.tags and "summarization" in card.data.tags
    shown = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert shown == {k: v for k, v in metrics["fine_tuned"].items() if isinstance(v, (int, float))}
    text = card.text
    assert "| rougeL |" in text and "baseline: lead_1" in text and "zero-shot" in text  # the baseline beside it
    assert "95% interval" in text and "validation rows" in text and "learning_rate" in text
    assert "transformers 5 has no summarization pipeline" in text  # no call that does not work
    assert "## Intended use and limits" in text


def test_a_model_saved_without_a_run_says_it_was_not_evaluated(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    saved = api.CausalLM(backbone=str(tiny_model_dir("llama"))).save(tmp_path / "model")
    text = (saved / "README.md").read_text()
    assert "pipeline_tag: text-generation" in text and "Not evaluated" in text
    assert 'pipeline("text-generation", model="path/to/this/model")' in text


def _pipeline(tag: str, model_dir: Path, **kwargs: Any) -> Any:
    from transformers import pipeline

    return pipeline(tag, model=str(model_dir), device="cpu", **kwargs)


def test_pipeline_as_is_predicts_like_texttune(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    bert = str(tiny_model_dir("bert"))
    classifier = api.TextClassification(backbone=bert, label_list="games,python,science,sound").save(tmp_path / "tc")
    ours = load(classifier).predict(TEXTS)
    theirs = _pipeline("text-classification", classifier)(TEXTS)
    assert [o["label"] for o in ours] == [t["label"] for t in theirs]
    assert [o["score"] for o in ours] == pytest.approx([t["score"] for t in theirs], abs=1e-5)

    tagger = api.TokenClassification(backbone=bert, label_list="O,B-PER,I-PER").save(tmp_path / "tok")
    aggregation = json.loads((tagger / "texttune.json").read_text())["task_state"]["aggregation"]
    assert f'aggregation_strategy="{aggregation}"' in (tagger / "README.md").read_text()
    ours = load(tagger).predict(TEXTS)
    theirs = _pipeline("token-classification", tagger, aggregation_strategy=aggregation)(TEXTS)
    assert [[(e["entity_group"], e["start"], e["end"]) for e in o["entities"]] for o in ours] == \
        [[(e["entity_group"], e["start"], e["end"]) for e in t] for t in theirs]

    filler = api.MaskedLM(backbone=bert).save(tmp_path / "mlm")
    masked = [f"the {load(filler).task.mask_token} package for json"]
    ours = load(filler).predict(masked)
    theirs = _pipeline("fill-mask", filler)(masked)
    assert [c["token_str"] for c in ours[0]["candidates"]] == [c["token_str"] for c in theirs][:len(ours[0]["candidates"])]

    continuer = api.CausalLM(backbone=str(tiny_model_dir("llama-chat"))).save(tmp_path / "clm")
    ours = load(continuer).predict(TEXTS, max_new_tokens=8)
    theirs = _pipeline("text-generation", continuer)(TEXTS, max_new_tokens=8, do_sample=False, return_full_text=False)
    assert ours == [t[0]["generated_text"].strip() for t in theirs]


def test_push_dry_run_lists_the_upload_and_its_card(run: Path, cli: Callable[..., tuple[int, str, str]]) -> None:
    code, out, err = cli("push", str(run), "someone/tiny-t5-sum", "--dry-run", "--with-report", "--json")
    assert code == 0, err
    upload = json.loads(out)
    files = {f["path"] for f in upload["files"]}
    on_disk = {p.relative_to(run / "model").as_posix() for p in (run / "model").rglob("*") if p.is_file()}
    assert files == on_disk | {"report.html"}  # the model directory as it is, its card, and the report
    local = (run / "model" / "README.md").read_text()
    assert upload["card"] == local.replace("# run\n", "# tiny-t5-sum\n").replace("- name: run\n", "- name: tiny-t5-sum\n")
    assert upload["url"] is None
    code, out, _ = cli("push", str(run / "model"), "someone/tiny-t5-sum", "--dry-run", "--private", "--revision", "v1")
    assert code == 0 and out.startswith("would push to someone/tiny-t5-sum@v1 (private) (dry run: nothing sent)")
    assert "pipeline_tag: summarization" in out


def test_push_refusals_are_one_line(run: Path, cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    code, _, err = cli("push", str(run), "no-owner")
    assert code == 2 and "expected OWNER/NAME" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("push", str(run), "someone/x")  # the test session runs with HF_HUB_OFFLINE=1
    assert code == 2 and "the hub is off (offline mode" in err and len(err.strip().splitlines()) == 1
    saved = api.Summarization(backbone=json.loads((run / "model" / "texttune.json").read_text())["backbone"]).save(tmp_path / "m")
    code, _, err = cli("push", str(saved), "someone/x", "--dry-run", "--with-report")
    assert code == 2 and "--with-report needs a run directory" in err


def test_push_to_an_unreachable_hub_fails_at_once(run: Path, tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_TOKEN="hf_not_a_real_token", HF_HOME=str(tmp_path / "hf"))
    done = subprocess.run([sys.executable, "-m", "texttune.cli.main", "push", str(run), "someone/x"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "cannot push to someone/x: the hub at http://127.0.0.1" in done.stderr and "cannot be reached" in done.stderr
