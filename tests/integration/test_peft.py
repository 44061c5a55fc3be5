"""--peft lora on every task, on tiny models: only adapters train, checkpoints hold only them, saves load both ways.

Why: LoRA fails quietly. An adapter that never reaches the optimizer leaves the model
untouched; a head left frozen stays random; a checkpoint that still holds the
backbone is as big as full fine-tuning; a saved adapter that loads onto the wrong
backbone (or not at all) only shows at serving time; a resume that drops the
adapters restarts from scratch without a word. Each test pins one of these.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import texttune
from texttune import api
from texttune.backbones.adapters import is_checkpointing
from texttune.cli.main import main
from texttune.errors import BackboneError, ConfigError
from run_files import read_json

DATA = Path(__file__).resolve().parents[1] / "data"
LORA = {"peft": "lora", "lora_rank": 4, "merge_adapters": False, "baselines": False, "progress_bar": False,
        "tensorboard": False, "max_eval_samples": 4, "samples_per_eval": 0}


def documents() -> dict[str, list[str]]:
    lines = (DATA / "summarization.jsonl").read_text(encoding="utf-8").splitlines()
    return {"text": [json.loads(line)["document"] for line in lines]}


def faq_conversations() -> dict[str, list[Any]]:
    lines = (DATA / "qg.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    return {"messages": [[{"role": "user", "content": r["question"]}, {"role": "assistant", "content": r["answer_context"]}]
                         for r in rows]}


#: task -> (tiny model kind, API object for a backbone dir, training data, prediction inputs)
CASES: dict[str, tuple[str, Callable[[str], Any], Any, list[Any]]] = {
    "summarization": ("t5", lambda b: api.Summarization(backbone=b, options={**LORA, "max_source_length": 64, "max_target_length": 16}),
                      DATA / "summarization.jsonl", ["The server was restarted after the update."]),
    "translation": ("bart", lambda b: api.Translation(backbone=b, options={**LORA, "max_target_length": 16}),
                    DATA / "translation.jsonl", ["Open the file."]),
    "text2text": ("bert2bert", lambda b: api.Text2Text(backbone=b, options={**LORA, "max_source_length": 64, "max_target_length": 16}),
                  DATA / "qg.jsonl", ["Use the threading module."]),
    "token-classification": ("bert", lambda b: api.TokenClassification(backbone=b, options=LORA),
                             DATA / "ner.jsonl", [["John", "lives", "in", "Paris"]]),
    "masked-lm": ("bert", lambda b: api.MaskedLM(backbone=b, max_length=32, options=LORA), documents(), []),
    "causal-lm": ("llama", lambda b: api.CausalLM(backbone=b, max_length=32, options={**LORA, "max_new_tokens": 4}),
                  documents(), ["The server"]),
    "question-answering": ("bert", lambda b: api.QuestionAnswering(backbone=b, max_length=96, stride=24, max_answer_length=10,
                                                                   options=LORA),
                           DATA / "squad.jsonl", [{"question": "Who won?", "context": "The Broncos won the game in 2016."}]),
    # Conversations built from the python-faq sample: loss on the assistant turns only, nothing new to train.
    "chat": ("llama-chat", lambda b: api.Chat(backbone=b, max_length=256, options={**LORA, "max_new_tokens": 4}),
             faq_conversations(), ["How do I read a file?"]),
    # A decoder with a new classification head on its last non-pad token.
    "text-classification": ("llama", lambda b: api.TextClassification(backbone=b, max_length=48,
                                                                      options={**LORA, "label_column": "section"}),
                            DATA / "classification.jsonl", ["A puzzle game for children", "Python bindings for a library"]),
}
HEADS = {"token-classification": ["classifier"], "question-answering": ["qa_outputs"],
         "masked-lm": ["cls.predictions.transform"], "text-classification": ["score"]}


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Any]:
    """task -> (API object after a 2-step LoRA fit with separate adapters, its FitResult, the backbone dir); cached."""
    done: dict[str, Any] = {}

    def train(task: str) -> Any:
        if task not in done:
            kind, build, data, _ = CASES[task]
            model = build(str(tiny_model_dir(kind)))
            result = model.fit(train=data, output_dir=tmp_path_factory.mktemp(task) / "run", max_steps=2, batch_size=4)
            done[task] = (model, result, tiny_model_dir(kind))
        return done[task]

    return train


def _base_name(name: str) -> str:
    """A frozen parameter's name in the plain backbone (PEFT inserts base_layer / original_module)."""
    return name.replace(".base_layer", "").replace(".original_module", "")


