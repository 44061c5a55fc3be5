"""Optional features name their extra when its packages are missing (issue 22: texttune[serve], [plots]...)."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

import pytest

from texttune.errors import ConfigError
from texttune.extras import EXTRAS, missing, require


def _hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``modules`` unimportable (None in sys.modules), and forget texttune.serving so it is imported afresh."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)
    for name in [m for m in sys.modules if m == "texttune.serving" or m.startswith("texttune.serving.")]:
        monkeypatch.delitem(sys.modules, name)


def test_every_extra_is_installed_here_and_a_hidden_one_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert all(not missing(extra) for extra in ("serve", "plots", "ct2"))  # make install puts them in
    assert set(EXTRAS) >= {"serve", "plots", "ct2", "mlflow"}
    _hide(monkeypatch, "uvicorn")
    assert missing("serve") == ["uvicorn"]
    with pytest.raises(ConfigError, match=r"^texttune serve needs the optional packages of texttune\[serve\] \(uvicorn "
                                          r"not installed\): pip install 'texttune\[serve\]'$"):
        require("serve", what="texttune serve")


def test_the_server_without_its_extra_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    from texttune.cli.main import main

    _hide(monkeypatch, "fastapi")
    with pytest.raises(ConfigError, match=r"texttune\[serve\]"):
        importlib.import_module("texttune.serving")
    assert main(["serve", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'texttune[serve]'" in err and "fastapi" in err


def test_plots_are_skipped_with_the_extra_named(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                                tmp_path: Path) -> None:
    from texttune.runs.plots import write_plots

    _hide(monkeypatch, "matplotlib")
    with caplog.at_level(logging.WARNING):
        assert write_plots(tmp_path) == []
    assert "pip install 'texttune[plots]'" in caplog.text
