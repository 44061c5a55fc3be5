"""A task defined in this file, registered with one line, gets everything else for free.

Why: "a task is one file". The toy task below (does a text mention an animal?)
declares its options, roles, head, metrics and a per-request option, and is added
to the registry with one ``setitem``: no other module is edited. It must then
train, evaluate and predict from the CLI (with only its own options in --help,
another task's option refused), work from the Python API, be served with its
request option, and keep its new head trainable under LoRA. If any of these
needs an edit elsewhere, the design has leaked again (docs/adding-a-task.md).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from texttune.config import GenerationConfig, RunConfig, option
from texttune.data import ColumnRole
from texttune.errors import BackboneError
from texttune.tasks import TASKS
from texttune.tasks.base import pad_batch
from run_files import assert_user_error, read_json, read_jsonl

Cli = Callable[..., tuple[int, str, str]]
FAST = ["--max-steps", "3", "--batch-size", "4", "--no-progress-bar", "--learning-rate", "1e-3"]


@dataclass
class ToyOptions:
    max_length: int = option(32, "Tokens per text.", ge=4)
    top_labels: int = option(1, "Labels predict returns per text, best first (a request may ask for more).", ge=1, le=10)


class ToyTask:
    """Text -> yes/no: does it mention an animal? Sequence classification on an encoder."""

    name: ClassVar[str] = "toy-animals"
    api_name: ClassVar[str] = "ToyAnimals"
    description: ClassVar[str] = "toy: does a text mention an animal (accuracy; majority baseline)"
    options: ClassVar[type] = ToyOptions
    generates: ClassVar[bool] = False
    heads: ClassVar[tuple[str, ...]] = ("classifier",)
    roles: ClassVar[tuple[ColumnRole, ...]] = (ColumnRole("text", ("text",), help="text"),
                                               ColumnRole("label", ("label",), help="yes or no"))
    input_keys: ClassVar[tuple[str, ...]] = ("text",)
    main_metric: ClassVar[str] = "accuracy"
    metric_names: ClassVar[tuple[str, ...]] = ("accuracy",)
    default_backbone: ClassVar[str] = "minilm"
    request_options: ClassVar[tuple[str, ...]] = ("top_labels",)

    def __init__(self, options: ToyOptions | None = None) -> None:
        self.opts = options or ToyOptions()
        self.labels: list[str] = []
        self.majority = ""
        self.tokenizer: Any = None

    def auto_class(self, family: str) -> str:
        if family != "encoder":
            raise BackboneError("the toy task needs an encoder")
        return "AutoModelForSequenceClassification"

    def bind(self, backbone: Any, config: RunConfig) -> None:
        self.tokenizer = backbone.tokenizer

    def learn(self, train_rows: Any) -> dict[str, Any]:
        counts = Counter(train_rows["label"])
        self.labels, self.majority = sorted(counts), counts.most_common(1)[0][0]
        return {"labels": self.labels}

    def model_kwargs(self) -> dict[str, Any]:
        return {"num_labels": len(self.labels), "id2label": dict(enumerate(self.labels)),
                "label2id": {label: i for i, label in enumerate(self.labels)}}

    def encode(self, rows: Any) -> tuple[Any, dict[str, Any]]:
        from datasets import Dataset

        ids = self.tokenizer(list(rows["text"]), truncation=True, max_length=self.opts.max_length)["input_ids"]
        return Dataset.from_dict({"input_ids": ids, "label": [self.labels.index(x) for x in rows["label"]]}), {"rows": len(ids)}

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = pad_batch([{"input_ids": f["input_ids"]} for f in features], pad_token_id=self.tokenizer.pad_token_id)
        return {**batch, "labels": torch.tensor([f["label"] for f in features])}

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        return model(**batch).loss

    def _scores(self, model: Any, texts: list[str]) -> list[list[float]]:
        import torch

        enc = self.tokenizer(texts, truncation=True, max_length=self.opts.max_length, padding=True, return_tensors="pt")
        with torch.inference_mode():
            return model(**enc.to(model.device)).logits.softmax(-1).tolist()

    def evaluate(self, model: Any, rows: Any, *, generation: GenerationConfig) -> tuple[dict[str, float], list[dict[str, Any]]]:
        best = [self.labels[max(range(len(s)), key=s.__getitem__)] for s in self._scores(model, list(rows["text"]))]
        records = [{"text": t, "reference": r, "prediction": p} for t, r, p in zip(rows["text"], rows["label"], best)]
        return self.score_records(records), records

    def score_records(self, records: list[dict[str, Any]]) -> dict[str, float]:
        return {"accuracy": 100 * sum(r["prediction"] == r["reference"] for r in records) / max(len(records), 1)}

    def baselines(self, rows: Any) -> dict[str, tuple[dict[str, float], list[dict[str, Any]]]]:
        records = [{"prediction": self.majority, "reference": r} for r in rows["label"]]
        return {"majority": (self.score_records(records), records)}

    def predict(self, model: Any, inputs: list[dict[str, Any]], *, generation: GenerationConfig,
                top_labels: int | None = None) -> list[dict[str, Any]]:
        n = top_labels or self.opts.top_labels
        ranked = [sorted(zip(self.labels, s), key=lambda p: -p[1])[:n] for s in self._scores(model, [r["text"] for r in inputs])]
        return [{"labels": [{"label": label, "score": round(score, 4)} for label, score in r]} for r in ranked]

    def finalize_model(self, model: Any) -> None:
        pass

    def metadata(self) -> dict[str, Any]:
        return {"labels": self.labels, "majority": self.majority, "max_length": self.opts.max_length,
                "top_labels": self.opts.top_labels}

    def restore(self, metadata: dict[str, Any], *, tokenizer: Any = None, model: Any = None) -> None:
        self.labels, self.majority = metadata["labels"], metadata["majority"]
        self.opts = ToyOptions(max_length=metadata["max_length"], top_labels=metadata["top_labels"])
        self.tokenizer = tokenizer


ANIMALS = ["cat", "dog", "horse", "cow", "fox", "owl"]
THINGS = ["table", "car", "lamp", "door", "road", "book"]


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one line adding a task: its registry entry."""
    monkeypatch.setitem(TASKS, ToyTask.name, ToyTask)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("toy") / "animals.jsonl"
    rows = [{"text": f"the {w} is here", "label": "yes"} for w in ANIMALS] + \
           [{"text": f"the {w} is here", "label": "no"} for w in THINGS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows * 3), encoding="utf-8")
    return path


