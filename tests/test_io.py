"""Atomic output: complete files with ordinary permissions, or nothing."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from clvmodels import BetaGeo, _io, load
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


# --------------------------------------------------------------------------------------
# Folders, parents that are files, long names
# --------------------------------------------------------------------------------------
def test_a_parent_that_is_a_file_is_named(tmp_path):
    (tmp_path / "plain").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"plain is a file, not a folder"):
        write_text_atomically(tmp_path / "plain" / "sub" / "out.txt", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["plain"]


def test_a_model_saved_to_a_folder_or_under_a_file_leaves_nothing(tmp_path, cdnow_summary):
    model = BetaGeo().fit(cdnow_summary)
    (tmp_path / "plain").write_text("x")
    with pytest.raises(IsADirectoryError, match="give a file name"):
        model.save(tmp_path)
    with pytest.raises(NotADirectoryError, match="is a file"):
        model.save(tmp_path / "plain" / "model.json")
    assert [p.name for p in tmp_path.iterdir()] == ["plain"]
    assert (tmp_path / "plain").read_text() == "x"


def test_a_long_file_name_gets_a_short_enough_temporary_name(tmp_path):
    target = tmp_path / ("m" * 250 + ".json")
    seen = []
    write_atomically(target, lambda tmp: (seen.append(tmp.name), tmp.write_text("{}")))
    assert target.read_text() == "{}" and len(seen[0]) < 255
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


# --------------------------------------------------------------------------------------
# Temporary files that killed writes left behind
# --------------------------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True, timeout=60)
    return int(proc.stdout)


def _temporary(folder, target_name, origin, pid, token="0123abcd", age=0.0):
    tmp = folder / f".{target_name}.clvtmp-{origin}-{pid}-{token}.tmp"
    tmp.write_text("partial")
    if age:
        os.utime(tmp, (time.time() - age, time.time() - age))
    return tmp


def test_stale_temporary_files_of_the_target_are_removed_and_nothing_else(tmp_path):
    here = _io._origin()
    elsewhere = "ffffffff" if here != "ffffffff" else "eeeeeeee"
    day = _io.STALE_AFTER_SECONDS
    removed = [
        _temporary(tmp_path, "out.csv", here, _dead_pid(), "00000001"),  # killed writer
        _temporary(tmp_path, "out.csv", here, os.getpid(), "00000002"),  # PID reused: us
        _temporary(tmp_path, "out.csv", elsewhere, 12345, "00000003", age=day + 60),
        _temporary(tmp_path, "out.csv", here, os.getppid(), "00000004", age=day + 60),
    ]
    kept = [
        _temporary(tmp_path, "out.csv", here, os.getppid(), "00000005"),  # a live writer
        _temporary(tmp_path, "out.csv", elsewhere, 12345, "00000006", age=day - 60),
        _temporary(tmp_path, "other.csv", here, _dead_pid(), "00000007"),  # another target
    ]
    foreign = ("out.csv.tmp", ".out.csv.abc123.tmp", ".out.csv.clvtmp-x-1-y.tmp",
               ".out.csv.clvtmp-00000000-1-0123abcd.txt", "out.csv.clvtmp-00000000-1-0123abcd.tmp")
    for name in foreign:
        (tmp_path / name).write_text("someone else's")
        kept.append(tmp_path / name)
    write_text_atomically(tmp_path / "out.csv", "a,b\n")
    assert not any(p.exists() for p in removed)
    assert all(p.exists() for p in kept)
    assert (tmp_path / "out.csv").read_text() == "a,b\n"


def test_a_write_in_progress_is_never_taken_for_stale(tmp_path):
    target = tmp_path / "out.txt"

    def outer(tmp):
        tmp.write_text("outer")
        # This process's PID is in the outer temporary name: it is in flight, not stale.
        write_text_atomically(target, "inner")
        assert tmp.read_text() == "outer"

    write_atomically(target, outer)
    assert target.read_text() == "outer"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


SLOW_WRITER = """
import faulthandler, pathlib, signal, sys, time
from clvmodels._io import removing_temporary_files_on_signals, write_atomically

