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
    "at_pairs",
    "check_horizon",
    "n_draws",
    "pair_purchase_times",
    "positive_negative_binomial",
    "purchase_times",
    "shaped",
]


def at_pairs(values: Any, pairs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Entries at flat (draw, row) positions ``pairs`` of an array that broadcasts to
    ``shape = (n_draws, n_rows)``: a scalar, one value per row ``(n_rows,)``, per draw
    ``(n_draws, 1)``, or per draw and row. Nothing is broadcast to the full shape.

    Examples
    --------
    >>> pairs = np.array([1, 4])  # (draw 0, row 1) and (draw 1, row 1) of shape (2, 3)
    >>> at_pairs(np.array([[10.0], [20.0]]), pairs, (2, 3)).tolist()
    [10.0, 20.0]
    >>> at_pairs(np.array([1.0, 2.0, 3.0]), pairs, (2, 3)).tolist()
    [2.0, 2.0]
    """
    values = np.asarray(values, dtype=float)
    if values.size == 1:
        return np.full(pairs.shape, values.item())
    if values.shape == shape:
        return values.reshape(-1)[pairs]
    matrix = values.reshape((1,) * (2 - values.ndim) + values.shape)
    if matrix.shape == (1, shape[1]):
        return matrix[0][pairs % shape[1]]
    if matrix.shape == (shape[0], 1):
        return matrix[:, 0][pairs // shape[1]]
    raise ValueError(f"values of shape {values.shape} do not broadcast to {shape}")


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


def positive_negative_binomial(
    rng: np.random.Generator, shape: np.ndarray, odds: np.ndarray, log_zero: np.ndarray
) -> np.ndarray:
    """Draws of a negative binomial count ``N`` given ``N >= 1``, by inverting its tail.

    ``P(N = n) = Gamma(shape + n) / (Gamma(shape) n!) (1 - odds)^shape odds^n``: the
    arrivals over a window of a Poisson process whose rate is Gamma distributed.
    ``log_zero`` is ``log P(N = 0) = shape log(1 - odds)``, which the caller has (its
    complement decided that ``N >= 1``). The probabilities of successive counts are
    accumulated in log space, so a customer expected to buy hundreds of times is not
    cut short by an underflowing first term.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> shape, odds = np.full(100_000, 2.0), np.full(100_000, 0.5)
    >>> n = positive_negative_binomial(rng, shape, odds, shape * np.log1p(-odds))
    >>> int(n.min()), round(float(n.mean()), 1)  # E[N | N >= 1] = 2 / (1 - 0.25)
    (1, 2.7)
    """
    n = np.ones(shape.shape, dtype=np.int64)
    log_positive = np.log(-np.expm1(log_zero))  # log P(N >= 1)
    log_pmf = log_zero + np.log(shape * odds) - log_positive  # log P(N = 1 | N >= 1)
    # The conditional tail P(N > n | N >= 1) is followed down until it falls to a
    # uniform; at 1e-12 (rounding noise aside) the mass left out is negligible.
    uniform = np.maximum(rng.random(shape.shape), 1e-12)
    tail = -np.expm1(log_pmf)
    # Past the mode the terms only shrink: where one has underflowed, stop.
    mode = np.floor(np.maximum(shape - 1.0, 0.0) * odds / (1.0 - odds))
    todo = np.flatnonzero(tail > uniform)
    while todo.size:
        n[todo] += 1
        k = n[todo]
        log_pmf[todo] += np.log((shape[todo] + k - 1) * odds[todo] / k)
        pmf = np.exp(log_pmf[todo])
        tail[todo] -= pmf
        todo = todo[(tail[todo] > uniform[todo]) & ((pmf > 0) | (k <= mode[todo]))]
    return n


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
