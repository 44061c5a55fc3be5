"""Where a saved model runs and in which floating-point type: ``--device`` and ``--dtype`` resolved.

Pure functions of what torch reports about the machine, so the rules can be tested
on any machine by faking torch's answers. ``auto`` picks the accelerator when there
is one (a CUDA GPU, else Apple's MPS, else the CPU) and bfloat16 where the GPU has
it natively (float32 elsewhere: on a CPU bfloat16 is slower for most operations,
and float16 can overflow). A request the machine or the model cannot honour is a
one-line :class:`~texttune.errors.ConfigError` saying what to use instead, never a
silent fallback: a server asked for ``cuda:1`` must not quietly run on the CPU.

The syntax check (:func:`parse_device`) is separate from the resolution so the
options can be checked before torch is imported. CTranslate2 maps the same values
to its own devices (``ct2_backend.ct2_device``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from texttune.backbones.backbone import T5_STYLE
from texttune.config import DTYPES
from texttune.errors import ConfigError, choices

if TYPE_CHECKING:
    import torch

DEVICE_FORMS = "auto, cpu, cuda, cuda:N (N = 0, 1, ...), mps"
_DEVICE = re.compile(r"(auto|cpu|cuda|mps)(?::(\d+))?")


def parse_device(spec: str | None) -> tuple[str, int | None]:
    """(``auto``/``cpu``/``cuda``/``mps``, the CUDA index or None) of a ``--device`` value; None means auto."""
    text = "auto" if spec is None else str(spec).strip().lower()
    match = _DEVICE.fullmatch(text)
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise ConfigError(f"option 'device' got {spec!r}; valid: {DEVICE_FORMS}")
    return match.group(1), None if match.group(2) is None else int(match.group(2))


def normalize_device(spec: str | None) -> str | None:
    """``spec`` checked and written the one way (``"CUDA:1 "`` -> ``"cuda:1"``); None stays None."""
    if spec is None:
        return None
    kind, index = parse_device(spec)
    return kind if index is None else f"{kind}:{index}"


def check_dtype(spec: str | None) -> None:
    """ConfigError naming the valid choices unless ``spec`` is None or one of :data:`texttune.config.DTYPES`."""
    if spec is not None and spec not in DTYPES:
        raise ConfigError(f"option 'dtype' got {spec!r}; valid choices: {choices(DTYPES)}")


def resolve_device(spec: str | None) -> torch.device:
    """The torch device ``spec`` names on this machine; ConfigError when it is not there."""
    import torch

    kind, index = parse_device(spec)
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not _mps_available():
            raise ConfigError("--device mps: no Apple GPU (MPS) is available on this machine; use --device cpu")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {spec}: no CUDA GPU is available ({_no_cuda_reason()}); use --device cpu")
    count = torch.cuda.device_count()
    if (index or 0) >= count:
        plural = "device" if count == 1 else "devices"
        raise ConfigError(f"--device {spec}: this machine has {count} CUDA {plural} "
                          f"({', '.join(f'cuda:{i}' for i in range(count))})")
    return torch.device("cuda", index or 0)


def resolve_dtype(spec: str | None, *, device: torch.device, model_type: str | None) -> torch.dtype:
    """The torch dtype ``spec`` names for a ``model_type`` model on ``device``; ConfigError when it would fail.

    float16 is refused on the CPU (torch runs it slowly or not at all there) and for the
    T5 family, whose activations overflow float16's range (training refuses 16-mixed for
    the same reason); bfloat16 has float32's range and is the half-size type for both.
    """
    import torch

    check_dtype(spec)
    name = spec or "auto"
    if name == "auto":
        native_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native_bf16 else torch.float32
    if name == "float16":
        if model_type in T5_STYLE:
            raise ConfigError(f"--dtype float16: {model_type} models (the T5 family) overflow in float16 and produce "
                              "NaN or garbage; use --dtype bfloat16 (or float32)")
        if device.type == "cpu":
            raise ConfigError("--dtype float16 needs a GPU (on the CPU torch runs it slowly or not at all); "
                              "use --dtype bfloat16 or float32")
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``: what ``--dtype`` and ``GET /v1/model`` call it."""
    return str(dtype).removeprefix("torch.")


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _no_cuda_reason() -> str:
    import torch

    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return f"torch {torch.__version__} was built without CUDA"
    return "no device is visible: check the driver, nvidia-smi and CUDA_VISIBLE_DEVICES"
