"""--device and --dtype: resolution and refusals on simulated machines (torch's answers faked), CTranslate2's mapping,
the options' checks, and the server's default batch size per device. Runs on any machine, GPU or not."""

from __future__ import annotations

from dataclasses import fields
from types import SimpleNamespace

import pytest
import torch

from texttune.config import ServeConfig, serve_config
from texttune.errors import ConfigError
from texttune.inference import ct2_backend
from texttune.inference.device import dtype_name, normalize_device, parse_device, resolve_device, resolve_dtype
from texttune.inference.options import InferenceConfig, inference_config
from texttune.serving.batcher import default_batch_size


def machine(monkeypatch: pytest.MonkeyPatch, *, gpus: int = 0, bf16: bool = False, mps: bool = False,
            cuda_build: str | None = "12.4") -> None:
    """Make torch report a machine with ``gpus`` CUDA devices (bf16-capable or not) and MPS or not."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    monkeypatch.setattr(torch.version, "cuda", cuda_build)


@pytest.mark.parametrize(("gpus", "mps", "expected"), [(0, False, "cpu"), (2, False, "cuda:0"), (0, True, "mps"),
                                                       (1, True, "cuda:0")])
def test_auto_picks_the_accelerator(monkeypatch: pytest.MonkeyPatch, gpus: int, mps: bool, expected: str) -> None:
    machine(monkeypatch, gpus=gpus, mps=mps)
    assert str(resolve_device(None)) == expected
    assert str(resolve_device("auto")) == expected


def test_explicit_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, gpus=2, mps=False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device(" CUDA:1 ") == torch.device("cuda", 1)


def test_a_device_that_is_not_there_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, gpus=1)
    with pytest.raises(ConfigError, match=r"^--device cuda:1: this machine has 1 CUDA device \(cuda:0\)$"):
        resolve_device("cuda:1")
    machine(monkeypatch, gpus=2)
    with pytest.raises(ConfigError, match=r"has 2 CUDA devices \(cuda:0, cuda:1\)"):
        resolve_device("cuda:2")
    machine(monkeypatch, gpus=0, cuda_build=None)
    with pytest.raises(ConfigError, match=r"no CUDA GPU is available \(torch .* was built without CUDA\); use --device cpu"):
        resolve_device("cuda")
    machine(monkeypatch, gpus=0, cuda_build="12.4")
    with pytest.raises(ConfigError, match=r"no CUDA GPU is available \(no device is visible.*CUDA_VISIBLE_DEVICES\)"):
        resolve_device("cuda:0")
    with pytest.raises(ConfigError, match=r"--device mps: no Apple GPU \(MPS\).*use --device cpu"):
        resolve_device("mps")


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "cuda:x", "cpu:0", "mps:1", "cuda:-1", "", "0"])
def test_a_malformed_device_names_the_valid_forms(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"option 'device' got .*; valid: auto, cpu, cuda, cuda:N .*, mps"):
        parse_device(bad)
    with pytest.raises(ConfigError, match="option 'device'"):
        inference_config(device=bad)


def test_device_values_are_written_one_way() -> None:
    assert normalize_device(None) is None
    assert normalize_device("CUDA:3") == "cuda:3" and normalize_device("Auto") == "auto"
    assert inference_config(device="Cuda").device == "cuda"


@pytest.mark.parametrize(("device", "bf16", "expected"), [("cuda", True, torch.bfloat16), ("cuda", False, torch.float32),
                                                          ("cpu", True, torch.float32), ("mps", True, torch.float32)])
def test_auto_dtype(monkeypatch: pytest.MonkeyPatch, device: str, bf16: bool, expected: torch.dtype) -> None:
    machine(monkeypatch, gpus=1, bf16=bf16)
    assert resolve_dtype(None, device=torch.device(device), model_type="llama") == expected
    assert resolve_dtype("auto", device=torch.device(device), model_type="t5") == expected


def test_explicit_dtypes() -> None:
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert resolve_dtype("float16", device=cuda, model_type="llama") == torch.float16
    assert resolve_dtype("float16", device=torch.device("mps"), model_type="bert") == torch.float16
    assert resolve_dtype("bfloat16", device=cpu, model_type="t5") == torch.bfloat16
    assert resolve_dtype("float32", device=cuda, model_type=None) == torch.float32
    assert dtype_name(torch.bfloat16) == "bfloat16"


@pytest.mark.parametrize("model_type", ["t5", "mt5", "umt5", "longt5"])
def test_float16_is_refused_for_t5_models(model_type: str) -> None:
    with pytest.raises(ConfigError, match=f"--dtype float16: {model_type} models .*overflow.*use --dtype bfloat16"):
        resolve_dtype("float16", device=torch.device("cuda", 0), model_type=model_type)


def test_float16_is_refused_on_the_cpu() -> None:
    with pytest.raises(ConfigError, match=r"--dtype float16 needs a GPU.*use --dtype bfloat16 or float32"):
        resolve_dtype("float16", device=torch.device("cpu"), model_type="llama")


def test_a_bad_dtype_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="option 'dtype' got 'half'; valid choices: 'auto', 'bfloat16', 'float16', 'float32'"):
        inference_config(dtype="half")
    with pytest.raises(ConfigError, match="option 'dtype' got 'fp16'"):
        resolve_dtype("fp16", device=torch.device("cpu"), model_type=None)


def test_dtype_with_ctranslate2_points_to_compute_type() -> None:
    with pytest.raises(ConfigError, match="--dtype applies to the transformers backend.*--compute-type"):
        inference_config(backend="ctranslate2", dtype="float16")
    assert inference_config(backend="ctranslate2", dtype="auto").dtype == "auto"  # the default, spelled out


@pytest.fixture
def ct2_gpus(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """CTranslate2 reporting 2 CUDA devices (set ``count`` on the returned fake to change it)."""
    fake = SimpleNamespace(count=2)
    fake.get_cuda_device_count = lambda: fake.count
    monkeypatch.setattr(ct2_backend, "require_ctranslate2", lambda: fake)
    return fake


def test_ctranslate2_devices(ct2_gpus: SimpleNamespace) -> None:
    assert ct2_backend.ct2_device("cuda:1") == ("cuda", 1)
    assert ct2_backend.ct2_device("cuda") == ("cuda", 0)
    assert ct2_backend.ct2_device("cpu") == ("cpu", 0)
    assert ct2_backend.ct2_device(None) == ("cuda", 0)  # auto: today's rule, a GPU when CTranslate2 sees one
    with pytest.raises(ConfigError, match=r"--device cuda:2: CTranslate2 sees 2 CUDA devices \(cuda:0, cuda:1\)"):
        ct2_backend.ct2_device("cuda:2")
    with pytest.raises(ConfigError, match=r"--device mps: CTranslate2 cannot run on Apple GPUs \(MPS\)"):
        ct2_backend.ct2_device("mps")
    ct2_gpus.count = 0
    assert ct2_backend.ct2_device("auto") == ("cpu", 0)
    with pytest.raises(ConfigError, match="--device cuda: CTranslate2 sees no CUDA GPU.*use --device cpu"):
        ct2_backend.ct2_device("cuda")


def test_serve_and_inference_declare_the_same_options() -> None:
    """ServeConfig repeats InferenceConfig's fields (config.py cannot import inference): same type, default, choices."""
    serve = {f.name: f for f in fields(ServeConfig)}
    for f in fields(InferenceConfig):
        assert f.name in serve, f.name
        assert (serve[f.name].type, serve[f.name].default, serve[f.name].metadata["choices"]) == \
               (f.type, f.default, f.metadata["choices"]), f.name
    assert serve_config({"device": "cuda:1", "dtype": "bfloat16"}).device == "cuda:1"
    with pytest.raises(ConfigError, match="option 'dtype' got 'half'"):
        serve_config({"dtype": "half"})


def test_the_servers_default_batch_size_follows_the_device() -> None:
    assert default_batch_size("cpu") == default_batch_size(None) == default_batch_size("mps") == 16
    assert default_batch_size("cuda:1") == default_batch_size("cuda") == 64
    assert serve_config({}).max_batch_size is None and serve_config({"max_batch_size": 4}).max_batch_size == 4
