"""Optional features and the extra that installs each: ``pip install 'texttune[serve]'``...

Features few users need are extras, so a plain install stays small: the HTTP server (``serve``:
FastAPI, uvicorn, the Prometheus client), plots (``plots``: matplotlib), CTranslate2 (``ct2``), ONNX export (``onnx``),
MLflow logging (``mlflow``). A feature whose packages are missing says so in one line naming the
extra, instead of an ImportError from deep inside.
"""

from __future__ import annotations

import importlib.util

from texttune.errors import ConfigError

#: extra -> the modules it provides (import names).
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("fastapi", "uvicorn", "prometheus_client"),
    "plots": ("matplotlib",),
    "ct2": ("ctranslate2",),
    "onnx": ("onnxruntime", "onnx", "onnxscript"),
    "mlflow": ("mlflow",),
}


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    gone = []
    for module in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules (tests), or a broken install
            found = False
        if not found:
            gone.append(module)
    return gone


def require(extra: str, *, what: str) -> None:
    """ConfigError naming the extra when ``what`` (a command or option) lacks any of its packages."""
    gone = missing(extra)
    if gone:
        raise ConfigError(f"{what} needs the optional packages of texttune[{extra}] ({', '.join(gone)} not installed): "
                          f"pip install 'texttune[{extra}]'")
