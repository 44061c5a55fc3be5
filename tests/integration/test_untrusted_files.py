"""Loading a model someone sent you cannot run their code: pickles and custom code are refused, unopened.

Each attack file carries a real payload: unpickling it (or importing the custom
code) creates a marker file. ``test_the_payload_runs_when_unpickled`` proves the
payload works when loaded unsafely; every other test shows texttune refuses the
file with a clear message and the marker never appears. The suite runs with
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``, which turns every ``torch.load`` that does
not say ``weights_only=True`` itself into a full unpickle: a load path relying on
torch's default would run the payload here.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from texttune.errors import BackboneError
from run_files import assert_user_error

DATA = Path(__file__).resolve().parents[1] / "data"
Cli = Callable[..., tuple[int, str, str]]


class Payload:
    """Unpickling this runs ``exec``, which writes ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({self.marker!r}, 'w').write('the payload ran')",)


def poison(path: Path, marker: Path, tensors: dict[str, object] | None = None) -> Path:
    """Write a torch file at ``path``: ``tensors`` (a plausible state dict) plus the payload."""
    torch.save({**(tensors or {"weight": torch.zeros(2)}), "extra": Payload(marker)}, path)
    return path


@pytest.fixture(autouse=True)
def torch_unsafe_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "payload-ran"


@pytest.fixture
def pickled_model(t5_summarizer: Path, tmp_path: Path, marker: Path) -> Path:
    """A saved summarization model whose safetensors weights were swapped for a malicious pytorch_model.bin."""
    model_dir = Path(shutil.copytree(t5_summarizer, tmp_path / "pickled-model"))
    (model_dir / "model.safetensors").unlink()
    poison(model_dir / "pytorch_model.bin", marker)
    return model_dir


def test_the_payload_runs_when_unpickled(tmp_path: Path, marker: Path) -> None:
    """The control: a plain unpickle of the attack file runs the payload, so its absence below means refusal."""
    path = poison(tmp_path / "pytorch_model.bin", marker)
    torch.load(path, weights_only=False)
    assert marker.read_text() == "the payload ran"


# -- saved models: texttune.load, predict, evaluate, serve, export ----------------------------------
def test_load_refuses_pickled_weights(pickled_model: Path, marker: Path) -> None:
    from texttune.api import load

    with pytest.raises(BackboneError, match="no safetensors weights") as error:
        load(pickled_model)
    assert "pytorch_model.bin" in str(error.value) and "does not open" in str(error.value)
    assert not marker.exists()


def test_the_cli_commands_refuse_pickled_weights(pickled_model: Path, marker: Path, cli: Cli, tmp_path: Path) -> None:
    data = DATA / "summarization-val.jsonl"
    commands = {
        "predict": ["predict", pickled_model, "--input-file", data, "--output-file", tmp_path / "out.jsonl"],
        "evaluate": ["evaluate", pickled_model, "--data-file", data],
        "serve": ["serve", pickled_model, "--port", "0"],  # refused before it listens
        "export": ["export", pickled_model, "--format", "ctranslate2", "--output", tmp_path / "export"],
    }
    for name, argv in commands.items():
        code, out, err = cli(*argv)
        assert_user_error(code, err, "no safetensors weights", "pytorch_model.bin")
        assert not marker.exists(), name
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "export").exists()


def test_the_server_predictor_refuses_pickled_weights(pickled_model: Path, marker: Path) -> None:
    from texttune.api import load
    from texttune.serving import ModelPredictor

    with pytest.raises(BackboneError, match="pytorch_model.bin"):
        ModelPredictor(pickled_model, load=load)
    assert not marker.exists()


def test_pickles_beside_safetensors_are_never_opened(t5_summarizer: Path, tmp_path: Path, marker: Path) -> None:
    """Files a training framework leaves next to the weights (training_args.bin...) are not read at all."""
    from texttune.api import load

    model_dir = Path(shutil.copytree(t5_summarizer, tmp_path / "with-extras"))
    for name in ("pytorch_model.bin", "training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth",
                 "tokenizer.pkl", "trainer_state.pickle"):
        poison(model_dir / name, marker)
    expected = load(t5_summarizer).predict(["a tool to read files"], max_new_tokens=3)
    assert load(model_dir).predict(["a tool to read files"], max_new_tokens=3) == expected
    assert not marker.exists()


def _add_custom_code(model_dir: Path, marker: Path, config_file: str = "config.json") -> None:
    """Point ``auto_map`` at a module in the directory whose import writes the marker."""
    (model_dir / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('the custom code ran')\n"
                                       "from transformers import T5Config as EvilConfig, T5ForConditionalGeneration as EvilModel\n"
                                       "from transformers import PreTrainedTokenizerFast as EvilTokenizer\n")
    config = json.loads((model_dir / config_file).read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForSeq2SeqLM": "evil.EvilModel",
                          "AutoTokenizer": [None, "evil.EvilTokenizer"]}
    (model_dir / config_file).write_text(json.dumps(config))


