"""Atomic file output: the one writer behind every file clvmodels writes.

A reader never sees a half-written file, and a failure leaves nothing behind: the
content goes to a temporary file with a unique name in the target's folder (so the
final rename never crosses file systems), which then replaces the target in one step.
The file gets the permissions an ordinary new file gets there (``0o666`` less the
umask), however the content was written.

Three forms:

* :func:`write_text_atomically` and :func:`write_bytes_atomically` for content in memory;
* :func:`write_atomically` for libraries that write to a path themselves
  (``DataFrame.to_parquet``, ``InferenceData.to_netcdf``, ``Figure.savefig``): it calls
  ``write(tmp_path)`` and then moves the result into place.

Temporary files and killed runs
-------------------------------
A temporary file is named ``.<name>.clvtmp-<origin>-<pid>-<random>.tmp`` beside the
target ``<name>``: hidden, never matched by ``*.csv`` or ``*.parquet``, unique to one
write, and telling which process made it (``<origin>`` is a short hash of the host name
and PID namespace, ``<pid>`` the writing process). A process ended by an exception,
Ctrl-C, or (inside :func:`removing_temporary_files_on_signals`, as in the command line)
SIGTERM or SIGHUP removes its temporary files itself. SIGKILL cannot be caught: the next
write to the same target removes the temporary files left by earlier writes of it that
are surely dead, and no others:

* made on this host and PID namespace by a process that no longer exists (or by this
  process, outside any write in progress): removed at once;
* otherwise (another host sharing the folder, or a PID that may have been reused):
  removed once untouched for :data:`STALE_AFTER_SECONDS` (a day).

Files of other programs, even ones named like ``out.csv.tmp``, are never touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

__all__ = [
    "STALE_AFTER_SECONDS",
    "describe_os_error",
    "remove_temporary_files",
    "removing_temporary_files_on_signals",
    "write_atomically",
    "write_bytes_atomically",
    "write_text_atomically",
]

#: Age after which a temporary file whose writer cannot be checked counts as left behind.
STALE_AFTER_SECONDS = 24 * 3600

_TAG = "clvtmp"
# The part of the target's name kept in the temporary name (file names have 255 bytes).
_NAME_KEPT = 120
# Temporary files of writes in progress in this process, with the process that made them
# (a forked child inherits the set but not the writes).
_IN_FLIGHT: dict[Path, int] = {}


def _origin() -> str:
    """A short hash of the host name and PID namespace: where a PID means a process."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    text = f"{socket.gethostname()}\0{namespace}"
    return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()


def _prefix(path: Path) -> str:
    return f".{path.name[:_NAME_KEPT]}.{_TAG}-"


def _parse_temporary(name: str, prefix: str) -> tuple[str, int] | None:
    """``(origin, pid)`` of a temporary file name of ours for this prefix, else None."""
    if not (name.startswith(prefix) and name.endswith(".tmp")):
        return None
    parts = name[len(prefix) : -len(".tmp")].split("-")
    if len(parts) != 3 or len(parts[0]) != 8 or len(parts[2]) != 8:
        return None
    origin, pid, token = parts
    if not (pid.isdigit() and pid.isascii() and _is_hex(origin) and _is_hex(token)):
        return None
    return origin, int(pid)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _process_exists(pid: int) -> bool | None:
    """Whether process ``pid`` exists here; None where that cannot be known."""
    if os.name != "posix" or not 0 < pid < 2**31:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, and belongs to someone else
        return True
    return True


def _remove_stale(path: Path) -> None:
    """Remove the temporary files that earlier, killed writes of ``path`` left behind."""
    prefix = _prefix(path)
    here = _origin()
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    in_flight = {tmp.name for tmp in list(_IN_FLIGHT)}
    for entry in entries:
        parsed = _parse_temporary(entry.name, prefix)
        if parsed is None or entry.name in in_flight:
            continue
        origin, pid = parsed
        stale = False
        if origin == here:
            stale = pid == os.getpid() or _process_exists(pid) is False
        with contextlib.suppress(OSError):
            if not stale:
                stale = time.time() - entry.stat().st_mtime > STALE_AFTER_SECONDS
            if stale:
                os.unlink(path.parent / entry.name)


def _new_temporary(path: Path) -> tuple[Path, int]:
    """A new, empty temporary file beside ``path``, registered before it exists, and the
    permission bits an ordinary new file gets in that folder."""
    while True:
        name = f"{_prefix(path)}{_origin()}-{os.getpid()}-{secrets.token_hex(4)}.tmp"
        tmp = path.parent / name
        _IN_FLIGHT[tmp] = os.getpid()  # first, so that a signal handler can remove it
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            _IN_FLIGHT.pop(tmp, None)
            continue
        except BaseException:
            _IN_FLIGHT.pop(tmp, None)
            raise
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        return tmp, mode


