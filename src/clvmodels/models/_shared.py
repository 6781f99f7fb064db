"""Helpers shared by the transaction models' prediction methods.

Horizon checks, the shape of prediction results, the number of draws in a
``param_draws`` frame, and the purchase-time sampler behind ``simulate_purchases``:
model-independent plumbing that BG/NBD, Pareto/NBD and their relatives use alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from clvmodels.models.base import SimulatedPurchases

__all__ = [
    "alive_probabilities",
    "check_horizon",
    "n_draws",
    "pair_purchase_times",
    "purchase_times",
    "shaped",
]


def check_horizon(t: Any) -> np.ndarray:
    """``t`` as a float array, finite and non-negative."""
    t_arr = np.asarray(t, dtype=float)
    if np.any(~np.isfinite(t_arr)) or np.any(t_arr < 0):
        raise ValueError(f"t must be finite and non-negative, got {t!r}")
    return t_arr


def alive_probabilities(
    given: Any, shape: tuple[int, int], compute: Callable[[], Any]
) -> np.ndarray:
    """P(alive) for ``simulate_purchases``: the caller's ``given`` values, checked against
    ``shape`` (draws, rows), or ``compute()`` where none are given.

    Examples
    --------
    >>> alive_probabilities([[0.5, 1.0]], (1, 2), compute=lambda: None).tolist()
    [[0.5, 1.0]]
    """
    if given is None:
        return np.asarray(compute(), dtype=float)
    values = np.asarray(given, dtype=float)
    if values.shape != shape:
        raise ValueError(
            f"probability_alive must have one value per draw and row, shape {shape}, "
            f"got {values.shape}"
        )
    return values


def n_draws(draws: pd.DataFrame) -> int:
    """Number of draws in a ``param_draws`` frame (long frames of grouped models too)."""
    return int(draws["draw"].nunique()) if "draw" in draws.columns else len(draws)


def shaped(values: Any, index: pd.Index | None, draws: Any, name: str) -> Any:
    """Population results as float / array; per-row results as a Series (no draws)."""
    values = np.asarray(values, dtype=float)
    if index is not None and draws is None:
        return pd.Series(np.broadcast_to(values, (len(index),)), index=index, name=name)
    return float(values) if values.ndim == 0 else values


def purchase_times(
    rng: np.random.Generator,
    n_kept: np.ndarray,
    n_arrivals: np.ndarray,
    horizon: float | np.ndarray,
    shape: tuple[int, int],
    k: int = 1,
    phase: np.ndarray | int = 0,
) -> SimulatedPurchases:
    """Times of the first ``n_kept`` purchases among ``n_arrivals`` uniform arrivals.

    Purchase ``i`` is arrival ``i k - phase`` (``k = 1``: every arrival; ``k > 1``: the
    Erlang-k purchases of the regularity models). The ``K``-th purchase is arrival
    ``K k - phase``, whose time is the ``(Kk - phase)``-th of ``N`` uniform order
    statistics, ``Beta(Kk - phase, N - Kk + phase + 1)``; given it, the earlier
    arrivals are uniform below it. For ``k = 1`` their order does not matter (with
    ``n_kept == n_arrivals`` these are ``K`` independent uniform times); otherwise they
    are sorted and every ``k``-th kept. ``horizon`` is one window for all, or an array
    of ``shape``: one window per (draw, customer).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sims = purchase_times(rng, np.array([[2, 0]]), np.array([[3, 1]]), 10.0, (1, 2))
    >>> sims.counts().tolist(), bool(((sims.time > 0) & (sims.time <= 10)).all())
    ([[2, 0]], True)
    """
    buyers = np.flatnonzero(n_kept)
    phase_b = np.broadcast_to(np.asarray(phase), n_kept.shape).ravel()[buyers]
    return pair_purchase_times(
        rng, buyers, n_kept.ravel()[buyers], n_arrivals.ravel()[buyers], horizon, shape,
        k=k, phase=phase_b,
    )


def pair_purchase_times(
    rng: np.random.Generator,
    buyers: np.ndarray,
    kept: np.ndarray,
    arrivals: np.ndarray,
    horizon: float | np.ndarray,
    shape: tuple[int, int],
    k: int = 1,
    phase: np.ndarray | int = 0,
) -> SimulatedPurchases:
    """:func:`purchase_times` of the pairs that buy, given by their flat indices
    ``buyers`` into ``shape`` (ascending) with their ``kept`` (at least 1) and
    ``arrivals`` counts, where the caller has them already (no full arrays).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sims = pair_purchase_times(rng, np.array([0]), np.array([2]), np.array([3]), 10.0,
    ...                            (1, 2))
    >>> sims.counts().tolist()
    [[2, 0]]
    """
    phase_b = np.broadcast_to(np.asarray(phase), buyers.shape)
    last_index = kept * k - phase_b
    # The last purchase is order statistic last_index of the arrivals: Beta(i, N - i + 1),
    # and the largest of them, Beta(N, 1), is U^(1/N) (cheaper, and the usual case).
    last = np.empty(buyers.size)
    largest = last_index == arrivals
    last[largest] = rng.random(int(largest.sum())) ** (1.0 / arrivals[largest])
    inner = ~largest
    last[inner] = rng.beta(last_index[inner], arrivals[inner] - last_index[inner] + 1)
    owner_local = np.repeat(np.arange(buyers.size), kept - 1)
    if k == 1:
        earlier = rng.random(owner_local.size) * last[owner_local]
    else:
        # all arrivals below the last purchase, sorted within each owner
        owner_all = np.repeat(np.arange(buyers.size), last_index - 1)
        arrivals = rng.random(owner_all.size) * last[owner_all]
        arrivals = arrivals[np.lexsort((arrivals, owner_all))]
        start = np.concatenate([[0], np.cumsum(last_index - 1)[:-1]]).astype(np.int64)
        # purchase i (1 <= i < K) of an owner is its arrival i k - phase (1-based)
        rank = np.arange(owner_local.size) - np.repeat(np.cumsum(kept - 1) - (kept - 1), kept - 1)
        position = start[owner_local] + (rank + 1) * k - phase_b[owner_local] - 1
        earlier = arrivals[position]
    times = np.concatenate([last, earlier])
    owner = np.concatenate([buyers, buyers[owner_local]]).astype(np.int64, copy=False)
    # Uniform draws can be exactly 0; a purchase happens after the end of observation.
    np.maximum(times, np.finfo(float).tiny, out=times)
    window = np.asarray(horizon, dtype=float)
    times *= window.ravel()[owner] if window.ndim else window
    return SimulatedPurchases(owner=owner, time=times, shape=shape)
