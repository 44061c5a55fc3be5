"""The shared atomic writes (``texttune/files.py``): complete or absent, never half-written, no temp left behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from texttune import files


class Boom(Exception):
    pass


def _leftovers(directory: Path) -> list[str]:
    """Hidden entries (temporary files and directories are named ``.<target>.tmp-XXXX``)."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_writes_create_parents_and_readable_files(tmp_path: Path) -> None:
    files.write_text(tmp_path / "a" / "b.txt", "héllo\n")
    files.write_bytes(tmp_path / "c.bin", b"\x00\x01")
    files.write_json(tmp_path / "d.json", {"x": [1, 2], "y": "é"})
    files.write_jsonl(tmp_path / "e.jsonl", [{"n": 1}, {"n": 2}])
    assert (tmp_path / "a" / "b.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\x01"
    assert files.read_json(tmp_path / "d.json") == {"x": [1, 2], "y": "é"}
    assert files.read_jsonl_records(tmp_path / "e.jsonl") == [{"n": 1}, {"n": 2}]
    assert (tmp_path / "c.bin").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "a") == []


def test_a_write_replaces_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    files.write_json(target, {"v": 1})
    files.write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 2} and _leftovers(tmp_path) == []


@pytest.mark.parametrize("mode", ["w", "wb"])
def test_a_failure_mid_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path, mode: str) -> None:
    target = tmp_path / "plot.png"
    target.write_bytes(b"old")
    with pytest.raises(Boom), files.atomic_file(target, mode) as handle:
        handle.write("half of the new" if mode == "w" else b"half of the new")
        handle.flush()
        assert [p.name for p in tmp_path.iterdir() if files.TEMP_MARK in p.name]  # written beside the target
        raise Boom
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_a_failed_rename_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "metrics.json"
    files.write_json(target, {"v": 1})

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        files.write_json(target, {"v": 2})
    assert files.read_json(target) == {"v": 1} and _leftovers(tmp_path) == []


def test_a_failure_without_an_old_file_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(Boom), files.atomic_file(tmp_path / "new.txt") as handle:
        handle.write("x")
        raise Boom
    assert list(tmp_path.iterdir()) == []


def test_append_jsonl_keeps_earlier_lines_and_the_reader_skips_a_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    files.append_jsonl(path, {"step": 1})
    files.append_jsonl(path, {"step": 2})
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"step": 3, "lo')  # a crash cut the last line
    assert files.read_jsonl_records(path) == [{"step": 1}, {"step": 2}]
    assert files.read_jsonl_records(tmp_path / "missing.jsonl") is None


# -- directories --------------------------------------------------------------------------------


def test_a_directory_is_published_whole(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "model"
    with files.atomic_directory(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".model" + files.TEMP_MARK)
        (tmp / "weights").write_bytes(b"w")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "tokenizer.json").write_text("{}")
        assert not target.exists()  # nothing at the final path until the block finishes
    assert (target / "weights").read_bytes() == b"w" and (target / "sub" / "tokenizer.json").is_file()
    assert target.stat().st_mode & 0o777 == 0o755
    assert _leftovers(target.parent) == []


def test_a_republished_directory_replaces_the_old_one_entirely(tmp_path: Path) -> None:
    target = tmp_path / "export"
    with files.atomic_directory(target) as tmp:
        (tmp / "old-only").write_text("1")
    with files.atomic_directory(target) as tmp:
        (tmp / "new").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["new"] and _leftovers(tmp_path) == []


def test_a_failed_directory_build_keeps_the_old_directory_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with files.atomic_directory(target) as tmp:
        (tmp / "weights").write_text("old")
    with pytest.raises(Boom), files.atomic_directory(target) as tmp:
        (tmp / "weights").write_text("new, but no tokenizer yet")
        raise Boom
    assert (target / "weights").read_text() == "old" and _leftovers(tmp_path) == []


def test_a_failed_first_build_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), files.atomic_directory(tmp_path / "model") as tmp:
        (tmp / "weights").write_text("half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rename_into_place_puts_the_old_directory_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "model"
    with files.atomic_directory(target) as tmp:
        (tmp / "weights").write_text("old")
    real = os.replace

    def refuse_new(src: str | Path, dst: str | Path) -> None:
        if files.TEMP_MARK in Path(src).name:
            raise OSError(13, "Permission denied")
        real(src, dst)

    monkeypatch.setattr(files.os, "replace", refuse_new)
    with pytest.raises(OSError, match="Permission denied"), files.atomic_directory(target) as tmp:
        (tmp / "weights").write_text("new")
    assert (target / "weights").read_text() == "old" and _leftovers(tmp_path) == []


def test_keep_existing_discards_the_new_build_when_another_finished_first(tmp_path: Path) -> None:
    target = tmp_path / "conversion"
    complete = lambda d: (d / "model.bin").is_file()  # noqa: E731
    with files.atomic_directory(target, keep_existing=complete) as tmp:
        (tmp / "model.bin").write_text("first")  # no existing directory: published
    with files.atomic_directory(target, keep_existing=complete) as tmp:
        (tmp / "model.bin").write_text("second")
    assert (target / "model.bin").read_text() == "first" and _leftovers(tmp_path) == []
    (target / "model.bin").unlink()  # an incomplete directory is replaced
    with files.atomic_directory(target, keep_existing=complete) as tmp:
        (tmp / "model.bin").write_text("third")
    assert (target / "model.bin").read_text() == "third"
