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

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ar1_log_shocks",
    "simulate_bgnbd",
    "simulate_customers",
    "simulate_pareto_nbd",
    "simulate_transactions",
]


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


def simulate_transactions(
    n_customers: int,
    bgnbd: dict[str, float],
    gamma_gamma: dict[str, float],
    *,
    weeks: float = 78.0,
    acquisition_weeks: float = 12.0,
    start: str = "2020-01-06",
    shock_sd: float = 0.0,
    shock_persistence: float = 0.0,
    random_state: Any = None,
    return_latent: bool = False,
) -> pd.DataFrame:
    """Simulate a transaction log: BG/NBD purchase times, Gamma-Gamma values of each purchase.

    Customers make their first purchase on a day drawn uniformly from the first
    ``acquisition_weeks`` weeks after ``start``; the log ends after ``weeks`` weeks.
    While alive a customer buys at rate ``lambda ~ Gamma(r, rate=alpha)`` per week and
    drops out after each repeat purchase with probability ``p ~ Beta(a, b)`` (as
    :func:`simulate_bgnbd`). Each purchase is worth ``Gamma(p, rate=nu)`` with the
    customer's ``nu ~ Gamma(q, rate=gamma)`` (Fader & Hardie 2013), drawn for every
    purchase: the individual-level Gamma-Gamma model. A purchase falls on the day of its
    time; purchases of one customer on one day are one purchase (as ``rfm_summary``
    counts them), so each day with a purchase has one transaction and one value.

    Parameters
    ----------
    n_customers : int
        Number of customers.
    bgnbd : dict
        ``{"r", "alpha", "a", "b"}``, with rates per week.
    gamma_gamma : dict
        ``{"p", "q", "gamma"}``.
    weeks, acquisition_weeks : float
        Length of the log, and of the period in which customers are acquired.
    start : date-like
        First day of the log.
    shock_sd, shock_persistence : float, default 0
        Shocks common to all customers (issue 13): in week ``k`` every customer's rate
        is multiplied by ``exp(e_k)``, ``e`` a stationary Gaussian AR(1) path with this
        sd and lag-one correlation (:func:`ar1_log_shocks`, mean-preserving).
        Purchases are then uniform in the *operational time* ``M(t) = int_0^t exp(e)``
        rather than in calendar time, so that each customer's process is the BG/NBD's
        with time run through ``M``; ``attrs["shock_multipliers"]`` holds ``exp(e_k)``.
        Without shocks no random numbers are spent on them.
    random_state : int or numpy Generator, optional
        Seed.
    return_latent : bool
        Also return each transaction's customer ``nu`` (true mean spend ``p / nu``).

    Returns
    -------
    DataFrame
        ``customer_id, date, amount``, one row per purchase, sorted by date and customer;
        summarise it with ``rfm_summary(log, "customer_id", "date", "amount",
        observation_end=...)`` (``attrs["observation_end"]`` holds the last day).

    Examples
    --------
    >>> from clvmodels import rfm_summary
    >>> log = simulate_transactions(500, {"r": 0.24, "alpha": 4.41, "a": 0.79, "b": 2.43},
    ...                             {"p": 6.25, "q": 3.74, "gamma": 15.44}, random_state=1)
    >>> list(log.columns), bool((log["amount"] > 0).all())
    (['customer_id', 'date', 'amount'], True)
    >>> summary = rfm_summary(log, "customer_id", "date", "amount",
    ...                       observation_end=log.attrs["observation_end"], log_spend=True)
    >>> len(summary)
    500
    """
    _check_positive(weeks=weeks, acquisition_weeks=acquisition_weeks, **bgnbd, **gamma_gamma)
    n = int(n_customers)
    last_day = round(float(weeks) * 7) - 1
    if acquisition_weeks * 7 > last_day + 1:
        raise ValueError(
            f"acquisition_weeks={acquisition_weeks} must not exceed weeks={weeks}"
        )
    if not (np.isfinite(shock_sd) and shock_sd >= 0):
        raise ValueError(f"shock_sd must be a non-negative number, got {shock_sd!r}")
    rng = np.random.default_rng(random_state)
    first_day = rng.integers(0, max(round(float(acquisition_weeks) * 7), 1), size=n)
    T = (last_day - first_day) / 7.0
    lam = rng.gamma(bgnbd["r"], 1.0 / bgnbd["alpha"], size=n)
    dropout_at = rng.geometric(rng.beta(bgnbd["a"], bgnbd["b"], size=n))
    # Operational time: calendar weeks run through the common shocks (identity without).
    n_weeks = math.ceil((last_day + 1) / 7)
    multipliers = (
        np.exp(ar1_log_shocks(n_weeks, shock_sd, shock_persistence, random_state=rng))
        if shock_sd > 0
        else np.ones(n_weeks)
    )
    edges = np.arange(n_weeks + 1, dtype=float)
    clock = np.r_[0.0, np.cumsum(multipliers)]
    opened = np.interp(first_day / 7.0, edges, clock)
    window = T if shock_sd == 0 else np.interp(last_day / 7.0, edges, clock) - opened
    arrivals = rng.poisson(lam * window)
    # The first min(arrivals, dropout_at) of the Poisson arrivals (uniform on the
    # operational window given their number) are the repeat purchases.
    owner = np.repeat(np.arange(n), arrivals)
    times = rng.random(owner.size) * window[owner]
    order = np.lexsort((times, owner))
    owner, times = owner[order], times[order]
    rank = np.arange(owner.size) - np.repeat(np.cumsum(arrivals) - arrivals, arrivals)
    repeat = rank < np.minimum(arrivals, dropout_at)[owner]
    if shock_sd > 0:  # back to calendar weeks after each customer's first purchase
        calendar = np.interp(opened[owner] + times, clock, edges)
        times = calendar - first_day[owner] / 7.0
    customer = np.concatenate([np.arange(n), owner[repeat]])
    day = np.concatenate([first_day, first_day[owner[repeat]] + np.floor(times[repeat] * 7)])
    day = np.minimum(day.astype(np.int64), last_day)
    # One purchase per customer and day, the first purchase's day included.
    key = np.unique(customer * (last_day + 1) + day)
    customer, day = np.divmod(key, last_day + 1)
    nu = rng.gamma(gamma_gamma["q"], 1.0 / gamma_gamma["gamma"], size=n)
    amount = rng.gamma(gamma_gamma["p"], 1.0 / nu[customer])
    origin = np.datetime64(pd.Timestamp(start).normalize().date(), "D")
    frame = pd.DataFrame(
        {"customer_id": customer, "date": (origin + day).astype("datetime64[us]"),
         "amount": amount}
    )
    if return_latent:
        frame["nu"] = nu[customer]
    frame = frame.sort_values(["date", "customer_id"], kind="stable", ignore_index=True)
    frame.attrs["observation_end"] = str(origin + last_day)
    if shock_sd > 0:
        frame.attrs["shock_multipliers"] = multipliers
    return frame


