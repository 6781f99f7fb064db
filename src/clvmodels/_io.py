"""Atomic file output: the one writer behind every file clvmodels writes.

A reader never sees a half-written file, and a failure leaves nothing behind: the
content goes to a temporary file with a unique name in the target's folder (so the
final rename never crosses file systems), which then replaces the target in one step.
The file gets the usual permissions (``0o666`` less the umask), not the private
``0o600`` of a temporary file.

Three forms:

* :func:`write_text_atomically` and :func:`write_bytes_atomically` for content in memory;
* :func:`write_atomically` for libraries that write to a path themselves
  (``DataFrame.to_parquet``, ``InferenceData.to_netcdf``, ``Figure.savefig``): it calls
  ``write(tmp_path)`` and then moves the result into place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["write_atomically", "write_bytes_atomically", "write_text_atomically"]


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

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
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(0o666 & ~_umask())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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
