"""Atomic output: complete files with ordinary permissions, or nothing."""

from __future__ import annotations

import os
import stat

import pytest

from clvmodels._io import write_atomically, write_bytes_atomically, write_text_atomically


def test_file_appears_whole_with_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    write_atomically(target, lambda tmp: tmp.write_text("done"))
    assert target.read_text() == "done"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_failure_leaves_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def explode(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, explode)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_text_and_bytes_forms(tmp_path):
    assert write_text_atomically(tmp_path / "a.txt", "é\n").read_text(encoding="utf-8") == "é\n"
    assert write_bytes_atomically(tmp_path / "b.bin", b"\x00\xff").read_bytes() == b"\x00\xff"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_temporary_names_are_unique_and_never_clobber(tmp_path):
    target = tmp_path / "out.txt"
    # A file named like a fixed temporary name is someone else's: left alone.
    (tmp_path / "out.txt.tmp").write_text("not ours")
    seen = []

    def outer(tmp):
        seen.append(tmp)
        tmp.write_text("outer")
        # A second writer of the same target while the first is still writing.
        write_atomically(target, lambda inner: (seen.append(inner), inner.write_text("inner")))

    write_atomically(target, outer)
    assert seen[0] != seen[1] and all(p.parent == tmp_path for p in seen)
    assert target.read_text() == "outer"  # the last rename wins, whole
    assert (tmp_path / "out.txt.tmp").read_text() == "not ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "out.txt.tmp"]


def test_a_directory_is_not_replaced(tmp_path):
    with pytest.raises(IsADirectoryError, match="give a file name"):
        write_text_atomically(tmp_path, "x")
    assert list(tmp_path.iterdir()) == []
