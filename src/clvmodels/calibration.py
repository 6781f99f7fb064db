"""Calibration shown, not claimed: do the intervals and probabilities hold on a holdout?

Small pure functions on arrays, which :func:`clvmodels.evaluation.compare` applies to
every model and :mod:`clvmodels.plotting` draws:

* :func:`randomized_pit`: the probability integral transform of each customer's
  realised value under its predictive draws. Realised values have atoms (most
  customers spend exactly 0 in a holdout), so the PIT is randomised within each atom
  (Czado, Gneiting & Held 2009, "Predictive model assessment for count data",
  *Biometrics* 65(4)): under a calibrated forecast it is uniform on [0, 1].
* :func:`pit_histogram` and :func:`coverage_by_level`: its histogram, and the share
  of customers inside the central interval of each level (a customer is inside the
  central ``L`` interval when its PIT lies in ``[(1 - L) / 2, (1 + L) / 2]``), each
  with its binomial standard error.
* :func:`total_coverage`: whether a realised total lies in its interval, and by how
  many interval widths outside it falls.
* :func:`rank_share_tiers` and :func:`tier_calibration`: the tiers customers reached by
  realised value, and of customers given probability ``~p`` of a tier, the share that
  reached it, by probability bin.
* :func:`logistic_recalibration` and :func:`recalibrated`: the logistic calibration
  regression ``logit P(reached) = a + b logit(p)`` (Cox 1958, "Two further
  applications of a model for binary regression", *Biometrika* 45; Platt scaling), fitted
  where the outcome is known and applied to probabilities whose outcome is not yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit

__all__ = [
    "ModelCalibration",
    "coverage_by_level",
    "logistic_recalibration",
    "pit_histogram",
    "randomized_pit",
    "rank_share_tiers",
    "recalibrated",
    "tier_calibration",
    "tier_probability_gap",
    "tier_reach_shares",
    "total_coverage",
]

#: Central interval levels of the coverage curve.
LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def _binomial_se(share: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """Standard error of a share of ``n`` under its nominal (or observed) value."""
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, np.sqrt(share * (1 - share) / n), np.nan)


def randomized_pit(draws: np.ndarray, realised: np.ndarray, random_state: Any = None) -> np.ndarray:
    """Randomised PIT of each column's realised value under its draws.

    ``F(y-) + V (F(y) - F(y-))`` with ``F`` the empirical distribution of the column's
    draws and ``V`` uniform on [0, 1].

    Parameters
    ----------
    draws : ndarray (n_draws, n)
        Predictive draws, one column per customer.
    realised : ndarray (n,)
    random_state : int or numpy Generator, optional

    Examples
    --------
    A customer who spends 0 where half of the draws are 0 gets a PIT uniform on
    [0, 0.5]; one above every draw gets 1:

    >>> draws = np.array([[0.0, 1.0], [0.0, 2.0], [5.0, 3.0], [7.0, 4.0]])
    >>> pit = randomized_pit(draws, np.array([0.0, 9.0]), random_state=0)
    >>> bool(0 <= pit[0] <= 0.5), float(pit[1])
    (True, 1.0)
    """
    values = np.asarray(draws, dtype=float)
    y = np.asarray(realised, dtype=float)
    if values.ndim != 2 or y.shape != (values.shape[1],):
        raise ValueError(
            f"draws must be (n_draws, n) and realised (n,), got {values.shape} and {y.shape}"
        )
    below = (values < y).mean(axis=0)
    at_or_below = (values <= y).mean(axis=0)
    u = np.random.default_rng(random_state).random(y.size)
    return below + u * (at_or_below - below)


def pit_histogram(pit: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Share of PIT values in ``bins`` equal bins of [0, 1], with binomial standard
    errors around the uniform ``1 / bins``.

    Examples
    --------
    >>> pit_histogram(np.array([0.05, 0.15, 0.55, 0.95]), bins=2)["share"].tolist()
    [0.5, 0.5]
    """
    values = np.asarray(pit, dtype=float)
    if bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    counts = np.histogram(values, bins=int(bins), range=(0.0, 1.0))[0]
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    share = counts / max(values.size, 1)
    return pd.DataFrame(
        {
            "lower": edges[:-1],
            "upper": edges[1:],
            "customers": counts,
            "share": share,
            "se": _binomial_se(np.full(int(bins), 1.0 / bins), values.size),
        }
    )


