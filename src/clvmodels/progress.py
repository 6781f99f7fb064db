"""Progress bars for long operations, in a terminal, in a notebook, or not at all.

Every long clvmodels operation (fitting, forecasting, building a report) takes a
``progressbar`` argument and reports through this module, so that the same code shows

* a live bar (rich) when standard error is a terminal;
* an updating HTML bar in Jupyter (no ipywidgets needed), redrawn a few times a second;
* nothing while it runs when output goes to a file, a pipe or CI logs; one line at
  ``INFO`` level on the ``clvmodels.progress`` logger when it finishes;
* nothing at all with ``enabled=False`` or the environment variable
  ``CLVMODELS_PROGRESS=0``.

Bars opened while another is running (say, a model fit inside a report) join the
outer display as an extra line and disappear when they finish.

One entry point::

    with progress_bar(total=3, description="Fitting", enabled=progressbar) as bar:
        for step in steps:
            step()
            bar.advance()
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from html import escape
from typing import Any

__all__ = ["ProgressBar", "progress_bar"]

_LOG = logging.getLogger("clvmodels.progress")
# Redraw a notebook bar at most this often (seconds): each redraw is a message to
# the front end, and thousands of them make a notebook sluggish.
_NOTEBOOK_REFRESH = 0.2


class ProgressBar:
    """Handle yielded by :func:`progress_bar`; call :meth:`advance` as work gets done.

    Attributes
    ----------
    total : float or None
        Amount of work, in whatever unit the caller counts (``None``: unknown).
    completed : float
        Work done so far.
    description : str
        What is being done.
    """

    def __init__(self, total: float | None, description: str) -> None:
        self.total = None if total is None else float(total)
        self.completed = 0.0
        self.description = description
        self._started = time.perf_counter()

    def advance(self, n: float = 1) -> None:
        """Record ``n`` more units of work done."""
        self.completed += n
        self._draw(final=False)

    def update(self, completed: float | None = None, description: str | None = None) -> None:
        """Set the work done so far and/or change the description."""
        if completed is not None:
            self.completed = float(completed)
        if description is not None:
            self.description = description
        self._draw(final=False)

    @property
    def elapsed(self) -> float:
        """Seconds since the bar was opened."""
        return time.perf_counter() - self._started

    # Display hooks; the base class is the quiet bar.
    def _open(self) -> None:
        return None

    def _draw(self, final: bool) -> None:
        return None

    def _close(self) -> None:
        return None


class _LogBar(ProgressBar):
    """Silent while working; one log line at the end (files, pipes, CI)."""

    def _close(self) -> None:
        done = f"{self.completed:g}" + ("" if self.total is None else f"/{self.total:g}")
        _LOG.info("%s: %s done in %.1f s", self.description, done, self.elapsed)


class _NotebookBar(ProgressBar):
    """An HTML ``<progress>`` element updated in place through an IPython display handle."""

    def _open(self) -> None:
        from IPython.display import display

        self._last = 0.0
        self._handle = display(self._bundle(), raw=True, display_id=True)

    def _bundle(self) -> dict[str, str]:
        elapsed = _clock(self.elapsed)
        if self.total:
            share = min(self.completed / self.total, 1.0)
            count = f"{self.completed:g}/{self.total:g}"
            if 0 < share < 1:
                elapsed += f" &lt; {_clock(self.elapsed * (1 - share) / share)}"
            bar = f'<progress value="{share:.4f}" max="1" style="width:16em"></progress>'
            text = f"{self.description} {100 * share:3.0f}% {count}"
        else:
            bar, text = "", f"{self.description} {self.completed:g}"
        html = (
            f'<div style="font-family:monospace">{bar} {escape(text)} '
            f"[{elapsed}]</div>"
        )
        plain = f"{text} [{elapsed.replace('&lt;', '<')}]"
        return {"text/html": html, "text/plain": plain}

    def _draw(self, final: bool) -> None:
        now = time.perf_counter()
        if final or now - self._last >= _NOTEBOOK_REFRESH:
            self._last = now
            if self._handle is not None:
                self._handle.update(self._bundle(), raw=True)

    def _close(self) -> None:
        self._draw(final=True)


class _TerminalBar(ProgressBar):
    """A task line in a rich progress display shared by nested bars."""

    _display: Any = None  # the rich Progress shown now, shared by nested bars
    _depth = 0

    def _open(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        cls = _TerminalBar
        if cls._display is None:
            cls._display = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            cls._display.start()
        cls._depth += 1
        self._nested = cls._depth > 1
        self._task = cls._display.add_task(self.description, total=self.total)

    def _draw(self, final: bool) -> None:
        _TerminalBar._display.update(
            self._task, completed=self.completed, description=self.description
        )

    def _close(self) -> None:
        cls = _TerminalBar
        self._draw(final=True)
        if self._nested:
            cls._display.remove_task(self._task)
        cls._depth -= 1
        if cls._depth == 0:
            cls._display.stop()
            cls._display = None


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython)."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:
        return False
    return ip is not None and getattr(ip, "kernel", None) is not None


def _disabled_by_environment() -> bool:
    return os.environ.get("CLVMODELS_PROGRESS", "").strip().lower() in {"0", "false", "off", "no"}


def _bar_class(enabled: bool) -> type[ProgressBar]:
    if not enabled or _disabled_by_environment():
        return ProgressBar
    if _TerminalBar._display is not None:
        # Nested in a live terminal bar, whose rich display has replaced sys.stderr
        # (whether that proxy reports a terminal depends on rich's version).
        return _TerminalBar
    if _in_notebook():
        return _NotebookBar
    if sys.stderr is not None and sys.stderr.isatty():
        return _TerminalBar
    return _LogBar


@contextmanager
def progress_bar(
    total: float | None, description: str, *, enabled: bool = True
) -> Iterator[ProgressBar]:
    """Show progress of a piece of work while the ``with`` block runs.

    Parameters
    ----------
    total : float or None
        Amount of work (steps, draws, customers); ``None`` when unknown.
    description : str
        Short text shown before the bar, e.g. ``"Fitting BG/NBD"``.
    enabled : bool, default True
        ``False`` shows nothing (pass a function's ``progressbar`` argument here).

    Yields
    ------
    ProgressBar
        Call ``bar.advance(n)`` or ``bar.update(completed=...)`` as work gets done.

    Examples
    --------
    >>> with progress_bar(total=3, description="Three steps", enabled=False) as bar:
    ...     for _ in range(3):
    ...         bar.advance()
    >>> bar.completed
    3.0
    """
    bar = _bar_class(enabled)(total, description)
    bar._open()
    try:
        yield bar
    finally:
        bar._close()

