"""Simulate customers from the BG/NBD, Pareto/NBD and Gamma-Gamma models.

Used for parameter-recovery and coverage tests, for benchmarks at any size, and by
users who want to see what a fitted model implies. Everything is vectorised: a
million customers take well under a second.

Generative story (Fader, Hardie & Lee 2005): while alive a customer buys at a Poisson
rate ``lambda ~ Gamma(r, rate=alpha)``; after every *repeat* purchase the customer
drops out with probability ``p ~ Beta(a, b)``. Spend per transaction is
``Gamma(p_spend, rate=nu)`` with ``nu ~ Gamma(q, rate=gamma)``. Pareto/NBD (Schmittlein,
Morrison & Colombo 1987): the same purchases while alive, and an exponential lifetime
with rate ``mu ~ Gamma(s, rate=beta)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["simulate_bgnbd", "simulate_customers", "simulate_pareto_nbd"]


def _check_positive(**values: Any) -> None:
    for name, value in values.items():
        arr = np.asarray(value, dtype=float)
        if np.any(~np.isfinite(arr)) or np.any(arr <= 0):
            raise ValueError(f"{name} must be positive and finite, got {value!r}")


def simulate_bgnbd(
    n_customers: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T: float | np.ndarray,
    *,
    holdout: float | None = None,
    random_state: Any = None,
    return_latent: bool = False,
    time_unit: str = "W",
) -> pd.DataFrame:
    """Simulate BG/NBD summaries (and optionally a holdout period).

    Parameters
    ----------
    n_customers : int
        Number of customers.
    r, alpha, a, b : float
        BG/NBD parameters.
    T : float or array of shape (n_customers,)
        Each customer's observation length (time since first purchase).
    holdout : float, optional
        Length of a holdout period after ``T``; adds ``frequency_holdout`` and
        ``duration_holdout``.
    random_state : int or numpy Generator, optional
        Seed.
    return_latent : bool
        Also return each customer's latent ``lambda``, ``p_dropout`` and whether the
        customer is ``alive`` at the end of the calibration period.
    time_unit : str
        Recorded in ``attrs["time_unit"]``.

    Returns
    -------
    DataFrame
        ``frequency, recency, T`` indexed by customer id ``0..n-1``.

    Examples
    --------
    >>> data = simulate_bgnbd(1000, 0.24, 4.41, 0.79, 2.43, T=39, random_state=1)
    >>> list(data.columns)
    ['frequency', 'recency', 'T']
    """
    _check_positive(r=r, alpha=alpha, a=a, b=b, T=T)
    n = int(n_customers)
    rng = np.random.default_rng(random_state)
    T_arr = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    lam = rng.gamma(r, 1.0 / alpha, size=n)
    p = rng.beta(a, b, size=n)
    # The d-th repeat purchase is the one after which the customer drops out.
    dropout_at = rng.geometric(p)
    n_arrivals = rng.poisson(lam * T_arr)
    x = np.minimum(n_arrivals, dropout_at)
    # Given n arrivals in [0, T], arrival times are uniform order statistics; the
    # x-th of n is T * Beta(x, n - x + 1).
    recency = np.zeros(n)
    repeat = x > 0
    recency[repeat] = T_arr[repeat] * rng.beta(x[repeat], n_arrivals[repeat] - x[repeat] + 1)
    alive = dropout_at > n_arrivals
    frame = pd.DataFrame(
        {"frequency": x.astype(np.int64), "recency": recency, "T": T_arr},
        index=pd.RangeIndex(n, name="customer_id"),
    )
    if holdout is not None:
        _check_positive(holdout=holdout)
        future = rng.poisson(lam * holdout)
        remaining = np.where(alive, dropout_at - n_arrivals, 0)
        frame["frequency_holdout"] = np.minimum(future, remaining).astype(np.int64)
        frame["duration_holdout"] = float(holdout)
    if return_latent:
        frame["lambda"] = lam
        frame["p_dropout"] = p
        frame["alive"] = alive
    frame.attrs["time_unit"] = time_unit
    return frame


def simulate_customers(
    n_customers: int,
    bgnbd: dict[str, float],
    gamma_gamma: dict[str, float],
    T: float | np.ndarray,
    *,
    holdout: float | None = None,
    random_state: Any = None,
    return_latent: bool = False,
    time_unit: str = "W",
) -> pd.DataFrame:
    """Simulate purchases and spend: a full summary with ``monetary_value``.

    Parameters
    ----------
    bgnbd : dict
        ``{"r", "alpha", "a", "b"}``.
    gamma_gamma : dict
        ``{"p", "q", "gamma"}``.
    holdout : float, optional
        Adds ``frequency_holdout``, ``monetary_value_holdout`` (mean value per holdout
        purchase, 0 when none) and ``duration_holdout``.

    Other parameters are as in :func:`simulate_bgnbd`; with ``return_latent`` the
    latent spend rate ``nu`` is returned too (true expected spend is ``p / nu``).

    Examples
    --------
    >>> data = simulate_customers(500, {"r": 0.24, "alpha": 4.41, "a": 0.79, "b": 2.43},
    ...                           {"p": 6.25, "q": 3.74, "gamma": 15.44}, T=39,
    ...                           random_state=2)
    >>> bool((data.loc[data.frequency == 0, "monetary_value"] == 0).all())
    True
    """
    _check_positive(**gamma_gamma)
    rng = np.random.default_rng(random_state)
    frame = simulate_bgnbd(
        n_customers,
        **bgnbd,
        T=T,
        holdout=holdout,
        random_state=rng,
        return_latent=return_latent,
        time_unit=time_unit,
    )
    p, q, gamma = gamma_gamma["p"], gamma_gamma["q"], gamma_gamma["gamma"]
    nu = rng.gamma(q, 1.0 / gamma, size=len(frame))
    x = frame["frequency"].to_numpy()
    # The mean of x Gamma(p, nu) values is Gamma(p x, rate = nu x).
    safe_x = np.maximum(x, 1)
    mean_value = rng.gamma(p * safe_x, 1.0 / (nu * safe_x))
    frame["monetary_value"] = np.where(x > 0, mean_value, 0.0)
    if holdout is not None:
        xh = frame["frequency_holdout"].to_numpy()
        safe_xh = np.maximum(xh, 1)
        holdout_mean = rng.gamma(p * safe_xh, 1.0 / (nu * safe_xh))
        frame["monetary_value_holdout"] = np.where(xh > 0, holdout_mean, 0.0)
    if return_latent:
        frame["nu"] = nu
    return frame


def simulate_pareto_nbd(
    n_customers: int,
    r: float,
    alpha: float,
    s: float,
    beta: float,
    T: float | np.ndarray,
    *,
    holdout: float | None = None,
    random_state: Any = None,
    return_latent: bool = False,
    time_unit: str = "W",
) -> pd.DataFrame:
    """Simulate Pareto/NBD summaries (and optionally a holdout period).

    Each customer buys at Poisson rate ``lambda ~ Gamma(r, rate=alpha)`` from its first
    purchase at time 0 until it dies at ``omega ~ Exp(mu)``, ``mu ~ Gamma(s, rate=beta)``.
    Given ``x`` repeat purchases in ``(0, min(omega, T)]`` their times are uniform, so
    the last is ``min(omega, T) Beta(x, 1)``.

    Parameters
    ----------
    n_customers : int
        Number of customers.
    r, alpha, s, beta : float
        Pareto/NBD parameters.
    T : float or array of shape (n_customers,)
        Each customer's observation length (time since first purchase).
    holdout : float, optional
        Length of a holdout period after ``T``; adds ``frequency_holdout`` and
        ``duration_holdout``.
    random_state : int or numpy Generator, optional
        Seed.
    return_latent : bool
        Also return each customer's latent ``lambda``, ``mu`` and whether the customer is
        ``alive`` at the end of the calibration period.
    time_unit : str
        Recorded in ``attrs["time_unit"]``.

    Returns
    -------
    DataFrame
        ``frequency, recency, T`` indexed by customer id ``0..n-1``.

    Examples
    --------
    >>> data = simulate_pareto_nbd(1000, 0.55, 10.58, 0.61, 11.67, T=39, random_state=1)
    >>> list(data.columns), bool((data["recency"] < data["T"]).all())
    (['frequency', 'recency', 'T'], True)
    """
    _check_positive(r=r, alpha=alpha, s=s, beta=beta, T=T)
    n = int(n_customers)
    rng = np.random.default_rng(random_state)
    T_arr = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    lam = rng.gamma(r, 1.0 / alpha, size=n)
    mu = rng.gamma(s, 1.0 / beta, size=n)
    with np.errstate(divide="ignore"):
        # a Gamma draw with a tiny shape can be 0: that customer never dies
        lifetime = rng.exponential(size=n) / mu
    active = np.minimum(lifetime, T_arr)
    x = rng.poisson(lam * active)
    recency = np.zeros(n)
    repeat = x > 0
    recency[repeat] = active[repeat] * rng.random(int(repeat.sum())) ** (1.0 / x[repeat])
    frame = pd.DataFrame(
        {"frequency": x.astype(np.int64), "recency": recency, "T": T_arr},
        index=pd.RangeIndex(n, name="customer_id"),
    )
    if holdout is not None:
        _check_positive(holdout=holdout)
        window = np.clip(lifetime - T_arr, 0.0, float(holdout))
        frame["frequency_holdout"] = rng.poisson(lam * window).astype(np.int64)
        frame["duration_holdout"] = float(holdout)
    if return_latent:
        frame["lambda"] = lam
        frame["mu"] = mu
        frame["alive"] = lifetime > T_arr
    frame.attrs["time_unit"] = time_unit
    return frame