@pytest.mark.parametrize("task", list(CASES))
def test_lora_trains_only_adapters_and_checkpoints_only_them(task: str, trained: Callable[[str], Any]) -> None:
    model, result, base_dir = trained(task)
    backbone = model.backbone
    assert backbone.peft is not None  # adapters kept separate (merge_adapters=False)
    network = backbone.model
    fresh = type(network).from_pretrained(base_dir, config=network.config, ignore_mismatched_sizes=True).state_dict()
    trainable = {n for n, p in network.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "modules_to_save" in n for n in trainable)
    # The backbone's weights are exactly the pretrained ones after training (a new random head aside).
    for name, param in network.named_parameters():
        if not param.requires_grad and ".original_module" not in name:
            assert torch.equal(param, fresh[_base_name(name)]), name
    # ...and the adapters did train: LoRA's B matrices start at zero.
    assert any(p.abs().sum() > 0 for n, p in network.named_parameters() if "lora_B" in n)
    # The checkpoint holds the trainable weights and nothing else of the model but its buffers (e.g. BART's
    # final_logits_bias, a constant).
    buffers = set(network.state_dict()) - {n for n, _ in network.named_parameters(remove_duplicate=False)}
    checkpoint = torch.load(result.run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert {k.removeprefix("model.") for k in checkpoint["state_dict"]} == trainable | buffers
    summary = read_json(result.run_dir / "model_summary.json")
    metrics = read_json(result.run_dir / "metrics.json")
    assert summary["trainable_parameters"] == metrics["parameters"]["trainable"] == sum(
        p.numel() for n, p in network.named_parameters() if p.requires_grad)
    assert 0 < metrics["parameters"]["trainable_percent"] < 100
    assert summary["peft"]["modules_to_save"] == HEADS.get(task, [])


@pytest.mark.parametrize("task", list(CASES))
def test_separate_adapters_save_small_and_load_back(task: str, trained: Callable[[str], Any]) -> None:
    model, result, base_dir = trained(task)
    files = {p.name for p in result.model_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json", "texttune.json"} <= files
    assert "model.safetensors" not in files
    meta = read_json(result.model_dir / "texttune.json")
    assert meta["peft"]["merged"] is False and meta["peft"]["base_model"] == str(base_dir.resolve())
    adapters = load_file(result.model_dir / "adapter_model.safetensors")
    heads = tuple(f".{name}." for name in meta["peft"]["modules_to_save"])
    assert adapters and all("lora_" in k or any(h in k for h in heads) for k in adapters)
    assert any(h in k for k in adapters for h in heads) == bool(heads)  # the trained head is saved with the adapters
    again = texttune.load(result.run_dir)
    assert type(again) is type(model) and again.backbone.peft is None  # merged at load: plain inference
    # Every weight, the trained head's included, is what merging the trained model in memory gives.
    expected = copy.deepcopy(model.backbone.peft).merge_and_unload().state_dict()
    loaded = again.backbone.model.state_dict()
    assert expected.keys() == loaded.keys()
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())
    inputs = CASES[task][3]
    if inputs:
        assert len(again.predict(inputs)) == len(inputs)


def test_separate_adapters_load_in_the_dtype_asked_for(trained: Callable[[str], Any]) -> None:
    _, result, _ = trained("token-classification")
    again = texttune.load(result.run_dir, device="cpu", dtype="bfloat16")  # backbone read in bfloat16, adapters merged
    assert {(p.device.type, p.dtype) for p in again.backbone.model.parameters()} == {("cpu", torch.bfloat16)}
    assert len(again.predict([["John", "lives", "in", "Paris"]])[0]["tags"]) == 4


def test_merged_and_separate_saves_predict_the_same(trained: Callable[[str], Any], tiny_model_dir: Callable[[str], Path],
                                                    tmp_path: Path) -> None:
    # The same seeded run twice, saving merged (the default) and separate adapters: the same outputs either way.
    separate = trained("summarization")[1]
    kind, build, data, inputs = CASES["summarization"]
    merged_model = build(str(tiny_model_dir(kind)))
    merged = merged_model.fit(train=data, output_dir=tmp_path / "merged", max_steps=2, batch_size=4,
                              options={"merge_adapters": True})
    files = {p.name for p in merged.model_dir.iterdir()}
    assert "model.safetensors" in files and "adapter_config.json" not in files
    assert read_json(merged.model_dir / "texttune.json")["peft"]["merged"] is True
    weights = load_file(merged.model_dir / "model.safetensors")
    assert not any("lora_" in k or "base_layer" in k for k in weights)  # a plain model for any tool
    texts = inputs + ["Disk usage grew after the logs were rotated.", "The package was removed from testing."]
    assert texttune.load(merged.run_dir).predict(texts) == texttune.load(separate.run_dir).predict(texts)
    assert merged_model.predict(texts) == texttune.load(merged.run_dir).predict(texts)


def test_api_save_keeps_adapters_separate_and_serve_reads_them(trained: Callable[[str], Any], tmp_path: Path,
                                                               ready_client: Callable[..., Any]) -> None:
    from texttune.api import load
    from texttune.config import serve_config
    from texttune.serving import ModelPredictor, create_app

    model, _, _ = trained("token-classification")
    saved = model.save(tmp_path / "tagger")
    assert (saved / "adapter_model.safetensors").is_file() and not (saved / "model.safetensors").exists()
    text = "John lives in Paris"
    expected = texttune.load(saved).predict([text])
    app = create_app(config=serve_config({}), load=lambda: ModelPredictor(saved, load=load))
    with ready_client(app) as client:
        response = client.post("/v1/predict", json={"inputs": [text]})
        assert response.status_code == 200, response.text
        assert response.json()["outputs"] == expected


def test_adapter_dirs_refuse_what_needs_full_weights(trained: Callable[[str], Any], tmp_path: Path) -> None:
    import shutil

    from texttune.inference.ct2_export import export

    _, result, _ = trained("causal-lm")
    copy = shutil.copytree(result.model_dir, tmp_path / "model")
    meta = read_json(copy / "texttune.json")
    meta["peft"]["base_model"] = str(tmp_path / "gone")
    (copy / "texttune.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(BackboneError, match="LoRA adapters for backbone .*gone"):
        texttune.load(copy)
    with pytest.raises(ConfigError, match="LoRA adapters"):
        texttune.load(result.model_dir, backend="ctranslate2")
    with pytest.raises(ConfigError, match="holds LoRA adapters, not a full model"):
        export(result.model_dir, output=tmp_path / "ct2")
    full = texttune.load(result.model_dir).save(tmp_path / "full")  # the way out the message names
    assert (full / "model.safetensors").is_file() and "peft" not in read_json(full / "texttune.json")


# --------------------------------------------------------------------------- resume and gradient checkpointing


def _train_llama(tiny: Path, out: Path, steps: int, *extra: str) -> dict[str, torch.Tensor]:
    code = main(["-q", "train", "summarization", "--train-file", str(DATA / "summarization.jsonl"),
                 "--validation-file", str(DATA / "summarization-val.jsonl"), "--backbone", str(tiny),
                 "--max-steps", str(steps), "--batch-size", "4", "--max-eval-samples", "2", "--no-baselines",
                 "--no-progress-bar", "--no-tensorboard", "--max-source-length", "48", "--max-target-length", "8",
                 "--peft", "lora", "--lora-dropout", "0", "--no-merge-adapters",
                 "--output-dir", str(out), *extra])
    assert code == 0
    return load_file(out / "model" / "adapter_model.safetensors")


def test_trimmed_checkpoints_load_back_and_wrong_ones_fail(trained: Callable[[str], Any]) -> None:
    # What the best-checkpoint restore and --resume do with a LoRA checkpoint (TextModule.load_state_dict).
    from texttune.config import GenerationConfig, TrainConfig
    from texttune.engine.module import TextModule

    model, _, _ = trained("causal-lm")
    module = TextModule(model=model.backbone.model, task=model.task, train_config=TrainConfig(),
                        generation=GenerationConfig(), eval_rows=None)
    checkpoint = {"state_dict": {k: v.clone() for k, v in module.state_dict().items()}}
    module.on_save_checkpoint(checkpoint)
    saved = checkpoint["state_dict"]
    assert saved and all("lora_" in k for k in saved)
    adapter = next(p for n, p in module.named_parameters() if "lora_B" in n)
    with torch.no_grad():
        adapter.add_(1.0)
    module.load_state_dict(saved)
    assert all(torch.equal(module.state_dict()[k], v) for k, v in saved.items())  # the adapters are back
    with pytest.raises(RuntimeError, match="missing"):
        module.load_state_dict({k: v for k, v in saved.items() if k != next(iter(saved))})
    with pytest.raises(RuntimeError, match="unexpected"):
        module.load_state_dict({**saved, "model.not_a_weight": torch.zeros(1)})


def _with_callback(trainer: Any, callback: Any) -> Any:
    trainer.callbacks.append(callback)
    return trainer


def test_resume_and_gradient_checkpointing_reach_the_same_adapters(tiny_model_dir: Callable[[str], Path], tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Llama has no dropout and LoRA dropout is 0: a correct resume, and checkpointing (same maths, recomputed),
    # must end at the same adapter weights as one straight run.
    from lightning.pytorch.callbacks import Callback

    from texttune.engine import finetune

    class InterruptAt2(Callback):  # Ctrl-C after 2 of the 4 steps
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if trainer.global_step == 2:
                raise KeyboardInterrupt

    tiny = tiny_model_dir("llama")
    straight = _train_llama(tiny, tmp_path / "straight", 4)
    real_trainer = finetune._trainer
    monkeypatch.setattr(finetune, "_trainer", lambda *a, **k: _with_callback(real_trainer(*a, **k), InterruptAt2()))
    with pytest.raises(AssertionError):  # the CLI exits 2: interrupted, continue with --resume
        _train_llama(tiny, tmp_path / "split", 4)
    monkeypatch.setattr(finetune, "_trainer", real_trainer)
    first_half = torch.load(tmp_path / "split" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert first_half["global_step"] == 2 and all("lora_" in k for k in first_half["state_dict"])
    resumed = _train_llama(tiny, tmp_path / "split", 4, "--resume", "latest")
    assert read_json(tmp_path / "split" / "metrics.json")["steps"] == 4
    checkpointed = _train_llama(tiny, tmp_path / "gc", 4, "--gradient-checkpointing")
    assert read_json(tmp_path / "gc" / "model_summary.json")["gradient_checkpointing"] is True
    assert straight.keys() == resumed.keys() == checkpointed.keys()
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=1e-6)
        torch.testing.assert_close(checkpointed[key], value, rtol=1e-4, atol=1e-6)
    assert any(v.abs().sum() > 0 for k, v in straight.items() if "lora_B" in k)


def test_gradient_checkpointing_without_lora_trains_everything(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    task = api.Summarization(backbone=str(tiny_model_dir("t5")), options={
        "gradient_checkpointing": True, "baselines": False, "progress_bar": False, "tensorboard": False,
        "max_eval_samples": 2, "max_source_length": 48, "max_target_length": 8})
    result = task.fit(train=DATA / "summarization.jsonl", output_dir=out, max_steps=2, batch_size=4)
    summary = read_json(out / "model_summary.json")
    assert summary["gradient_checkpointing"] is True and "peft" not in summary
    assert summary["trainable_parameters"] == summary["parameters"]
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert len(checkpoint["state_dict"]) == len(task.backbone.model.state_dict())  # nothing trimmed
    assert not is_checkpointing(task.backbone.model)  # switched off before saving
    assert result.metrics["fine_tuned"]["gen_len"] > 0


# --------------------------------------------------------------------------- options


def test_lora_options_are_checked(cli: Callable[..., tuple[int, str, str]], tiny_model_dir: Callable[[str], Path],
                                  tmp_path: Path) -> None:
    def base(name: str) -> list[Any]:
        return ["-q", "train", "summarization", "--train-file", DATA / "summarization.jsonl", "--backbone",
                tiny_model_dir("t5"), "--output-dir", tmp_path / name, "--max-steps", "1"]

    code, _, err = cli(*base("a"), "--lora-rank", "4")
    assert code != 0 and "'lora_rank' applies to LoRA fine-tuning; add --peft lora" in err
    code, _, err = cli(*base("b"), "--peft", "lora", "--lora-rank", "0")
    assert code != 0 and "'lora_rank' must be > 0" in err
    code, _, err = cli(*base("c"), "--peft", "lora", "--lora-target-modules", "nope", "--no-baselines")
    assert code != 0 and "LoRA cannot adapt this backbone" in err and "its linear layers are named" in err
    code, _, err = cli(*base("d"), "--peft", "lora", "--lora-modules-to-save", "nope", "--no-baselines")
    assert code != 0 and "no layer named 'nope'" in err
    assert "Traceback" not in err


def test_default_targets_per_family() -> None:
    from transformers import AutoConfig, BertConfig, EncoderDecoderConfig

    from texttune.backbones.adapters import default_targets

    assert default_targets(AutoConfig.for_model("t5")) == ["q", "v"]
    assert default_targets(AutoConfig.for_model("bart")) == ["q_proj", "v_proj"]
    assert default_targets(AutoConfig.for_model("marian")) == ["q_proj", "v_proj"]
    assert default_targets(AutoConfig.for_model("llama")) == ["q_proj", "v_proj"]
    assert default_targets(AutoConfig.for_model("gpt2")) == ["c_attn"]
    assert default_targets(AutoConfig.for_model("bert")) == ["query", "value"]
    bert2bert = EncoderDecoderConfig.from_encoder_decoder_configs(BertConfig(), BertConfig(is_decoder=True))
    assert default_targets(bert2bert) == ["query", "value"]
    with pytest.raises(ConfigError, match="--lora-target-modules"):
        default_targets(AutoConfig.for_model("ctrl"))
