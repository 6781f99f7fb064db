"""Atomic output: complete files with ordinary permissions, or nothing."""

from __future__ import annotations

import os
import stat

import pytest

from clvmodels._io import write_atomically


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
