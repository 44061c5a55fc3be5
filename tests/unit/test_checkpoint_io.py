"""Atomic checkpoint writes, disk-full handling and the output-directory preflight checks.

Where the machine allows it (root with CAP_SYS_ADMIN, as in CI containers), a real
tiny tmpfs gives a real ENOSPC and a real read-only file system; elsewhere those
tests skip and the simulated ones still run.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from texttune.engine import checkpoint_io, preflight
from texttune.engine.checkpoint_io import AtomicCheckpointIO, CheckpointWriteError, remove_stale_temp_files, write_atomically
from texttune.errors import ConfigError


def _checkpoint(floats: int) -> dict[str, Any]:
    return {"global_step": floats, "state_dict": {"w": torch.arange(floats, dtype=torch.float32)}}


def test_save_replaces_the_file_whole_and_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(checkpoint_io.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint(_checkpoint(10), path)
    io.save_checkpoint(_checkpoint(20), path)
    assert torch.equal(io.load_checkpoint(path)["state_dict"]["w"], torch.arange(20, dtype=torch.float32))
    assert len(synced) == 4  # the file and its directory, per save
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_a_write_that_dies_half_way_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(_checkpoint(10), path)

    def half_then_fail(handle: Any) -> None:
        handle.write(b"PK\x03\x04 half a zip")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        write_atomically(path, half_then_fail)
    assert torch.load(path, weights_only=True)["global_step"] == 10
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_stale_temp_files_from_a_killed_write_are_removed_on_load(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(_checkpoint(3), path)
    stale = [tmp_path / ".last.ckpt.tmp-abc123", tmp_path / ".best.ckpt.tmp-x", tmp_path / ".last.ckpt.link-4242"]
    for file in stale:
        file.write_bytes(b"half")
    (tmp_path / "notes.txt").write_text("kept")
    assert AtomicCheckpointIO().load_checkpoint(path)["global_step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "notes.txt"]
    assert remove_stale_temp_files(tmp_path) == []


def test_disk_full_during_a_write_is_a_clear_error_and_the_old_checkpoint_survives(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(_checkpoint(10), path)

    def full(handle: Any) -> None:
        handle.write(b"some bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(CheckpointWriteError, match="no space left .* previous last.ckpt is intact.*--resume latest"):
        write_atomically(path, full)
    assert torch.load(path, weights_only=True)["global_step"] == 10
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_real_full_disk_during_a_checkpoint_write(tmpfs: Callable[..., Path]) -> None:
    disk = tmpfs("1m")
    path = disk / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(_checkpoint(1000), path)  # 4 KB
    with pytest.raises(CheckpointWriteError, match=f"no space left on the device holding {path.parent}") as caught:
        io.save_checkpoint(_checkpoint(300_000), path)  # 1.2 MB: cannot fit in 1 MB
    assert "bytes free" in str(caught.value) and "previous last.ckpt is intact" in str(caught.value)
    assert torch.load(path, weights_only=True)["global_step"] == 1000
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_output_directory_probe(tmp_path: Path) -> None:
    preflight.check_writable(tmp_path / "new" / "run")
    assert list((tmp_path / "new" / "run").iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        preflight.check_writable(tmp_path / "file")


def test_read_only_output_directory_is_refused(tmp_path: Path, tmpfs: Callable[..., Path]) -> None:
    if os.geteuid() != 0:  # chmod stops a normal user; root needs a read-only mount
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
    else:
        locked = tmpfs("1m", read_only=True)
    try:
        with pytest.raises(ConfigError, match=f"output directory {locked / 'run'} is not writable"):
            preflight.check_writable(locked / "run")
    finally:
        if os.geteuid() != 0:
            locked.chmod(0o700)


def test_a_failing_probe_write_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: Any, **kwargs: Any) -> int:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(preflight.os, "open", denied)
    with pytest.raises(ConfigError, match=f"output directory {tmp_path} is not writable \\(Permission denied\\)"):
        preflight.check_writable(tmp_path)


def _usage(free: int) -> Any:
    return lambda path: SimpleNamespace(total=10 * free, used=9 * free, free=free)


def test_too_little_free_space_is_refused_naming_directory_needed_and_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = torch.nn.Linear(100, 100)  # 10,100 float32 weights: 40,400 bytes, +80,800 of AdamW state
    one = preflight.checkpoint_bytes(model)
    assert one == 10_100 * 4 + 10_100 * 8
    model.weight.requires_grad_(False)  # frozen (LoRA's backbone): not in checkpoints, no optimizer state
    assert preflight.checkpoint_bytes(model) == 100 * (4 + 8)
    model.weight.requires_grad_(True)
    monkeypatch.setattr(preflight.shutil, "disk_usage", _usage(2 * one))
    with pytest.raises(ConfigError) as caught:
        preflight.check_free_space(tmp_path, model=model)
    message = str(caught.value)
    assert str(tmp_path) in message and f"{3 * one:,} bytes) needed" in message and f"{2 * one:,} bytes) free" in message
    monkeypatch.setattr(preflight.shutil, "disk_usage", _usage(3 * one))
    assert preflight.check_free_space(tmp_path, model=model) == 3 * one
    # Resuming: the checkpoints already there are replaced in place, so they count as available room.
    (tmp_path / "last.ckpt").write_bytes(b"x" * one)
    monkeypatch.setattr(preflight.shutil, "disk_usage", _usage(2 * one))
    assert preflight.check_free_space(tmp_path, model=model) == 2 * one


def test_checkpoint_size_estimate_is_close_to_a_real_checkpoint(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.LayerNorm(256), torch.nn.Linear(256, 64))
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 256)).sum().backward()
    optimizer.step()
    path = tmp_path / "real.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": model.state_dict(), "optimizer_states": [optimizer.state_dict()]}, path)
    estimate, real = preflight.checkpoint_bytes(model), path.stat().st_size
    assert 0.9 * real <= estimate <= 1.1 * real, (estimate, real)


# Periodic checkpoints (by steps, by training time, never just before an evaluation): tests/unit/test_resumable_hook.py.