def coverage_by_level(pit: np.ndarray, levels: Any = LEVELS) -> pd.DataFrame:
    """Share of customers inside their central predictive interval at each level.

    Examples
    --------
    >>> pit = np.linspace(0.0005, 0.9995, 1000)  # perfectly uniform
    >>> coverage_by_level(pit, [0.5, 0.9])["coverage"].tolist()
    [0.5, 0.9]
    """
    values = np.asarray(pit, dtype=float)
    levels = np.asarray(levels, dtype=float)
    if np.any((levels <= 0) | (levels >= 1)):
        raise ValueError(f"levels must lie strictly between 0 and 1, got {levels.tolist()}")
    low, high = (1 - levels) / 2, (1 + levels) / 2
    inside = (values[None, :] >= low[:, None]) & (values[None, :] <= high[:, None])
    return pd.DataFrame(
        {
            "level": levels,
            "coverage": inside.mean(axis=1),
            "se": _binomial_se(levels, values.size),
        }
    )


def total_coverage(realised: float, lower: float, upper: float) -> dict[str, float | bool]:
    """Whether a realised total lies in ``[lower, upper]``, and by how many interval
    widths outside it falls (positive above, negative below, 0 inside).

    Examples
    --------
    CDNOW's holdout (issue 13): 70,976 realised against [53,370, 66,686]:

    >>> out = total_coverage(70_976, 53_370, 66_686)
    >>> out["inside"], round(out["widths_outside"], 2)
    (False, 0.32)
    """
    lower, upper, realised = float(lower), float(upper), float(realised)
    if not upper >= lower:
        raise ValueError(f"upper ({upper}) must not be below lower ({lower})")
    width = upper - lower
    if realised > upper:
        outside = (realised - upper) / width if width > 0 else np.inf
    elif realised < lower:
        outside = (realised - lower) / width if width > 0 else -np.inf
    else:
        outside = 0.0
    return {"inside": bool(lower <= realised <= upper), "widths_outside": float(outside)}


def rank_share_tiers(values: np.ndarray, shares: Any) -> np.ndarray:
    """Tier index (0 = most valuable) of each value by rank share.

    As in :func:`clvmodels.segment`: with ``N`` values and cumulative share ``S`` of a
    tier's upper boundary, a value is above the boundary when fewer than ``S * N``
    values are strictly higher; equal values share a tier.

    Examples
    --------
    >>> rank_share_tiers(np.array([9.0, 5.0, 5.0, 1.0, 0.0]), [0.2, 0.4, 0.4]).tolist()
    [0, 1, 1, 2, 2]
    """
    x = np.asarray(values, dtype=float)
    s = np.asarray(shares, dtype=float)
    if s.ndim != 1 or s.size < 1 or np.any(s <= 0):
        raise ValueError(f"shares must be positive, got {s.tolist()}")
    ordered = np.sort(x)
    strictly_higher = x.size - np.searchsorted(ordered, x, side="right")
    # Rounded: 0.2 + 0.4 is 0.6000000000000001, and 3 customers must not be fewer than it.
    cumulative = np.round(np.cumsum(s)[:-1] * x.size, 9)
    return np.searchsorted(cumulative, strictly_higher, side="right")


def tier_probability_gap(table: pd.DataFrame) -> float:
    """Mean absolute gap between the probability given and the share that reached the
    tier, over the bins of a :func:`tier_calibration` table, weighted by customers.

    Examples
    --------
    >>> table = pd.DataFrame({"customers": [90, 10], "probability": [0.05, 0.9],
    ...                       "share": [0.05, 0.5]})
    >>> round(tier_probability_gap(table), 3)
    0.04
    """
    gaps = np.abs(table["probability"] - table["share"])
    return float(gaps @ table["customers"] / max(table["customers"].sum(), 1))