def ar1_log_shocks(
    n_steps: int, sd: float, persistence: float, *, random_state: Any = None
) -> np.ndarray:
    """A stationary Gaussian AR(1) path of log shocks with mean ``-sd**2 / 2``.

    ``e_k = persistence * e_{k-1} + eta_k`` with stationary variance ``sd**2``; the
    mean makes every multiplier ``exp(e_k)`` average 1 (mean-preserving).

    Examples
    --------
    >>> path = ar1_log_shocks(100_000, 0.2, 0.5, random_state=0)
    >>> round(float(np.exp(path).mean()), 2), round(float(path.std()), 2)
    (1.0, 0.2)
    """
    if not (isinstance(n_steps, int | np.integer) and n_steps >= 1):
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    if not (np.isfinite(sd) and sd >= 0):
        raise ValueError(f"sd must be a non-negative number, got {sd!r}")
    if not -1 < persistence < 1:
        raise ValueError(f"persistence must lie in (-1, 1), got {persistence!r}")
    rng = np.random.default_rng(random_state)
    innovations = rng.standard_normal(int(n_steps)) * sd * np.sqrt(1 - persistence**2)
    path = np.empty(int(n_steps))
    path[0] = rng.standard_normal() * sd
    for k in range(1, int(n_steps)):
        path[k] = persistence * path[k - 1] + innovations[k]
    return path - sd**2 / 2
