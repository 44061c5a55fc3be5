"""Shared pytest fixtures: an offline, isolated environment and tiny test models.

Why: tests must never reach a model hub (the CI machines have no network) and
must never write into the developer's real texttune home, and model-based
tests need small checkpoints that are built once per session rather than
downloaded. See ``tests/tiny_models.py`` for what each tiny model looks like.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

#: The only environment variables the test session sets (besides TEXTTUNE_HOME).
OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def _load_tiny_models() -> ModuleType:
    """Import ``tests/tiny_models.py`` whatever pytest's import mode is.

    Registered as ``tiny_models`` so test modules can also ``import tiny_models``.
    """
    existing = sys.modules.get("tiny_models")
    if existing is not None:
        return existing
    path = Path(__file__).with_name("tiny_models.py")
    spec = importlib.util.spec_from_file_location("tiny_models", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tiny_models"] = module
    spec.loader.exec_module(module)
    return module


tiny_models = _load_tiny_models()


def _patch_loaded_offline_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    """Also flip the offline flags of hub libraries imported before the fixture ran.

    ``huggingface_hub`` and ``datasets`` read HF_HUB_OFFLINE / HF_DATASETS_OFFLINE
    once, at import time; test modules collected earlier may already have
    imported them, so the environment variables alone would come too late.
    """
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None and hasattr(hub_constants, "HF_HUB_OFFLINE"):
        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
            if hasattr(datasets_config, name):
                monkeypatch.setattr(datasets_config, name, True)


@pytest.fixture(scope="session", autouse=True)
def texttune_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Run the whole session offline, with TEXTTUNE_HOME in a temporary folder.

    Everything is restored when the session ends. Yields the home folder so
    tests that need it can ask for ``texttune_home``; tests that need a private
    home should ``monkeypatch.setenv("TEXTTUNE_HOME", ...)`` themselves.
    """
    home = tmp_path_factory.mktemp("texttune-home")
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in OFFLINE_ENV.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("TEXTTUNE_HOME", str(home))
        _patch_loaded_offline_flags(monkeypatch)
        yield home


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Factory ``tiny_model_dir(kind) -> Path`` building each tiny model once per session.

    Kinds: ``tiny_models.KINDS`` (t5, bart, llama, llama-chat, bert2bert, bert).
    The directories are shared by all tests: treat them as read-only and copy
    one (``shutil.copytree``) before changing files in it.
    """
    built: dict[str, Path] = {}

    def factory(kind: str) -> Path:
        if kind not in built:
            if kind not in tiny_models.KINDS:
                raise ValueError(f"unknown tiny model kind {kind!r}; expected one of {tiny_models.KINDS}")
            built[kind] = tiny_models.build_tiny_model(kind, tmp_path_factory.mktemp(f"tiny-{kind}"))
        return built[kind]

    return factory


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``tmpfs(size="1m", read_only=False)``: a fresh tmpfs mount (a small or read-only disk); skips where mounting is not allowed."""
    mounted: list[Path] = []

    def mount(size: str = "1m", read_only: bool = False) -> Path:
        target = tmp_path / f"mount{len(mounted)}"
        target.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                              capture_output=True, text=True, check=False) if shutil.which("mount") else None
        if done is None or done.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() if done else 'no mount'}); needs CAP_SYS_ADMIN")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], check=False)


@pytest.fixture(scope="session")
def llama_cpp() -> ModuleType:
    """llama_cpp, or a skip; a failure in CI, whose `make install` builds it (the gguf extra)."""
    import os

    try:
        import llama_cpp as module
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("llama-cpp-python is not installed: pip install -e '.[gguf]'")
        pytest.skip("llama-cpp-python is not installed (pip install 'texttune[gguf]')")
    return module