def _check_target(path: Path) -> None:
    """Refuse a folder, or a path under a file, before anything is written."""
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give a file name")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot write {path}: {parent} is a file, not a folder")
            return


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    Before writing, temporary files that killed writes of ``path`` left behind are
    removed (see the module's documentation for which).

    Parameters
    ----------
    path : path
        The file to write. Missing parent folders are created.
    write : callable
        Writes the whole content to the path it is given (which exists, empty);
        its return value is ignored.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    IsADirectoryError
        When ``path`` is a folder.
    NotADirectoryError
        When a parent of ``path`` is a file.
    Exception
        Whatever ``write`` raises; the temporary file is removed first and a previous
        file at ``path`` is left as it was.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> write_atomically(target, lambda tmp: tmp.write_text("done")).read_text()
    'done'
    """
    path = Path(path)
    _check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    tmp, mode = _new_temporary(path)
    try:
        write(tmp)
        tmp.chmod(mode)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    finally:
        _IN_FLIGHT.pop(tmp, None)
    return path


def write_text_atomically(
    path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8"
) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`write_atomically`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "model.json"
    >>> write_text_atomically(target, '{"model": "BetaGeo"}').read_text()
    '{"model": "BetaGeo"}'
    """
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding=encoding))


def write_bytes_atomically(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`write_atomically`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "blob.bin"
    >>> write_bytes_atomically(target, b"\\x00\\x01").read_bytes()
    b'\\x00\\x01'
    """
    return write_atomically(path, lambda tmp: tmp.write_bytes(data))


# --------------------------------------------------------------------------------------
# Signals
# --------------------------------------------------------------------------------------
def remove_temporary_files() -> list[Path]:
    """Remove the temporary files of this process's writes in progress; the paths removed.

    Safe to call from a signal handler: the writes fail when they next touch their file,
    and leave nothing behind.
    """
    removed = []
    pid = os.getpid()
    for tmp, owner in list(_IN_FLIGHT.items()):
        if owner != pid:
            continue
        try:
            os.unlink(tmp)
        except OSError:  # already gone, or not ours to remove any more
            continue
        removed.append(tmp)
    return removed


def _terminating_signals() -> tuple[int, ...]:
    names = ("SIGTERM", "SIGHUP")
    return tuple(getattr(signal, name) for name in names if hasattr(signal, name))


@contextlib.contextmanager
def removing_temporary_files_on_signals(
    signals: Iterable[int] | None = None,
) -> Iterator[None]:
    """While inside, a terminating signal removes this process's temporary files and
    ends it with exit code ``128 + signal`` (143 for SIGTERM, 129 for SIGHUP).

    The process ends by :class:`SystemExit`, so ``finally`` blocks and ``atexit``
    handlers run. Outside the main thread (where handlers cannot be installed) it does
    nothing; the previous handlers are restored on the way out. A child process forked
    inside gets the default action of the signal instead.

    Parameters
    ----------
    signals : iterable of int, optional
        Default: SIGTERM and SIGHUP (those that exist on this platform).
    """
    chosen = _terminating_signals() if signals is None else tuple(signals)
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def handler(signum: int, frame: object) -> None:
        if os.getpid() != owner:  # a forked child: end as it would have without us
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        remove_temporary_files()
        raise SystemExit(128 + signum)

    previous = {}
    try:
        for signum in chosen:
            previous[signum] = signal.signal(signum, handler)
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, signal.SIG_DFL if old is None else old)


def describe_os_error(err: OSError) -> str:
    """An OSError in words, without the ``[Errno N]`` prefix: what went wrong, and where.

    Examples
    --------
    >>> describe_os_error(PermissionError(13, "Permission denied", "out.csv"))
    'permission denied: out.csv'
    >>> describe_os_error(OSError(28, "No space left on device"))
    'no space left on device'
    >>> describe_os_error(NotADirectoryError("out/x.csv: out is a file"))
    'out/x.csv: out is a file'
    """
    if err.strerror is None:
        return str(err) or type(err).__name__
    reason = err.strerror[:1].lower() + err.strerror[1:]
    where = [str(name) for name in (err.filename, err.filename2) if name is not None]
    return f"{reason}: {' -> '.join(where)}" if where else reason
