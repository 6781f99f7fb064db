"""Numba compilation deferred to a function's first call.

Importing Numba loads LLVM: about 60 MB of resident memory and a few tenths of a second.
Importing clvmodels, or fitting a BG/NBD and predicting with its estimates, needs no
compiled loop, so neither should pay for Numba; the loops (the Pareto/NBD's series,
P(alive) of the beta-geometric family under parameter draws, the CLV's summaries of
draws) load it when they first run.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()


def njit_on_first_call(
    func: Callable[..., Any] | None = None, *, error_model: str = "python"
) -> Callable[..., Any]:
    """``numba.njit(cache=True, nogil=True)(func)``, made when the function is first called.

    ``error_model="numpy"`` (as ``@njit_on_first_call(error_model="numpy")``): a float
    division by zero gives an infinity or NaN, as NumPy's arrays do, instead of raising
    ``ZeroDivisionError``.

    The compiled function is cached on disk under ``func``'s own name and line, as if
    it had been decorated at import. Only for functions called from Python: a compiled
    caller cannot see through the wrapper.

    Examples
    --------
    The series of the Pareto/NBD, ``2F1(1, 1; 2; 1/2) = 2 ln 2``:

    >>> import numpy as np
    >>> from clvmodels.models._hypergeometric import hyp_series_value
    >>> round(float(hyp_series_value(np.ones(1), np.full(1, 2.0), np.full(1, 0.5), 600)[0]), 6)
    1.386294
    """
    if func is None:
        return functools.partial(njit_on_first_call, error_model=error_model)
    compiled: list[Callable[..., Any]] = []

    @functools.wraps(func)
    def call(*args: Any) -> Any:
        if not compiled:
            with _lock:
                if not compiled:
                    import numba

                    compiled.append(
                        numba.njit(cache=True, nogil=True, error_model=error_model)(func)
                    )
        return compiled[0](*args)

    return call