def slow(tmp):
    tmp.write_text("partial")
    print("writing", flush=True)
    # Still here 45 s on (the signal comes at once): show where it is stuck.
    faulthandler.dump_traceback_later(45)
    # A writer at work, in short steps: the kernel may hand the signal to another
    # thread (BLAS workers, the dump's timer), and Python runs its handler in the main
    # thread only when that thread next runs Python code. One long sleep would hold it
    # off for the whole sleep.
    for _ in range(1200):
        time.sleep(0.1)

if sys.argv[2] == "handled":
    with removing_temporary_files_on_signals():
        write_atomically(pathlib.Path(sys.argv[1]), slow)
else:
    write_atomically(pathlib.Path(sys.argv[1]), slow)
"""


def _kill_mid_write(target, mode, signum):
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing", proc.stderr.read()
        proc.send_signal(signum)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the writer had not ended 60 s after the signal; its stderr:\n"
                        + proc.communicate()[1])
    finally:
        proc.kill()
        proc.communicate()
    return proc.returncode


@pytest.mark.parametrize(("name", "code"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_signal_removes_the_temporary_file_and_exits_128_plus_signal(tmp_path, name, code):
    if not hasattr(signal, name):
        pytest.fail(f"{name} is missing on this platform")
    target = tmp_path / "out.txt"
    target.write_text("old")
    assert _kill_mid_write(target, "handled", getattr(signal, name)) == code
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    assert target.read_text() == "old"


def test_an_uncaught_kill_leaves_a_temporary_file_the_next_write_removes(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    assert _kill_mid_write(target, "unhandled", signal.SIGKILL) == -signal.SIGKILL
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and left[0].startswith(".out.txt.clvtmp-") and left[1] == "out.txt"
    assert target.read_text() == "old"
    write_text_atomically(target, "new")
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    assert target.read_text() == "new"


def test_the_handlers_are_restored_and_do_nothing_outside(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with _io.removing_temporary_files_on_signals():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def test_remove_temporary_files_takes_only_this_process_writes(tmp_path):
    target = tmp_path / "out.txt"
    removed = []

    def write(tmp):
        tmp.write_text("partial")
        removed.extend(_io.remove_temporary_files())
        assert not tmp.exists()

    with pytest.raises(FileNotFoundError):  # the rename of a removed file fails
        write_atomically(target, write)
    assert [p.name for p in removed] and list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------
# Concurrent saves of one model file
# --------------------------------------------------------------------------------------
SAVER = """
import sys, time
from clvmodels import load
model, target, seconds = load(sys.argv[1]), sys.argv[2], float(sys.argv[3])
print("ready", flush=True)
saves, end = 0, time.monotonic() + seconds
while time.monotonic() < end:
    model.save(target)
    saves += 1
print(saves)
"""


def test_two_processes_saving_one_model_file_never_show_a_partial_file(tmp_path, cdnow_summary):
    """Readers see one saved model or the other, whole; no save fails; nothing is left."""
    sources = []
    for name, penalizer in (("a.json", 0.0), ("b.json", 0.01)):
        sources.append(BetaGeo(penalizer=penalizer).fit(cdnow_summary).save(tmp_path / name))
    expected = {src.read_bytes() for src in sources}
    shared = tmp_path / "shared" / "model.json"
    savers = [
        subprocess.Popen([sys.executable, "-c", SAVER, str(src), str(shared), "3"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for src in sources
    ]
    try:
        for proc in savers:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        reads = loads = 0
        deadline = time.monotonic() + 60
        while any(proc.poll() is None for proc in savers) and time.monotonic() < deadline:
            try:
                content = shared.read_bytes()
            except FileNotFoundError:  # before the first save
                continue
            assert content in expected
            reads += 1
            if reads % 200 == 0:
                load(shared)
                loads += 1
        outputs = [proc.communicate(timeout=60) for proc in savers]
    finally:
        for proc in savers:
            proc.kill()
    assert [proc.returncode for proc in savers] == [0, 0], [err for _, err in outputs]
    assert all(int(out.split()[-1]) > 10 for out, _ in outputs), outputs
    assert reads > 100 and loads > 0
    assert [p.name for p in shared.parent.iterdir()] == ["model.json"]