def tier_reach_shares(values: np.ndarray, shares: Any) -> np.ndarray:
    """Probability that each value is in each rank-share tier, ties broken at random.

    With ``N`` values, tier ``k`` holds the ranks (from the top, counted from 0) from
    ``C_{k-1} N`` up to below ``C_k N``, ``C`` the cumulative shares. A value that no
    other equals has one rank, and its tier is :func:`rank_share_tiers`'. Equal values
    (most customers realise exactly 0 in a holdout) share the ranks of their group,
    each with the same chance, as :func:`clvmodels.segment` shares the ranks of the
    customers tied at zero among the tiers they straddle.

    Returns
    -------
    ndarray (n_values, n_tiers)
        Rows sum to 1.

    Examples
    --------
    Five values, tiers of 20% / 40% / 40%; the three zeros hold ranks 2, 3 and 4:

    >>> tier_reach_shares(np.array([9.0, 5.0, 0.0, 0.0, 0.0]), [0.2, 0.4, 0.4]).round(2).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.33, 0.67], [0.0, 0.33, 0.67], [0.0, 0.33, 0.67]]
    """
    x = np.asarray(values, dtype=float)
    s = np.asarray(shares, dtype=float)
    if s.ndim != 1 or s.size < 1 or np.any(s <= 0):
        raise ValueError(f"shares must be positive, got {s.tolist()}")
    ordered = np.sort(x)
    higher = x.size - np.searchsorted(ordered, x, side="right")  # first rank of the group
    ties = np.searchsorted(ordered, x, side="right") - np.searchsorted(ordered, x, side="left")
    # Integer ranks r with r >= C N are those from ceil(C N) up (rounded as rank_share_tiers).
    edges = np.ceil(np.round(np.concatenate([[0.0], np.cumsum(s)]) * x.size, 9))
    edges[-1] = max(edges[-1], x.size)
    start = np.maximum(higher[:, None], edges[None, :-1])
    stop = np.minimum((higher + ties)[:, None], edges[None, 1:])
    return np.clip(stop - start, 0.0, None) / ties[:, None]


#: Probabilities are kept this far from 0 and 1 before their logit is taken: a share of
#: a few hundred draws is often exactly 0 or 1.
PROBABILITY_FLOOR = 1e-4


def _logit(probability: Any) -> np.ndarray:
    return logit(np.clip(np.asarray(probability, dtype=float), PROBABILITY_FLOOR,
                         1 - PROBABILITY_FLOOR))


def logistic_recalibration(probability: Any, reached: Any) -> tuple[float, float]:
    """Intercept ``a`` and slope ``b`` of ``logit P(reached) = a + b logit(p)``.

    Maximum likelihood (a two-parameter logistic regression, by Newton's method).
    ``b < 1`` says the probabilities are too confident (too far from 0.5), ``a < 0``
    that the event happens less often than they say; ``(0, 1)`` is calibrated.
    Probabilities are clipped to ``[1e-4, 1 - 1e-4]`` first, and identical pairs
    counted once with their weight.

    Examples
    --------
    Overconfident probabilities of an event that happens as often as
    ``recalibrated(p, -0.3, 0.6)``:

    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.01, 0.99, 100_000)
    >>> reached = rng.random(p.size) < recalibrated(p, -0.3, 0.6)
    >>> a, b = logistic_recalibration(p, reached)
    >>> round(a, 1), round(b, 1)
    (-0.3, 0.6)
    """
    z = _logit(probability)
    hit = np.asarray(reached, dtype=bool)
    if z.shape != hit.shape:
        raise ValueError(f"probability and reached differ in shape: {z.shape} and {hit.shape}")
    if hit.all() or not hit.any():
        raise ValueError(
            "logistic recalibration needs outcomes of both kinds; all "
            f"{hit.size} are {bool(hit.any())}"
        )
    pairs, counts = np.unique(np.stack([z.ravel(), hit.ravel()]), axis=1, return_counts=True)
    design = np.stack([np.ones(pairs.shape[1]), pairs[0]], axis=1)
    y, w = pairs[1], counts.astype(float)
    coef = np.array([0.0, 1.0])
    for _ in range(100):
        mu = expit(design @ coef)
        gradient = design.T @ (w * (y - mu))
        hessian = (design * (w * mu * (1 - mu))[:, None]).T @ design
        step = np.linalg.solve(hessian + 1e-12 * np.eye(2), gradient)
        coef += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(coef[0]), float(coef[1])


