"""Independent blocks of work run on several threads, their results taken in order.

The CLV passes over customers block by block, and each block's work is NumPy and
compiled loops that release the GIL, so threads share the cores without copying the
data to other processes. Every block draws from its own seed and the caller combines
the results in block order, so the numbers do not depend on the number of threads.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "DEFAULT_MAX_JOBS",
    "N_JOBS_VARIABLE",
    "available_cpus",
    "in_order",
    "resolve_n_jobs",
]

T = TypeVar("T")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity where the platform reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


#: Threads used by default: each holds a block of draws in memory, and beyond a few
#: threads the parts of the work that hold the GIL limit the gain.
DEFAULT_MAX_JOBS = 8


#: Environment variable that sets the default number of threads (for the command line,
#: the pipeline and the report, which pass none): a positive int, or -1 for every CPU.
N_JOBS_VARIABLE = "CLVMODELS_N_JOBS"


def resolve_n_jobs(n_jobs: Any) -> int:
    """Number of threads for ``n_jobs``: a positive int as given, ``-1`` for every
    available CPU, ``None`` for the default: ``CLVMODELS_N_JOBS`` where it is set,
    else every available CPU up to :data:`DEFAULT_MAX_JOBS`.

    Examples
    --------
    >>> resolve_n_jobs(3)
    3
    >>> resolve_n_jobs(-1) == available_cpus()
    True
    """
    whole = isinstance(n_jobs, int | np.integer) and not isinstance(n_jobs, bool)
    if n_jobs is None:
        setting = os.environ.get(N_JOBS_VARIABLE, "").strip()
        if not setting:
            return min(available_cpus(), DEFAULT_MAX_JOBS)
        try:
            return resolve_n_jobs(int(setting))
        except ValueError:
            raise ValueError(
                f"{N_JOBS_VARIABLE} must be a positive int, or -1 for every CPU; "
                f"got {setting!r}"
            ) from None
    if whole and n_jobs == -1:
        return available_cpus()
    if whole and n_jobs >= 1:
        return int(n_jobs)
    raise ValueError(f"n_jobs must be a positive int, or -1 for every CPU; got {n_jobs!r}")


def in_order(
    tasks: Iterable[Callable[[], T]], n_jobs: int, *, window: int | None = None
) -> Iterator[T]:
    """Run ``tasks`` on up to ``n_jobs`` threads and yield their results in order.

    At most ``window`` tasks (by default ``n_jobs + 1``: ``n_jobs`` running, one
    waiting) are submitted and not yet consumed, so the memory held is that of at most
    ``window + 1`` results. A wider window keeps the threads busy past a task that
    takes much longer than the others, where results are small. An exception in a
    task is raised here, at its turn, and the tasks not yet started are cancelled.

    Examples
    --------
    >>> list(in_order((lambda i=i: i * i for i in range(5)), n_jobs=2))
    [0, 1, 4, 9, 16]
    >>> list(in_order((lambda i=i: i * i for i in range(5)), n_jobs=2, window=8))
    [0, 1, 4, 9, 16]
    """
    if n_jobs <= 1:
        for task in tasks:
            yield task()
        return
    window = n_jobs + 1 if window is None else max(int(window), n_jobs + 1)
    pending: deque[Future[T]] = deque()
    with ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="clvmodels") as pool:
        try:
            for task in tasks:
                pending.append(pool.submit(task))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