@pytest.mark.parametrize("config_file", ["config.json", "tokenizer_config.json"])
def test_a_saved_model_with_custom_code_is_refused(t5_summarizer: Path, tmp_path: Path, marker: Path, cli: Cli,
                                                   config_file: str) -> None:
    from texttune.api import load

    model_dir = Path(shutil.copytree(t5_summarizer, tmp_path / "custom-code"))
    _add_custom_code(model_dir, marker, config_file)
    with pytest.raises(BackboneError, match="names custom Python code"):
        load(model_dir)
    code, _, err = cli("serve", model_dir, "--port", "0")
    assert_user_error(code, err, config_file, "never runs code")
    assert not marker.exists()


# -- backbones (training) ---------------------------------------------------------------------------
@pytest.fixture
def pickled_backbone(tiny_model_dir: Callable[[str], Path], tmp_path: Path, marker: Path) -> Path:
    """The tiny T5 backbone with its weights as a malicious pytorch_model.bin (real tensors plus the payload)."""
    from safetensors.torch import load_file

    backbone = Path(shutil.copytree(tiny_model_dir("t5"), tmp_path / "pickled-backbone"))
    tensors = load_file(backbone / "model.safetensors")
    (backbone / "model.safetensors").unlink()
    poison(backbone / "pytorch_model.bin", marker, tensors)
    return backbone


def test_a_pickled_backbone_is_refused(pickled_backbone: Path, marker: Path, cli: Cli, tmp_path: Path) -> None:
    """transformers reads .bin backbones with torch.load(weights_only=True): tensors pass, the payload does not."""
    from texttune.backbones import load_backbone

    with pytest.raises(BackboneError, match="hold Python objects"):
        load_backbone(str(pickled_backbone), auto_class="AutoModelForSeq2SeqLM")
    code, _, err = cli("-q", "train", "summarization", "--backbone", pickled_backbone, "--train-file",
                       DATA / "summarization.jsonl", "--output-dir", tmp_path / "run", "--max-steps", "1",
                       "--no-progress-bar")
    assert_user_error(code, err, "does not unpickle")
    assert not marker.exists()


def test_a_backbone_with_plain_pickled_tensors_loads(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    """Refusal is about objects, not the format: a .bin holding only tensors is a usable backbone."""
    from safetensors.torch import load_file

    from texttune.backbones import load_backbone

    backbone = Path(shutil.copytree(tiny_model_dir("t5"), tmp_path / "bin-backbone"))
    tensors = load_file(backbone / "model.safetensors")
    (backbone / "model.safetensors").unlink()
    torch.save(tensors, backbone / "pytorch_model.bin")
    model = load_backbone(str(backbone), auto_class="AutoModelForSeq2SeqLM").model
    assert torch.equal(model.shared.weight, tensors["shared.weight"])


def test_backbone_custom_code_is_never_imported_without_the_flag(tiny_model_dir: Callable[[str], Path], tmp_path: Path,
                                                                 marker: Path) -> None:
    """``auto_map`` in a backbone: a built-in architecture loads as itself, an unknown one needs --trust-remote-code."""
    from texttune.backbones import load_backbone

    backbone = Path(shutil.copytree(tiny_model_dir("t5"), tmp_path / "custom-backbone"))
    _add_custom_code(backbone, marker)
    model = load_backbone(str(backbone), auto_class="AutoModelForSeq2SeqLM").model
    assert type(model).__name__ == "T5ForConditionalGeneration" and not marker.exists()
    config = json.loads((backbone / "config.json").read_text())
    (backbone / "config.json").write_text(json.dumps({**config, "model_type": "texttune-custom"}))
    with pytest.raises(BackboneError, match="trust_remote_code=True"):
        load_backbone(str(backbone), auto_class="AutoModelForSeq2SeqLM")
    assert not marker.exists()


# -- checkpoints (--resume) -------------------------------------------------------------------------
def test_resume_refuses_a_checkpoint_with_objects(tiny_model_dir: Callable[[str], Path], tmp_path: Path, marker: Path,
                                                  cli: Cli) -> None:
    """A real last.ckpt with one object added: --resume refuses it and runs nothing from it."""
    run = tmp_path / "run"
    argv = ["-q", "train", "summarization", "--backbone", tiny_model_dir("t5"), "--train-file",
            DATA / "summarization.jsonl", "--output-dir", run, "--batch-size", "4", "--max-eval-samples", "4",
            "--no-baselines", "--no-progress-bar"]
    code, _, err = cli(*argv, "--max-steps", "2")
    assert code == 0, err
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)  # texttune's own checkpoints are plain data
    poison(last, marker, checkpoint)
    code, _, err = cli(*argv, "--max-steps", "4", "--resume", "latest")
    assert code == 2 and "Traceback" not in err, err
    assert "cannot resume from" in err and "does not unpickle" in err, err
    assert not marker.exists()

