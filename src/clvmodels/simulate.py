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


# --------------------------------------------------------------------------------------
# A transaction log with common period shocks (issue 13: coverage of portfolio totals)
# --------------------------------------------------------------------------------------
__all__ += ["ar1_log_shocks", "simulate_transaction_log"]


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


def simulate_transaction_log(
    n_customers: int,
    bgnbd: dict[str, float],
    gamma_gamma: dict[str, float],
    *,
    acquisition: float = 12.0,
    length: float = 78.0,
    shock_sd: float = 0.0,
    shock_persistence: float = 0.0,
    shock_step: float = 1.0,
    start: str = "1997-01-01",
    time_unit: str = "W",
    random_state: Any = None,
) -> pd.DataFrame:
    """A BG/NBD + Gamma-Gamma transaction log, optionally with common period shocks.

    Customers are acquired at a uniformly random day in the first ``acquisition`` time
    units and observed until ``length``. While alive, customer ``i`` buys at rate
    ``lambda_i * m(t)``, where ``m(t) = exp(e_k)`` in shock step ``k`` is common to all
    customers (``e`` from :func:`ar1_log_shocks`; no shocks: ``m = 1``, the BG/NBD
    itself); after each repeat purchase it drops out with probability ``p_i``. Every
    purchase, the first included, is worth ``Gamma(p, rate nu_i)``. Purchases are
    uniform in the *operational time* ``M(t) = int_0^t m``, so each customer's process
    is the BG/NBD's with time run through ``M``.

    Parameters
    ----------
    n_customers : int
    bgnbd : dict
        ``{"r", "alpha", "a", "b"}`` in ``time_unit``.
    gamma_gamma : dict
        ``{"p", "q", "gamma"}``.
    acquisition, length : float
        Acquisition window and whole observation length, in ``time_unit``.
    shock_sd, shock_persistence, shock_step : float
        Stationary sd and lag-one correlation of the log shocks, and the length of a
        shock step in ``time_unit``.
    start : str
        Date of time 0.
    time_unit : str
        Unit of the parameters and lengths ("D" or "W").
    random_state : int or numpy Generator, optional

    Returns
    -------
    DataFrame
        ``customer_id``, ``date`` (day resolution), ``amount``, one row per purchase,
        sorted by customer and date; ``attrs["shock_multipliers"]`` holds ``m`` per step.

    Examples
    --------
    >>> log = simulate_transaction_log(500, {"r": 0.24, "alpha": 4.41, "a": 0.79, "b": 2.43},
    ...                                {"p": 6.25, "q": 3.74, "gamma": 15.44},
    ...                                shock_sd=0.2, shock_persistence=0.5, random_state=3)
    >>> list(log.columns), int(log["customer_id"].nunique())
    (['customer_id', 'date', 'amount'], 500)
    >>> len(log.attrs["shock_multipliers"])
    78
    """
    from clvmodels.units import TIME_UNIT_DAYS

    _check_positive(**bgnbd, **gamma_gamma, acquisition=acquisition, length=length,
                    shock_step=shock_step)  # fmt: skip
    if acquisition > length:
        raise ValueError(f"acquisition ({acquisition}) must not exceed length ({length})")
    rng = np.random.default_rng(random_state)
    n = int(n_customers)
    unit_days = TIME_UNIT_DAYS[time_unit]
    n_steps = int(np.ceil(length / shock_step))
    multipliers = np.exp(ar1_log_shocks(n_steps, shock_sd, shock_persistence, random_state=rng))
    edges = np.arange(n_steps + 1) * shock_step
    operational = np.r_[0.0, np.cumsum(multipliers * shock_step)]  # M at the step edges

    def clock(t: np.ndarray) -> np.ndarray:
        return np.interp(t, edges, operational)

    acquired_day = rng.integers(0, max(1, int(acquisition * unit_days)), size=n)
    acquired = acquired_day / unit_days
    lam = rng.gamma(bgnbd["r"], 1.0 / bgnbd["alpha"], size=n)
    p_drop = np.clip(rng.beta(bgnbd["a"], bgnbd["b"], size=n), 1e-12, 1.0)
    window = clock(np.full(n, float(length))) - clock(acquired)
    arrivals = rng.poisson(lam * window)
    kept = np.minimum(arrivals, rng.geometric(p_drop))
    # The first `kept` of `arrivals` uniform operational times, customer by customer.
    owner = np.repeat(np.arange(n), arrivals)
    u = rng.random(owner.size)
    order = np.lexsort((u, owner))
    owner, u = owner[order], u[order]
    rank = np.arange(owner.size) - np.repeat(np.cumsum(arrivals) - arrivals, arrivals)
    keep = rank < kept[owner]
    owner, u = owner[keep], u[keep]
    at = clock(acquired[owner]) + u * window[owner]
    repeat_time = np.interp(at, operational, edges)
    repeat_day = np.maximum(np.floor(repeat_time * unit_days).astype(np.int64), acquired_day[owner])
    customers = np.r_[np.arange(n), owner]
    days = np.r_[acquired_day, repeat_day]
    nu = rng.gamma(gamma_gamma["q"], 1.0 / gamma_gamma["gamma"], size=n)
    amount = rng.gamma(gamma_gamma["p"], 1.0 / nu[customers])
    order = np.lexsort((days, customers))
    log = pd.DataFrame(
        {
            "customer_id": customers[order],
            "date": pd.Timestamp(start) + pd.to_timedelta(days[order], unit="D"),
            "amount": np.round(amount[order], 2),
        }
    )
    log.attrs["shock_multipliers"] = multipliers
    return log
