"""Helpers shared by the transaction models' prediction methods.

Horizon checks, the shape of prediction results, the number of draws in a
``param_draws`` frame, and the purchase-time sampler behind ``simulate_purchases``:
model-independent plumbing that BG/NBD, Pareto/NBD and their relatives use alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clvmodels.models.base import SimulatedPurchases

__all__ = ["check_horizon", "n_draws", "purchase_times", "shaped"]


def check_horizon(t: Any) -> np.ndarray:
    """``t`` as a float array, finite and non-negative."""
    t_arr = np.asarray(t, dtype=float)
    if np.any(~np.isfinite(t_arr)) or np.any(t_arr < 0):
        raise ValueError(f"t must be finite and non-negative, got {t!r}")
    return t_arr


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
) -> SimulatedPurchases:
    """Times of the first ``n_kept`` of ``n_arrivals`` uniform arrivals in ``(0, horizon]``.

    The ``K``-th of ``N`` uniform order statistics is ``Beta(K, N - K + 1)``; given it,
    the first ``K - 1`` are uniform below it (their order does not matter here). With
    ``n_kept == n_arrivals`` these are ``K`` independent uniform times. ``horizon`` is
    one window for all, or an array of ``shape``: one window per (draw, customer).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sims = purchase_times(rng, np.array([[2, 0]]), np.array([[3, 1]]), 10.0, (1, 2))
    >>> sims.counts().tolist(), bool(((sims.time > 0) & (sims.time <= 10)).all())
    ([[2, 0]], True)
    """
    buyers = np.flatnonzero(n_kept)
    kept = n_kept.ravel()[buyers]
    last = rng.beta(kept, n_arrivals.ravel()[buyers] - kept + 1) if buyers.size else np.empty(0)
    owner_local = np.repeat(np.arange(buyers.size), kept - 1)
    times = np.concatenate([last, rng.random(owner_local.size) * last[owner_local]])
    owner = np.concatenate([buyers, buyers[owner_local]]).astype(np.int64)
    # Uniform draws can be exactly 0; a purchase happens after the end of observation.
    times = np.maximum(times, np.finfo(float).tiny)
    window = np.asarray(horizon, dtype=float)
    times = times * (window.ravel()[owner] if window.ndim else window)
    return SimulatedPurchases(owner=owner, time=times, shape=shape)