def test_cli_train_evaluate_predict_with_lora_on_the_new_head(tiny_model_dir: Callable[[str], Path], data: Path,
                                                               cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, _, err = cli("-q", "train", "toy-animals", "--backbone", tiny_model_dir("bert"), "--train-file", data,
                       "--output-dir", out, "--top-labels", "2", "--peft", "lora", *FAST)
    assert code == 0, err
    metrics = read_json(out / "metrics.json")
    assert {"majority"} == set(metrics["baselines"]) and "accuracy" in metrics["fine_tuned"]
    assert read_json(out / "status.json")["main_metric"] == "accuracy"
    assert read_json(out / "model_summary.json")["peft"]["modules_to_save"] == ["classifier"]  # the head trains in full
    assert read_json(out / "model" / "texttune.json")["task"] == "toy-animals"

    code, stdout, err = cli("-q", "evaluate", out, "--data-file", data, "--json")
    assert code == 0 and "accuracy" in json.loads(stdout), err
    code, stdout, err = cli("-q", "evaluate", out, "--data-file", data, "--bootstrap", "50")
    assert code == 0 and stdout.splitlines()[0].split() == ["metric", "value", "95%", "interval"], err
    assert "50 resamples" in stdout
    code, stdout, err = cli("-q", "predict", out, "--input-file", data, "--max-predict-samples", "2",
                            "--output-file", tmp_path / "p.jsonl", "--top-labels", "1")
    assert code == 0, err
    assert [len(r["prediction"]["labels"]) for r in read_jsonl(tmp_path / "p.jsonl")] == [1, 1]
    code, _, err = cli("-q", "predict", out, "--input-file", data, "--num-beams", "2")
    assert_user_error(code, err, "'num_beams' does not apply to task 'toy-animals'")


def test_help_lists_only_its_options_and_refuses_others(cli: Cli, data: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from texttune.cli.main import main

    with pytest.raises(SystemExit):
        main(["train", "toy-animals", "--help"])
    text = capsys.readouterr().out
    assert "--top-labels" in text and "--max-length" in text
    assert "--stride" not in text and "--num-beams" not in text and "--prefix" not in text
    code, _, err = cli("-q", "train", "toy-animals", "--train-file", data, "--output-dir", tmp_path / "r", "--stride", "8")
    assert_user_error(code, err, "'--stride' belongs to task 'question-answering', not to task 'toy-animals'")
    config = tmp_path / "c.yaml"
    config.write_text("stride: 8\n", encoding="utf-8")
    code, _, err = cli("-q", "train", "toy-animals", "--train-file", data, "--config", config, "--output-dir", tmp_path / "r")
    assert_user_error(code, err, "'stride' belongs to task 'question-answering', not to task 'toy-animals'")
    assert not (tmp_path / "r").exists()


def test_api_class_and_serving(tiny_model_dir: Callable[[str], Path], data: Path, tmp_path: Path,
                               ready_client: Callable[..., Any]) -> None:
    import texttune
    from texttune.api import load
    from texttune.config import serve_config
    from texttune.errors import ConfigError
    from texttune.serving import ModelPredictor, create_app

    model = texttune.ToyAnimals(backbone=str(tiny_model_dir("bert")), top_labels=2)
    with pytest.raises(ConfigError, match="'prefix' belongs to task"):
        texttune.ToyAnimals(prefix="x")
    model.fit(train=str(data), output_dir=tmp_path / "run", max_steps=2, batch_size=4, options={"progress_bar": False})
    assert [len(o["labels"]) for o in model.predict(["the owl", "a lamp"])] == [2, 2]
    assert len(texttune.load(tmp_path / "run").predict(["the owl"], top_labels=1)[0]["labels"]) == 1
    with pytest.raises(ConfigError, match="'top_labels' must be in"):
        model.predict(["the owl"], top_labels=50)

    app = create_app(config=serve_config({}), load=lambda: ModelPredictor(tmp_path / "run", load=load))
    with ready_client(app) as client:
        ok = client.post("/v1/predict", json={"inputs": ["the cat", "the road"], "top_labels": 2})
        assert ok.status_code == 200 and [len(o["labels"]) for o in ok.json()["outputs"]] == [2, 2]
        refused = client.post("/v1/predict", json={"inputs": "the cat", "num_beams": 2})
        assert refused.status_code == 422 and "does not apply to task 'toy-animals'" in refused.text
        assert client.get("/v1/model").json()["options"] == ["top_labels"]