def recalibrated(probability: Any, intercept: float, slope: float) -> np.ndarray:
    """``expit(a + b logit(p))``: probabilities mapped by a logistic recalibration.

    The map keeps the order of the probabilities; ``(0, 1)`` leaves them as they were
    (within the ``1e-4`` clip).

    Examples
    --------
    >>> recalibrated(np.array([0.1, 0.5, 0.9]), 0.0, 0.5).round(3).tolist()
    [0.25, 0.5, 0.75]
    """
    return expit(intercept + slope * _logit(probability))


def tier_calibration(probability: np.ndarray, reached: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Of customers given probability ``~p`` of a tier, the share that reached it.

    Customers are grouped in ``bins`` equal bins of the probability; per bin: the
    number of customers, the mean probability given, the share that reached the tier
    and its binomial standard error (under the mean probability: the noise a
    calibrated forecast shows). Empty bins are left out. ``reached`` is True/False, or
    each customer's probability of having reached the tier where ties leave it open
    (:func:`tier_reach_shares`).

    Examples
    --------
    >>> p = np.r_[np.full(100, 0.05), np.full(100, 0.95)]
    >>> hit = np.r_[np.arange(100) < 5, np.arange(100) < 95]
    >>> tier_calibration(p, hit)[["probability", "share"]].round(2).values.tolist()
    [[0.05, 0.05], [0.95, 0.95]]
    """
    p = np.asarray(probability, dtype=float)
    hit = np.asarray(reached, dtype=float)
    if p.shape != hit.shape:
        raise ValueError(f"probability and reached differ in shape: {p.shape} and {hit.shape}")
    if np.any(~np.isfinite(p) | (p < 0) | (p > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    if np.any(~(hit >= 0) | (hit > 1)):
        raise ValueError("reached must be True/False or a probability in [0, 1]")
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, int(bins) - 1)
    n = np.bincount(which, minlength=bins)
    mean_p = np.bincount(which, weights=p, minlength=bins)
    hits = np.bincount(which, weights=hit, minlength=bins)
    kept = n > 0
    mean_p = mean_p[kept] / n[kept]
    return pd.DataFrame(
        {
            "lower": edges[:-1][kept],
            "upper": edges[1:][kept],
            "customers": n[kept],
            "probability": mean_p,
            "share": hits[kept] / n[kept],
            "se": _binomial_se(mean_p, n[kept]),
        }
    )


@dataclass(eq=False)
class ModelCalibration:
    """One model's calibration on a holdout, as :func:`clvmodels.compare` records it in
    ``attrs["calibration"]`` (compared by identity, so pandas can copy the table).

    Attributes
    ----------
    total : dict
        ``realised``, ``lower``, ``upper`` (the predictive interval of the total),
        ``inside`` and ``widths_outside``.
    pit : DataFrame
        :func:`pit_histogram` of the customers' realised values.
    coverage : DataFrame
        :func:`coverage_by_level`.
    tiers : DataFrame
        :func:`tier_calibration`; ``attrs`` name the probability column and the tier.
    interval : float
    """

    total: dict[str, Any]
    pit: pd.DataFrame
    coverage: pd.DataFrame
    tiers: pd.DataFrame
    interval: float
