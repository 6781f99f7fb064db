"""Shocks common to all customers: what a portfolio total's interval leaves out.

The intervals of :func:`clvmodels.customer_lifetime_value` hold the uncertainty of the
model's parameters and the purchase noise of customers who behave independently of one
another. A portfolio total has two further sources of error, which this module adds.

Common period shocks
--------------------
Real periods share shocks (season, promotions, outages): every customer buys more in
some weeks and less in others. Summed over thousands of customers the independent
purchase noise averages out, these shocks do not, so a total's interval that ignores
them is too narrow however good the model. :func:`estimate_common_shocks` measures
them on the calibration log, :meth:`CommonShocks.multipliers` draws them for a
forecast, and :func:`shocked_total` carries them into the interval of a forecast's
portfolio total (the report does so by default).

*The shock model.* In shock step ``k`` (one time unit by default, a week for weekly
data and for units shorter than a week: :func:`default_shock_step`) every customer's
purchase rate is multiplied by ``exp(e_k)``, where ``e`` is a stationary Gaussian AR(1)
process with standard deviation ``sigma`` and lag-one correlation ``phi``. A forecast
is further off by the model's own level error ``exp(d)``, ``d ~ N(0, tau^2)``, constant
over the horizon (a model that under-forecasts the next months, as BG/NBD does on
CDNOW's holdout).

*Estimation.* (1) The tracking curve: the model's expected repeat purchases of the
cohort per step (:func:`clvmodels.evaluation.expected_cumulative_purchases`) against the
actual ones, as log ratios ``z_k`` over the steps where at least ``min_expected``
purchases are expected (on a random sample of ``max_customers`` customers of a larger
log). (2) Purchase noise: ``n_simulations`` cohorts with the same acquisition days are
simulated from the fitted model at its point estimate (the model's own
``simulate_purchases`` for new customers) and recorded as a log of days records them (a
purchase on a customer's first day is part of its first purchase), which gives the mean
(the small Jensen bias of a log, and the first days' purchases that the model counts and
the log cannot show) and the variance ``u_k`` of ``z_k`` that the model alone explains,
heterogeneity and dropout included; their covariance across steps is a level common to
all steps, which the restricted likelihood below ignores. (3)
``z_k = b + e_k + noise_k`` is fitted by restricted maximum likelihood (REML: the level
``b``, which the fit absorbs, is integrated out) on a grid of ``(sigma, phi)``, with the
share of the shocks' linear trend that the fitted model took into its curve removed
from ``e`` (*The trend a fit absorbs*, below). (4)
Rolling-origin backtests inside the window: the model is refitted at cut points
``n_backtests`` blocks of ``backtest_length`` before the end, forecasts the next block,
and ``log(actual / forecast)`` of the block's purchases is compared with what purchase
noise and parameter error (simulated from the refitted model's parameter draws), the
AR(1) shocks and the level error ``tau`` explain. (5) The posterior over the grid of
``(sigma, phi, tau)`` combines both likelihoods with weakly informative priors
(half-Cauchy on ``sigma``, half-normal on ``tau``, and on ``phi`` in [-0.5, 0.95] the
reference prior of a stationary AR(1), proportional to ``(1 - phi^2)^(-1/2)`` (Berger
and Yang 1994; a uniform prior leaves the posterior mean 0.07 below a true 0.7 on 27
weekly steps of shocks and purchase noise, this one 0.03 below): a few backtests cannot
tell a level error apart from shocks, so a large one needs strong evidence, while shocks
are seen in every step); few periods leave ``sigma`` and ``tau`` uncertain, and every
forecast draw takes its own ``(sigma, phi, tau)`` from the posterior, so that this
uncertainty widens the interval (the role of a degrees-of-freedom correction).

*Applying.* :func:`shocked_total` multiplies every forecast draw's total by a shock
effect: by default one measured by refits on simulated shocked cohorts (below), where
no model can be refitted so (a Bayesian or grouped fit whose maximum-likelihood version
does not fit, or refits that fail) and with ``n_refits=0`` a level-only multiplier.
*Level-only multipliers.* A draw's shock path over the horizon is
``s_h = e_{K+h} - sum_k w_k e_k + d`` with the path ``e`` simulated over the calibration
steps and the horizon: the fitted model matched the calibration purchases, so its level
carries the calibration shocks averaged with weights ``w_k`` proportional to the
expected purchases of each step. Each step's multiplier is
``exp(s_h - Var(s_h) / 2)``, so that ``E[multiplier] = 1``: shocks widen intervals but
never move the expected total (mean-preserving). A forecast period's multiplier is the
average over the steps it covers. Each draw's portfolio total (expected and simulated)
is multiplied by the average of its period multipliers weighted by the share of the
expected (discounted) value that falls in each period (:func:`period_value_shares`).
Multiplying a simulated total rather than re-simulating at the shocked rate scales its
purchase noise by the shock as well, a second-order difference. The factors themselves
come from :func:`shock_factors`; :func:`clvmodels.segment` takes them
(``common_multipliers``) for the tiers' totals, and the pipeline's ``common_shocks=True``
(``clvmodels forecast --common-shocks``) applies them to both.

*Refits* (``n_refits > 0``; :data:`DEFAULT_REFITS` by default). A refitted model absorbs
more of the calibration shocks than their level: on 96 simulated cohorts with weekly
shocks of sd 0.3 and lag-one 0.7, the log forecast error of the 39-week total regressed
on the mean log shock of the last 8 of 39 calibration weeks (19% of the expected
purchases) with a coefficient of -0.57 and on that of the first 31 weeks (81%) with
-0.14, where a level alone gives -0.19 and -0.81: a late shock moves customers' recency,
which the forecast reads.
:func:`simulated_shock_effects` measures this response: each replicate draws
``(sigma, phi)`` from the posterior and an AR(1) path over the calibration window and
the horizon, simulates the customers of the summary (their acquisition times, the
model's point estimate) once and reads the same purchases twice, in calendar time and
in the operational time ``M(t) = int exp(e)`` the shocks make (as
:func:`clvmodels.simulate.simulate_transactions` simulates shocks); the model is refitted
on both calibration summaries, and the replicate's effect is the difference of their
holdout errors ``log(actual / forecast)``, in which purchase noise and parameter error,
shared by both readings, cancel. With the true ``(0.3, 0.7)`` the effects' log sd over
39 weeks is 0.168 against 0.175 realised beyond the plain interval's spread on those
cohorts, and 0.158 from the level-only multipliers. Each draw's total is multiplied by
``exp(x - v / 2)``, ``x`` normal with mean 0 and variance ``v = s^2 + tau^2``: ``s`` is
the spread of the replicates' effects as a prediction interval of one more effect
(:func:`predictive_log_spread`; resampling 50 effects, whose empirical 5% and 95%
quantiles hold a new one only about 86% of the time, covered 83.3% of 360 shocked
cohorts below, this 87.5% at the time) and ``tau`` a level error drawn from the
posterior. It costs two refits per replicate.

*Coverage* (``benchmarks/bench_coverage.py``; simulated cohorts of 2,357 customers, 39 +
39 weeks, 360 per shocked setting, binomial se 1.6%, and 180 without shocks, se 2.2%):
the 90% interval of the 39-week total covers 88.6% with weekly shocks (0.2, 0.5) and
88.3% with (0.3, 0.7) by the default refits, 86.7% and 84.7% by the level-only
multipliers, against 63.6% and 45.6% plain. Without shocks the default interval is 8.2%
wider than the plain one and covers 88.9% (plain 87.8%). The level-only multipliers
fall short even with the true ``(sigma, phi)`` (81.7% of 120 cohorts with (0.3, 0.7)):
a refitted model responds to the late calibration shocks more, and to the early ones
less, than their level says. With persistent shocks the default made with the true
``(sigma, phi)`` instead of their estimate covers 88.9% of the same 360 cohorts: the
estimate varies much from cohort to cohort on 38 weekly steps (the interval's log
half-width has an sd of 0.126 across cohorts, 0.036 with the true values, for similar
means, 0.342 and 0.320). On AR(1) series observed in purchase noise with no model fitted, the
posterior predictive interval of a 39-week mean shock holds it 88-92% of the time
(runs of 400 and 800 series with (0.2, 0.5) and (0.3, 0.7)). On CDNOW's 11 rolling
cuts (13-week holdouts) the default held all 11 realised totals.

*The trend a fit absorbs* (``estimate_common_shocks(..., trend_absorbed=)``). The fitted
model takes the calibration shocks' level, and it also bends its curve towards their
drift, so the residuals keep less of the shocks' slow variation than the shocks had and
a likelihood that integrates out the level alone reads ``sigma`` low: on 200 of the
simulated cohorts with (0.3, 0.7) its 90% posterior interval held the true 0.3 for
86.0% of them (entirely below it for 10.5%), and the total's interval covered 86.7%.
:func:`absorbed_trend_share` measures the share by refits: a cohort with the data's
acquisition days is simulated from the point estimate and read in the operational times
of a rising and of a falling log-rate trend, the model is refitted on both, and the
trend that their residuals differ by, against the one put in, is what the fit left.
BG/NBD absorbs about half: 0.50-0.53 on CDNOW (three seeds), and 0.48-0.50 on two
simulated logs of 20,000 customers, where refits of the same logs redated through the
public fitting and tracking path lost 0.42 and 0.46 (the test's oracle). The rest of
the shocks' shape, orthogonal to level and trend, is kept whole: on 16 AR(1) paths read
by a cohort of CDNOW's acquisition days ten times over, refits absorbed -0.06 to 0.06 of
it. The likelihood then takes the shocks as ``(I - c Q) e``
(:func:`tracking_log_posterior`). ``trend_absorbed=0`` is the level-only likelihood of
earlier versions; ``1`` integrates the whole trend out, which reached 88.6% with (0.3,
0.7) but held only 8 of CDNOW's 11 rolling totals (10 level-only): CDNOW's holdouts
drift, and a trend in its calibration residuals, which a likelihood that takes the
trend out entirely ignores, foretold part of it.

*Assumptions.* Shocks multiply all customers' purchase rates alike (not their spend), by
running their clocks faster or slower; they are stationary over calibration and horizon,
Gaussian in logs, and independent of customers' histories; the tracking curve's periods
are long enough for a log ratio (``min_expected``); the level error is as large over the
horizon as over a backtest block; the shocks' relative effect on a total's value is
their effect on its discounted purchases (spend per purchase does not move with them); a
cohort's effects are those of a random sample of 20,000 of its customers (they are
relative, so the sample changes their noise, not their size); the fit takes the same
share of any linear trend in the shocks, and nothing of their shape beyond level and
trend (measured once, on cohorts simulated from the point estimate). Rank-share tiers are
unchanged by a shock common to all customers (every customer is scaled alike), so only
tier *totals*, and tiers by fixed value thresholds, are affected.

*Limits.* The future shocks are drawn from their stationary distribution: the last
calibration shocks' information about the first forecast steps (fading as
``phi^h``) is not used, and nothing is foreseen that the calibration window did not
show (a drift that starts after the cut is outside the model, and outside the
interval unless earlier backtests showed drifts of that size). The posterior of
``phi`` is wide on a few dozen steps and, even under the reference prior, its mean
lies a little below a high true persistence (0.68 on average for a true 0.7 over 27
steps of shocks and purchase noise; 0.63 under a uniform prior); drawing every
replicate's ``(sigma, phi)`` from it carries that uncertainty into the interval.

*Bayesian and grouped models.* The estimator simulates cohorts from one point estimate
and refits the model at every backtest cut, which MCMC would make hours long. For a
Bayesian fit (pooled or with groups) :func:`estimate_common_shocks` measures the
shocks against the model's maximum-likelihood version
(``model.maximum_likelihood_model()``: the same declaration and settings, one
population) fitted on the calibration log: the shocks belong to the calendar, which
both models see alike. :func:`shocked_total` then applies them to the Bayesian
forecast's own draws, with effects measured by refits of the same maximum-likelihood
version (fitted on the forecast's summary): how a refit absorbs calibration shocks is a
property of the model's form, which both share. Models with covariates that a summary
of the log does not hold cannot be simulated from one point estimate.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from clvmodels._summary_options import summary_options_for
from clvmodels._validation import whole_number
from clvmodels.backtest import backtest_cuts, backtest_purchases
from clvmodels.clv import CLVForecast, interval_probabilities, prediction_bounds
from clvmodels.data import compress, rfm_summary, validate_summary
from clvmodels.errors import ConvergenceError
from clvmodels.evaluation import expected_cumulative_purchases
from clvmodels.models.base import TransactionModel
from clvmodels.models.beta_geo_cnbd import LITT_COLUMN
from clvmodels.units import TIME_UNIT_DAYS, unit_name

__all__ = [
    "DEFAULT_REFITS",
    "MAX_CUSTOMERS",
    "TREND_COHORTS",
    "CommonShocks",
    "ShockFactors",
    "absorbed_trend_share",
    "ar1_correlation",
    "default_shock_step",
    "estimate_common_shocks",
    "log_phi_prior",
    "period_value_shares",
    "predictive_log_spread",
    "reml_log_likelihood",
    "shock_clock",
    "shock_estimate_refusal",
    "shock_factors",
    "shock_refit_refusal",
    "shocked_total",
    "simulated_shock_effects",
    "total_multipliers",
    "tracking_log_posterior",
]

#: Fewest refits whose effects make a spread (``shocked_total(..., n_refits=)``).
_MIN_REFITS = 10
#: Refits of :func:`shocked_total` by default, for a model that can be refitted (two fits
#: of a cohort of at most 20,000 customers each; about 1.5 s of CPU for CDNOW's 23,570).
DEFAULT_REFITS = 50
#: Grid of the persistence ``phi`` (reference prior, :func:`log_phi_prior`).
PHI_GRID = np.round(np.arange(-0.5, 0.951, 0.05), 10)
#: Scales of the priors of ``sigma`` (per-step shock sd; half-Cauchy: a few percent is
#: plausible, tens of percent are not excluded) and ``tau`` (the model's level error;
#: half-normal: two backtests cannot support a heavy tail).
SIGMA_PRIOR_SCALE = 0.05
TAU_PRIOR_SCALE = 0.01
_N_SIGMA = 41
_N_TAU = 31
# Customers simulated for the purchase noise of the tracking curve: a larger cohort is
# sampled down to this size and its noise scaled up (:func:`_scaled_to_cohort`).
_MAX_SIMULATED_CUSTOMERS = 200_000
# Simulated (draw, customer) pairs per block of the noise and total simulations.
_BLOCK_PAIRS = 2_000_000
# Customers whose simulated histories the refits of :func:`simulated_shock_effects` read.
_MAX_REFIT_CUSTOMERS = 20_000
#: Simulated cohorts behind :func:`absorbed_trend_share` by default (two refits each).
TREND_COHORTS = 2
# Rise of the log purchase rate across the steps read, of the trend that
# absorbed_trend_share puts in: large against purchase noise, small enough for the
# refit's response to be linear (on CDNOW's BG/NBD a rise alone left 0.47 absorbed, a
# fall alone 0.51).
_TREND_PROBE = 0.3
#: Customers of the log :func:`estimate_common_shocks` reads by default: a larger log is
#: measured on a random sample (10M customers and 50M transactions in memory: 101 s and
#: a 12.2 GB peak for all of them, 31 s and 5.2 GB for a sample of a million).
MAX_CUSTOMERS = 1_000_000


# --------------------------------------------------------------------------------------
# Small pure functions
# --------------------------------------------------------------------------------------
def ar1_correlation(steps: np.ndarray, phi: float) -> np.ndarray:
    """Correlation matrix ``phi ** |k_i - k_j|`` of a stationary AR(1) at ``steps``.

    Examples
    --------
    >>> ar1_correlation(np.array([0, 1, 3]), 0.5).tolist()
    [[1.0, 0.5, 0.125], [0.5, 1.0, 0.25], [0.125, 0.25, 1.0]]
    """
    steps = np.asarray(steps, dtype=float)
    lags = np.abs(steps[:, None] - steps[None, :])
    if phi == 0:
        return (lags == 0).astype(float)
    return np.sign(phi) ** lags * np.abs(phi) ** lags


def reml_log_likelihood(
    residuals: np.ndarray,
    noise_var: np.ndarray,
    sigma: np.ndarray,
    correlation: np.ndarray,
    design: np.ndarray | None = None,
) -> np.ndarray:
    """Restricted log-likelihood of ``z = X b + e + noise`` with ``b`` integrated out.

    ``e ~ N(0, sigma^2 correlation)``, ``noise ~ N(0, diag(noise_var))``; one value per
    entry of ``sigma`` (up to a constant shared by all). ``design`` is ``X``, the
    ``(n, p)`` effects that a fit has absorbed (Patterson and Thompson 1971,
    *Biometrika* 58: 545-554): by default a level alone, a column of ones.

    Examples
    --------
    The likelihood of white residuals of variance 1 peaks near ``sigma^2 = 1 - 0.5``
    when the noise explains 0.5:

    >>> z = np.random.default_rng(0).standard_normal(300)
    >>> sig = np.linspace(0, 1.2, 61)
    >>> ll = reml_log_likelihood(z, np.full(300, 0.5), sig, np.eye(300))
    >>> round(float(sig[np.argmax(ll)] ** 2), 1)
    0.5
    """
    r = np.asarray(residuals, dtype=float)
    n = r.size
    X = np.ones((n, 1)) if design is None else np.asarray(design, dtype=float).reshape(n, -1)
    sigma = np.atleast_1d(np.asarray(sigma, dtype=float))
    cov = (
        np.diag(np.asarray(noise_var, dtype=float))[None]
        + (sigma**2)[:, None, None] * (np.asarray(correlation, dtype=float)[None])
    )
    chol = np.linalg.cholesky(cov)
    rhs = np.broadcast_to(np.column_stack([X, r]), (sigma.size, n, X.shape[1] + 1))
    half = np.linalg.solve(chol, rhs)  # L^-1 [X, r]
    hx, hr = half[..., :-1], half[..., -1]
    log_det = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    x_x = np.einsum("sia,sib->sab", hx, hx)  # X' V^-1 X
    x_r = np.einsum("sia,si->sa", hx, hr)
    r_r = np.einsum("si,si->s", hr, hr)
    fitted = np.einsum("sa,sa->s", x_r, np.linalg.solve(x_x, x_r[..., None])[..., 0])
    return -0.5 * (log_det + np.linalg.slogdet(x_x)[1] + r_r - fitted)


def log_phi_prior(phi: np.ndarray) -> np.ndarray:
    """Log reference prior of a stationary AR(1)'s lag-one correlation, up to a constant.

    ``p(phi) ~ (1 - phi^2)^(-1/2)`` on ``(-1, 1)`` (Berger and Yang 1994, *Econometric
    Theory* 10: 461-482). Short series pull a flat prior's posterior towards zero; this
    prior gives persistent values the weight their information asks for.

    Examples
    --------
    >>> log_phi_prior(np.array([0.0, 0.6])).round(3).tolist()
    [0.0, 0.223]
    """
    return -0.5 * np.log1p(-np.asarray(phi, dtype=float) ** 2)


def tracking_log_posterior(
    residuals: np.ndarray,
    noise_var: np.ndarray,
    steps: np.ndarray,
    sigma: np.ndarray,
    phi: np.ndarray,
    sigma_prior_scale: float = SIGMA_PRIOR_SCALE,
    *,
    trend_absorbed: float = 0.0,
) -> np.ndarray:
    """Log posterior, up to a constant, of the shock sd and persistence on the grid
    ``sigma`` x ``phi`` from the tracking residuals alone.

    The residuals ``z_k`` at ``steps`` are ``b + e_k + noise_k`` (see
    :func:`reml_log_likelihood`), the level ``b`` integrated out. A model fitted to the
    calibration window also bends its curve towards a drift of the shocks: of the
    shocks' least-squares linear trend over ``steps`` its residuals keep
    ``1 - trend_absorbed`` (:func:`absorbed_trend_share` measures the share), so the
    shocks enter as ``(I - c Q) e`` with ``c = trend_absorbed`` and ``Q`` the
    projection on the centred trend. With ``trend_absorbed=1`` the trend is integrated
    out like the level (``b_0 + b_1 k``). The priors are a half-Cauchy on ``sigma``
    (times the widths of its grid cells, which need not be equal) and
    :func:`log_phi_prior`.

    Examples
    --------
    Two hundred steps of shocks with sd 0.3 and persistence 0.7 under purchase noise
    of sd 0.1:

    >>> rng = np.random.default_rng(3)
    >>> e = np.zeros(200)
    >>> for k in range(1, 200):
    ...     e[k] = 0.7 * e[k - 1] + np.sqrt(1 - 0.49) * rng.standard_normal()
    >>> z = 0.3 * e + 0.1 * rng.standard_normal(200)
    >>> sigma, phi = np.linspace(0, 1, 101), PHI_GRID
    >>> log_post = tracking_log_posterior(z, np.full(200, 0.01), np.arange(200), sigma, phi)
    >>> post = np.exp(log_post - log_post.max())
    >>> post /= post.sum()
    >>> bool(0.6 < post.sum(axis=0) @ phi < 0.8), bool(0.25 < post.sum(axis=1) @ sigma < 0.35)
    (True, True)
    """
    sigma, phi = np.asarray(sigma, dtype=float), np.asarray(phi, dtype=float)
    steps = np.asarray(steps, dtype=float)
    share = float(trend_absorbed)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"trend_absorbed must lie in [0, 1], got {trend_absorbed!r}")
    centred = steps - steps.mean()
    design = np.ones((steps.size, 1))
    kept = np.eye(steps.size)  # I - c Q: what the residuals keep of the shocks
    if share == 1.0:
        design = np.column_stack([design, centred / max(float(np.ptp(steps)), 1.0)])
    elif share > 0.0 and centred.any():
        unit = centred / np.linalg.norm(centred)
        kept -= share * np.outer(unit, unit)
    out = (_log_half_cauchy(sigma, sigma_prior_scale) + np.log(_cell_widths(sigma)))[:, None]
    out = out + log_phi_prior(phi)[None, :]
    for j, p in enumerate(phi):
        correlation = kept @ ar1_correlation(steps, p) @ kept.T
        out[:, j] += reml_log_likelihood(residuals, noise_var, sigma, correlation, design)
    return out


def _log_half_cauchy(x: np.ndarray, scale: float) -> np.ndarray:
    return -np.log1p((np.asarray(x) / scale) ** 2)


def _log_half_normal(x: np.ndarray, scale: float) -> np.ndarray:
    return -0.5 * (np.asarray(x) / scale) ** 2


def _cell_widths(grid: np.ndarray) -> np.ndarray:
    """Widths of the cells around the points of an increasing grid starting at 0."""
    mids = np.r_[grid[0], (grid[1:] + grid[:-1]) / 2, grid[-1]]
    return np.diff(mids)


# --------------------------------------------------------------------------------------
# The shock model
# --------------------------------------------------------------------------------------
@dataclass
class CommonShocks:
    """A fitted model of shocks common to all customers (see the module docstring).

    Attributes
    ----------
    step : float
        Length of a shock step in ``time_unit``.
    time_unit : str
    sigma, phi, tau : ndarray
        The grids of the per-step shock sd, its lag-one correlation and the model's
        level error sd.
    posterior : ndarray (len(sigma), len(phi), len(tau))
        Posterior probability of each grid cell (sums to 1).
    calibration_weights : ndarray or None
        Weight of each calibration step in the level the model was fitted to (expected
        purchases per step, normalised); None: the forecast's level is not affected by
        calibration shocks (a fixed shock model).
    tracking : DataFrame
        Per step: ``t``, ``actual``, ``expected``, ``log_ratio``, ``noise_var`` (what
        purchase noise explains), ``residual`` and ``used``.
    backtests : DataFrame
        Per backtest: ``cut``, ``actual``, ``forecast``, ``log_error``, ``noise_var``.
    settings : dict
    """

    step: float
    time_unit: str
    sigma: np.ndarray
    phi: np.ndarray
    tau: np.ndarray
    posterior: np.ndarray
    calibration_weights: np.ndarray | None = None
    tracking: pd.DataFrame = field(default_factory=pd.DataFrame)
    backtests: pd.DataFrame = field(default_factory=pd.DataFrame)
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fixed(
        cls,
        sigma: float,
        phi: float = 0.0,
        tau: float = 0.0,
        *,
        step: float = 1.0,
        time_unit: str = "W",
        calibration_weights: np.ndarray | None = None,
    ) -> CommonShocks:
        """A shock model with known values (no estimation uncertainty).

        Examples
        --------
        >>> shocks = CommonShocks.fixed(0.2, 0.5)
        >>> shocks.multipliers(4000, horizon=3, period_length=1.0, random_state=0).shape
        (4000, 3)
        """
        if not (sigma >= 0 and tau >= 0 and -1 < phi < 1):
            raise ValueError("sigma and tau must be >= 0 and phi in (-1, 1)")
        return cls(
            step=float(step),
            time_unit=time_unit,
            sigma=np.array([float(sigma)]),
            phi=np.array([float(phi)]),
            tau=np.array([float(tau)]),
            posterior=np.ones((1, 1, 1)),
            calibration_weights=None
            if calibration_weights is None
            else np.asarray(calibration_weights, dtype=float),
            settings={"fixed": True},
        )

    # -- summaries --------------------------------------------------------------------
    def _marginal(self, axis: int) -> np.ndarray:
        return self.posterior.sum(axis=tuple(a for a in range(3) if a != axis))

    def summary(self, interval: float = 0.9) -> pd.DataFrame:
        """Posterior mean and ``interval`` bounds of ``sigma``, ``phi`` and ``tau``.

        Examples
        --------
        >>> float(CommonShocks.fixed(0.2, 0.5).summary().loc["sigma", "mean"])
        0.2
        """
        low_p, high_p = interval_probabilities(interval)
        rows = {}
        for axis, name in enumerate(("sigma", "phi", "tau")):
            grid, p = getattr(self, name), self._marginal(axis)
            cdf = np.cumsum(p)
            rows[name] = {
                "mean": float(grid @ p),
                "lower": float(grid[np.searchsorted(cdf, low_p - 1e-12)]),
                "median": float(grid[np.searchsorted(cdf, 0.5 - 1e-12)]),
                "upper": float(grid[min(np.searchsorted(cdf, high_p - 1e-12), grid.size - 1)]),
            }
        return pd.DataFrame.from_dict(rows, orient="index")

    def describe(self) -> str:
        """The posterior means, and the backtests behind them, in words.

        Examples
        --------
        >>> words = CommonShocks.fixed(0.2, 0.5, 0.05).describe()
        >>> words.split(": ")  # doctest: +NORMALIZE_WHITESPACE
        ['per-week shock sd 0.20, lag-one correlation 0.50, level error sd 0.050',
         'posterior means, 0 backtests']
        """
        table = self.summary()
        share = self.settings.get("trend_absorbed")
        return (
            f"{_step_name(self.step, self.time_unit)} shock sd "
            f"{table.loc['sigma', 'mean']:.2f}, lag-one correlation "
            f"{table.loc['phi', 'mean']:.2f}, level error sd {table.loc['tau', 'mean']:.3f}: "
            f"posterior means, {len(self.backtests)} backtests"
            + ("" if share is None else f", {share:.0%} of a trend taken in by the fit")
        )

    def sample(self, n: int, random_state: Any = None) -> pd.DataFrame:
        """``n`` draws of ``(sigma, phi, tau)`` from the posterior grid."""
        rng = np.random.default_rng(random_state)
        flat = self.posterior.ravel()
        cells = rng.choice(flat.size, size=int(n), p=flat / flat.sum())
        i, j, k = np.unravel_index(cells, self.posterior.shape)
        return pd.DataFrame({"sigma": self.sigma[i], "phi": self.phi[j], "tau": self.tau[k]})

    def to_dict(self) -> dict[str, Any]:
        """Estimates, observed dispersion and backtests, JSON-ready."""
        table = self.summary()
        return {
            "step": self.step,
            "time_unit": self.time_unit,
            "estimates": {k: {c: float(v) for c, v in row.items()} for k, row in table.iterrows()},
            "backtests": self.backtests.to_dict(orient="records") if len(self.backtests) else [],
            **{k: v for k, v in self.settings.items() if isinstance(v, int | float | str | bool)},
        }

    # -- drawing shocks ----------------------------------------------------------------
    def log_multipliers(self, n_draws: int, n_steps: int, random_state: Any = None) -> np.ndarray:
        """Per-step log multipliers ``s_h - Var(s_h) / 2`` of ``n_draws`` shock paths
        over the ``n_steps`` steps after the calibration (see the module docstring).

        Examples
        --------
        >>> logs = CommonShocks.fixed(0.3, 0.0).log_multipliers(200_000, 2, random_state=1)
        >>> np.exp(logs).mean(axis=0).round(2).tolist()
        [1.0, 1.0]
        """
        rng = np.random.default_rng(random_state)
        params = self.sample(n_draws, rng)
        sigma = params["sigma"].to_numpy()[:, None]
        phi = params["phi"].to_numpy()[:, None]
        tau = params["tau"].to_numpy()
        w = self.calibration_weights
        K = 0 if w is None else w.size
        innovations = rng.standard_normal((int(n_draws), K + int(n_steps)))
        path = np.empty_like(innovations)
        path[:, 0] = innovations[:, 0]
        scale = np.sqrt(1 - phi[:, 0] ** 2)
        for k in range(1, path.shape[1]):
            path[:, k] = phi[:, 0] * path[:, k - 1] + scale * innovations[:, k]
        future = path[:, K:]
        var = np.ones((int(n_draws), int(n_steps)))
        if K:
            level = path[:, :K] @ w
            future = future - level[:, None]
            # Var(e_{K+h} - sum_k w_k e_k) / sigma^2 = 1 + w'Rw - 2 phi^(h+1) sum_k w_k phi^(K-1-k)
            wrw = np.array([w @ ar1_correlation(np.arange(K), p) @ w for p in self.phi])
            index = np.searchsorted(self.phi, phi[:, 0])
            back = _powers(phi[:, 0], np.arange(K - 1, -1, -1)) @ w
            ahead = _powers(phi[:, 0], np.arange(1, int(n_steps) + 1))
            var = 1 + wrw[index][:, None] - 2 * ahead * back[:, None]
        logs = sigma * future + tau[:, None] * rng.standard_normal((int(n_draws), 1))
        return logs - 0.5 * (sigma**2 * var + tau[:, None] ** 2)

    def multipliers(
        self,
        n_draws: int,
        horizon: int,
        period_length: float,
        *,
        time_unit: str | None = None,
        random_state: Any = None,
    ) -> np.ndarray:
        """Multipliers ``(n_draws, horizon)`` of the per-period totals of a forecast.

        A period's multiplier is the mean of ``exp(log multiplier)`` over the shock
        steps it covers (by overlap), so it averages 1 like each step's.

        Parameters
        ----------
        n_draws, horizon : int
        period_length : float
            Length of a forecast period in ``time_unit``.
        time_unit : str, optional
            Unit of ``period_length``; by default the shock model's.
        random_state : int or numpy Generator, optional
        """
        unit = self.time_unit if time_unit is None else time_unit
        length = period_length * TIME_UNIT_DAYS[unit] / TIME_UNIT_DAYS[self.time_unit]
        edges = np.arange(int(horizon) + 1) * length / self.step  # in steps
        n_steps = max(1, math.ceil(edges[-1] - 1e-9))
        steps = np.arange(n_steps)
        overlap = np.clip(
            np.minimum(edges[1:, None], steps[None, :] + 1)
            - np.maximum(edges[:-1, None], steps[None, :]),
            0.0,
            None,
        )
        overlap /= overlap.sum(axis=1, keepdims=True)
        values = np.exp(self.log_multipliers(n_draws, n_steps, random_state))
        return values @ overlap.T


def _powers(phi: np.ndarray, exponents: np.ndarray) -> np.ndarray:
    """``phi[:, None] ** exponents[None, :]`` for phi of any sign."""
    return np.sign(phi)[:, None] ** exponents[None, :] * np.abs(phi)[:, None] ** exponents[None, :]


def _simulation_refusal(model: Any) -> str | None:
    """Why the shocks cannot be simulated from the model's point estimate (None where
    they can)."""
    if getattr(model, "group_col", None):
        return (
            "models with groups (group_col) cannot be simulated from one point estimate; "
            "estimate the shocks with estimate_common_shocks (which fits the model's "
            "maximum-likelihood version to the whole population) and apply them with "
            "n_refits=0"
        )
    if getattr(model, "idata_", None) is not None:
        return (
            f"{type(model).__name__} is a Bayesian fit, which refits would rerun by MCMC "
            "hundreds of times; estimate the shocks with estimate_common_shocks (which fits "
            "the model's maximum-likelihood version) and apply them with n_refits=0"
        )
    return None


def _check_supported(model: Any) -> None:
    """Refuse, by name, the models whose point estimate the shocks cannot simulate."""
    reason = _simulation_refusal(model)
    if reason is not None:
        raise ValueError(f"common shocks: {reason}")


def default_shock_step(time_unit: str) -> float:
    """The default shock step, in ``time_unit``: one unit, or one week where the unit is
    shorter.

    Examples
    --------
    >>> default_shock_step("W"), default_shock_step("D"), default_shock_step("M")
    (1.0, 7.0, 1.0)
    """
    return max(1.0, TIME_UNIT_DAYS["W"] / TIME_UNIT_DAYS[time_unit])


def _step_name(step: float, time_unit: str) -> str:
    """``per-week`` for a step of one unit, else ``per 7-day step``, in the data's unit."""
    name = unit_name(time_unit, plural=False)
    return f"per-{name}" if step == 1 else f"per {step:g}-{name} step"


def shock_estimate_refusal(model: Any) -> str | None:
    """Why :func:`estimate_common_shocks` cannot measure shocks against ``model`` (None
    where it can): its tracking curve and simulated cohorts come from the transaction
    log, which holds no customer covariates.

    Examples
    --------
    >>> from clvmodels import BetaGeo
    >>> shock_estimate_refusal(BetaGeo()) is None
    True
    >>> shock_estimate_refusal(BetaGeo(purchase_covariates=["gender"])).split(";")[0]
    "BetaGeo reads customer covariates ['gender'], which cohorts simulated from the log lack"
    """
    covariates = list(getattr(model, "covariate_columns", ()) or ())
    if not covariates:
        return None
    return (
        f"{type(model).__name__} reads customer covariates {covariates}, which cohorts "
        "simulated from the log lack; measure the shocks against the model without them"
    )


def shock_refit_refusal(model: Any) -> str | None:
    """Why :func:`simulated_shock_effects` cannot refit ``model`` on simulated shocked
    cohorts (None where it can): Bayesian and grouped fits, which
    :func:`shocked_total` refits through their maximum-likelihood version, or else
    applies the level-only multipliers.

    Examples
    --------
    >>> from clvmodels import BetaGeo, BetaGeoCNBD
    >>> shock_refit_refusal(BetaGeo()) is None, shock_refit_refusal(BetaGeoCNBD(k=2)) is None
    (True, True)
    """
    return _simulation_refusal(model)


def _refit_model(model: Any, data: Any, fit_kwargs: Mapping[str, Any]) -> tuple[Any, str | None]:
    """The model whose refits measure the shocks' effect on ``model``'s forecast, or None
    and why there is none: ``model`` itself, or for a Bayesian or grouped fit its
    maximum-likelihood version fitted on the summary ``data`` (as
    :func:`estimate_common_shocks` measures the shocks)."""
    make = getattr(model, "maximum_likelihood_model", None)
    if _simulation_refusal(model) is not None and make is not None:
        stand_in = make()
        try:
            stand_in.fit(validate_summary(data, context="shocked_total"), **dict(fit_kwargs))
        except (ConvergenceError, ValueError) as err:
            return None, (
                f"{type(stand_in).__name__}, the maximum-likelihood version of "
                f"{type(model).__name__}, did not fit the summary: {err}"
            )
        model = stand_in
    reason = shock_refit_refusal(model)
    return (None, reason) if reason is not None else (model, None)


def _population_model(
    model: Any, frame: pd.DataFrame, customer_col: str, date_col: str, end: pd.Timestamp
) -> Any:
    """The model the shocks are measured against: ``model`` itself, or, for a Bayesian
    or grouped fit, its maximum-likelihood version (``maximum_likelihood_model()``)
    fitted to the whole population on the calibration log."""
    if getattr(model, "idata_", None) is None and not getattr(model, "group_col", None):
        return model
    make = getattr(model, "maximum_likelihood_model", None)
    if make is None:
        _check_supported(model)
    stand_in = make()
    summary = rfm_summary(
        frame, customer_col, date_col, observation_end=end, time_unit=model.time_unit_,
        **summary_options_for(stand_in.data_columns),
    )  # fmt: skip
    missing = [c for c in stand_in.data_columns if c not in summary.columns]
    if missing:
        raise ValueError(
            f"common shocks: {type(stand_in).__name__}, the maximum-likelihood version of "
            f"{type(model).__name__}, reads {missing}, which a summary of the log lacks; "
            "estimate the shocks with that model fitted on a summary that has them"
        )
    return stand_in.fit(summary)


def _point_draws(model: Any, n: int) -> pd.DataFrame:
    """``n`` copies of the point estimate in the layout of the model's ``param_draws``."""
    _check_supported(model)
    probe = model.param_draws(2, random_state=0)
    params = model.params_
    if not isinstance(params, pd.Series) or list(probe.columns) != list(model.param_names):
        raise ValueError(
            f"estimate_common_shocks: {type(model).__name__}'s parameter draws are not one "
            "column per parameter, so its point estimate cannot be simulated"
        )
    values = params[list(model.param_names)].to_numpy(dtype=float)
    return pd.DataFrame(np.repeat(values[None, :], int(n), axis=0), columns=probe.columns)


def _as_frame(transactions: Any, customer_col: str, date_col: str) -> pd.DataFrame:
    frame = transactions.to_pandas() if hasattr(transactions, "to_pandas") else transactions
    if not isinstance(frame, pd.DataFrame):
        raise TypeError("transactions must be a pandas (or Polars) DataFrame")
    missing = [c for c in (customer_col, date_col) if c not in frame.columns]
    if missing:
        raise ValueError(f"estimate_common_shocks: missing column(s) {missing}")
    return frame


def _customer_sample(
    frame: pd.DataFrame, customer_col: str, max_customers: int | None, rng: np.random.Generator
) -> tuple[pd.DataFrame, int]:
    """The transactions of a random sample of ``max_customers`` customers (all where
    there are no more), and how many customers the log has."""
    codes, ids = pd.factorize(frame[customer_col])
    if max_customers is None or ids.size <= int(max_customers):
        return frame, int(ids.size)
    chosen = np.zeros(ids.size, dtype=bool)
    chosen[rng.choice(ids.size, int(max_customers), replace=False)] = True
    # Rows without a customer id stay, for the tracking to refuse by name.
    return frame.loc[np.where(codes < 0, True, chosen[codes])], int(ids.size)


def _scaled_to_cohort(counts: np.ndarray, sample_size: int, cohort_size: int) -> np.ndarray:
    """Simulated totals of a random sample of customers, scaled to the whole cohort.

    Customers are independent, so the cohort's totals have ``N / m`` times the sample's
    mean and variance: the mean is scaled by ``N / m`` and the deviations from it by
    ``sqrt(N / m)``.

    Examples
    --------
    >>> sample = np.random.default_rng(0).poisson(100.0, (20_000, 1)).astype(float)
    >>> full = _scaled_to_cohort(sample, 1_000, 4_000)
    >>> round(float(full.mean())), round(float(full.var()), -1)
    (400, 400.0)
    """
    ratio = cohort_size / sample_size
    mean = counts.mean(axis=0)
    return ratio * mean + (counts - mean) * math.sqrt(ratio)


def _new_customers(model: Any, n: int) -> pd.DataFrame:
    """A summary of ``n`` customers who have just been acquired (every column the model
    reads at 0), the ``data`` of ``simulate_purchases`` for a simulated cohort."""
    columns = dict.fromkeys(["frequency", "recency", "T", *model.data_columns])
    new = pd.DataFrame(0.0, index=pd.RangeIndex(n), columns=list(columns))
    new.attrs["time_unit"] = model.time_unit_
    return new


def _simulated_tracking(
    model: Any,
    acquired: np.ndarray,
    n_steps: int,
    step: float,
    unit_days: float,
    n_simulations: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Repeat purchases per step of ``n_simulations`` cohorts acquired on the days
    ``acquired`` (time units after the start), simulated from the model's point
    estimate; a large cohort through a random sample of its customers.

    The purchases are recorded as the log records them, on days: a purchase on a
    customer's first day is part of its first purchase. The model, whose clock starts
    at the start of that day, expects some there; the mean of these simulations, not
    the shocks, then explains the repeat purchases that the log's first weeks lack (on
    200,000 customers simulated from CDNOW's BG/NBD, 27% fewer than the model's curve
    in the first week and 7% in the second; without this, the estimate read a shock sd
    of 0.02 with lag-one correlation 0.86 into them, 0.07 and 0.94 on 10M customers)."""
    cohort_size = acquired.size
    if cohort_size > _MAX_SIMULATED_CUSTOMERS:
        acquired = rng.choice(acquired, _MAX_SIMULATED_CUSTOMERS, replace=False)
    end = n_steps * step
    exposure = end - acquired
    new = _new_customers(model, acquired.size)
    counts = np.zeros((n_simulations, n_steps))
    block = max(1, _BLOCK_PAIRS // max(1, acquired.size))
    for first in range(0, n_simulations, block):
        n = min(block, n_simulations - first)
        sims = model.simulate_purchases(
            t=float(exposure.max()), data=new, draws=_point_draws(model, n), random_state=rng
        )
        draw, row = np.divmod(sims.owner, acquired.size)
        # Purchases fall on days, as in the log: the step of a purchase is its day's, and
        # one on the first day is part of the first purchase. The model's clock starts at
        # the start of that day, as the summary it was fitted to counts recency and T.
        first_day = np.round(acquired * unit_days)
        day = np.floor(first_day[row] + sims.time * unit_days + 1e-9)
        k = np.floor(day / (step * unit_days) + 1e-9).astype(np.int64)
        keep = (sims.time <= exposure[row]) & (k < n_steps) & (day > first_day[row])
        counts[first : first + n] = np.bincount(
            draw[keep] * n_steps + k[keep], minlength=n * n_steps
        ).reshape(n, n_steps)
    if acquired.size < cohort_size:
        return _scaled_to_cohort(counts, acquired.size, cohort_size)
    return counts


def estimate_common_shocks(
    transaction_model: TransactionModel,
    transactions: Any,
    customer_col: str,
    date_col: str,
    *,
    calibration_end: Any = None,
    step: float | None = None,
    min_expected: float = 10.0,
    n_simulations: int = 200,
    max_customers: int | None = MAX_CUSTOMERS,
    backtest_length: float | None = None,
    n_backtests: int | None = None,
    fit_kwargs: Mapping[str, Any] | None = None,
    sigma_prior_scale: float = SIGMA_PRIOR_SCALE,
    tau_prior_scale: float = TAU_PRIOR_SCALE,
    trend_absorbed: float | None = None,
    random_state: Any = None,
) -> CommonShocks:
    """Estimate the shocks common to all customers from a calibration transaction log.

    See the module docstring for the model, the method and its assumptions.

    Parameters
    ----------
    transaction_model : TransactionModel
        Fitted on the calibration summary of ``transactions``. A Bayesian fit (with or
        without ``group_col``) is measured through its maximum-likelihood version fitted
        to the whole population (see the module notes).
    transactions : DataFrame
        The transaction log; transactions after ``calibration_end`` are ignored.
    customer_col, date_col : str
    calibration_end : date-like, optional
        Last day of the calibration window; by default the last date in the log.
    step : float, optional
        Length of a shock step in the model's time unit. By default one time unit, or
        one week where the unit is shorter (:func:`default_shock_step`): in daily steps
        weekday patterns would read as shocks, and few days expect ``min_expected``
        purchases.
    min_expected : float, default 10
        Steps where the model expects fewer repeat purchases are left out of the
        dispersion (their log ratios are too noisy to tell shocks from noise).
    n_simulations : int, default 200
        Simulated cohorts (and parameter draws per backtest) behind the noise estimates.
    max_customers : int or None, default :data:`MAX_CUSTOMERS`
        A log of more customers is measured on a random sample of this many (their
        transactions, all of them): shocks are common to all customers, and the
        sample's purchase noise, which the estimate simulates at the sample's size, is
        still far below shocks of a few percent. None: every customer.
    backtest_length : float, optional
        Length of a backtest block in the model's time unit; by default a third of the
        calibration window, in whole steps.
    n_backtests : int, optional
        Number of blocks (non-overlapping, ending at ``calibration_end``); by default as
        many as leave at least a block and a third of the window to fit on; 0 for none
        (then the level error ``tau`` is 0).
    fit_kwargs : mapping, optional
        Passed to ``fit`` of the refitted copies of the model.
    sigma_prior_scale, tau_prior_scale : float
        Scales of the half-Cauchy prior of ``sigma`` and the half-normal prior of ``tau``.
    trend_absorbed : float, optional
        Share of a linear trend in the calibration shocks that the fitted model takes
        into its curve, in [0, 1] (:func:`tracking_log_posterior`): the residuals keep
        only the rest of the shocks' slow variation, and a likelihood that ignores this
        reads ``sigma`` low. By default measured by refits on simulated cohorts
        (:func:`absorbed_trend_share`, four refits; where they fail, 0 with a warning);
        0 integrates the level alone out, 1 the trend as well.
    random_state : int or numpy Generator, optional

    Returns
    -------
    CommonShocks

    Examples
    --------
    CDNOW's weekly repeat purchases scatter around the BG/NBD curve far more than
    purchase noise explains:

    >>> from clvmodels import BetaGeo, calibration_holdout_split, load_cdnow
    >>> log = load_cdnow()
    >>> split = calibration_holdout_split(log, "customer_id", "date",
    ...     calibration_end="1997-09-30", observation_end="1998-06-30")
    >>> shocks = estimate_common_shocks(BetaGeo().fit(split), log, "customer_id", "date",
    ...                                 calibration_end="1997-09-30", random_state=0)
    >>> used = shocks.tracking[shocks.tracking["used"]]
    >>> scatter, noise = used["log_ratio"].std(), used["noise_var"].mean() ** 0.5
    >>> bool(0.23 < scatter < 0.27), bool(0.13 < noise < 0.16)  # 0.254 and 0.145
    (True, True)
    >>> bool(0.1 < shocks.summary().loc["sigma", "mean"] < 0.3)
    True
    """
    model = transaction_model
    if not getattr(model, "is_fitted", False):
        raise ValueError("estimate_common_shocks: the transaction model is not fitted")
    refusal = shock_estimate_refusal(model)
    if refusal is not None:
        raise ValueError(f"estimate_common_shocks: {refusal}")
    unit = model.time_unit_
    if unit is None:
        raise ValueError("estimate_common_shocks: the model records no time unit (time_unit_)")
    step = default_shock_step(unit) if step is None else step
    if isinstance(step, bool) or not (isinstance(step, int | float) and step > 0):
        raise ValueError(f"step must be a positive number of time units, got {step!r}")
    if trend_absorbed is not None and (
        isinstance(trend_absorbed, bool)
        or not isinstance(trend_absorbed, int | float | np.integer | np.floating)
        or not 0.0 <= float(trend_absorbed) <= 1.0
    ):
        raise ValueError(
            f"trend_absorbed must be None or a number in [0, 1], got {trend_absorbed!r}"
        )
    if isinstance(n_simulations, bool) or int(n_simulations) < 20:
        raise ValueError(f"n_simulations must be an integer of at least 20, got {n_simulations!r}")
    n_simulations = int(n_simulations)
    if max_customers is not None and (
        isinstance(max_customers, bool)
        or not isinstance(max_customers, int | np.integer)
        or max_customers < 1
    ):  # 2.5 would be cut to 2 silently, "many" fail without naming the option
        raise ValueError(f"max_customers must be a positive integer or None, got {max_customers!r}")
    rng = np.random.default_rng(random_state)
    frame = _as_frame(transactions, customer_col, date_col)
    frame, n_customers = _customer_sample(frame, customer_col, max_customers, rng)
    dates = pd.to_datetime(frame[date_col]).dt.normalize()
    end = dates.max() if calibration_end is None else pd.Timestamp(calibration_end).normalize()
    window = dates <= end
    frame, dates = frame.loc[window], dates[window]
    start = dates.min()
    model = _population_model(model, frame, customer_col, date_col, end)
    track = expected_cumulative_purchases(
        model, frame, customer_col, date_col, end=end, calibration_end=end, step=float(step)
    )
    n_steps = len(track)
    unit_days = TIME_UNIT_DAYS[unit]
    first = dates.groupby(frame[customer_col].to_numpy()).min()
    acquired = ((first - start).dt.days.to_numpy(dtype=float)) / unit_days
    counts = _simulated_tracking(model, acquired, n_steps, float(step), unit_days,
                                 n_simulations, rng)  # fmt: skip

    expected = track["expected_incremental"].to_numpy(dtype=float)
    actual = track["actual_incremental"].to_numpy(dtype=float)
    used = expected >= float(min_expected)
    if used.sum() < 8:
        raise ValueError(
            f"estimate_common_shocks: only {int(used.sum())} steps expect at least "
            f"{min_expected:g} repeat purchases; at least 8 are needed (use a longer step "
            "or a lower min_expected)"
        )
    with np.errstate(divide="ignore"):
        log_ratio = np.log(np.maximum(actual, 0.5) / expected)
        sim_ratio = np.log(np.maximum(counts[:, used], 0.5) / expected[used])
    bias = sim_ratio.mean(axis=0)
    cov = np.cov(sim_ratio, rowvar=False)
    n_used = int(used.sum())
    common = (cov.sum() - np.trace(cov)) / (n_used * (n_used - 1))
    noise = np.maximum(np.diag(cov) - common, 0.25 * np.diag(cov))
    residual = log_ratio[used] - bias
    steps_used = np.flatnonzero(used)
    trend_reason = None
    if trend_absorbed is None:
        try:
            share = absorbed_trend_share(model, acquired, n_steps, float(step), steps_used,
                                         fit_kwargs=fit_kwargs, random_state=rng)  # fmt: skip
        except ValueError as err:
            share, trend_reason = 0.0, str(err)
            warnings.warn(
                f"estimate_common_shocks: the trend the model absorbs was not measured, "
                f"so none is assumed ({err})",
                RuntimeWarning,
                stacklevel=2,
            )
    else:
        share = float(trend_absorbed)

    # Backtests inside the window.
    if backtest_length is None:
        backtest_length = max(float(step), round(n_steps / 3) * float(step))
    block_days = float(backtest_length) * unit_days
    cuts = [] if n_backtests == 0 else backtest_cuts(start, end, block_days, n_backtests)
    backtests = backtest_purchases(
        model, frame, customer_col, date_col, cuts, block_days, time_unit=unit,
        n_simulations=n_simulations, fit_kwargs=fit_kwargs, random_state=rng,
    )  # fmt: skip

    # Grids and priors.
    sd = float(np.std(residual))
    sigma_max = max(3.0 * sd, 0.05)
    sigma = sigma_max * np.linspace(0.0, 1.0, _N_SIGMA) ** 2
    phi = PHI_GRID
    if len(backtests):
        errors = backtests["log_error"].to_numpy()
        tau_max = max(3.0 * float(np.sqrt(np.mean(errors**2))), 0.05)
        tau = tau_max * np.linspace(0.0, 1.0, _N_TAU) ** 2
    else:
        tau = np.zeros(1)
    log_post = tracking_log_posterior(
        residual, noise, steps_used, sigma, phi, sigma_prior_scale, trend_absorbed=share
    )
    log_post = log_post[:, :, None] + np.zeros(tau.size)
    if tau.size > 1:
        log_post += (_log_half_normal(tau, tau_prior_scale) + np.log(_cell_widths(tau)))[
            None, None, :
        ]

    # Calibration weights: the fitted level averages the calibration shocks by the
    # expected purchases of each step.
    weights = np.clip(expected, 0.0, None)
    weights = weights / weights.sum()
    block_vectors = []
    for cut, length in zip(backtests.get("cut", []), backtests.get("length", []), strict=True):
        cut_step = ((pd.Timestamp(cut) - start).days + 1) / (float(step) * unit_days)
        k = np.arange(n_steps)
        inside = (k >= math.floor(cut_step)) & (k < cut_step + length / float(step))
        before = k < math.floor(cut_step)
        a = inside / max(1, inside.sum()) - np.where(before, expected, 0.0) / max(
            1e-12, expected[before].sum()
        )
        block_vectors.append(a)
    for j, p in enumerate(phi if block_vectors else ()):
        R = ar1_correlation(np.arange(n_steps), p)
        g = np.array([a @ R @ a for a in block_vectors])
        var = (
            backtests["noise_var"].to_numpy()[None, None, :]
            + (sigma**2)[:, None, None] * g[None, None, :]
            + (tau**2)[None, :, None]
        )
        log_post[:, j, :] += (-0.5 * (np.log(var) + errors[None, None, :] ** 2 / var)).sum(axis=2)
    posterior = np.exp(log_post - log_post.max())
    posterior /= posterior.sum()

    tracking = pd.DataFrame(
        {
            "t": track["t"].to_numpy(),
            "actual": actual,
            "expected": expected,
            "log_ratio": log_ratio,
            "noise_var": np.where(used, 0.0, np.nan),
            "residual": np.nan,
            "used": used,
        },
        index=track.index,
    )
    tracking.loc[used, "noise_var"] = noise
    tracking.loc[used, "residual"] = residual
    lag1 = float(np.corrcoef(residual[:-1], residual[1:])[0, 1]) if n_used > 2 else float("nan")
    return CommonShocks(
        step=float(step),
        time_unit=unit,
        sigma=sigma,
        phi=phi,
        tau=tau,
        posterior=posterior,
        calibration_weights=weights,
        tracking=tracking,
        backtests=backtests,
        settings={
            "model": type(model).__name__,
            "calibration_end": end.date().isoformat(),
            "start": start.date().isoformat(),
            "n_steps": n_steps,
            "n_steps_used": n_used,
            "min_expected": float(min_expected),
            "n_simulations": n_simulations,
            "n_customers": n_customers,
            "n_customers_measured": int(frame[customer_col].nunique()),
            "backtest_length": float(backtest_length),
            "n_backtests": len(backtests),
            "backtests_skipped": "; ".join(backtests.attrs.get("skipped", [])),
            "residual_sd": sd,
            "noise_sd": float(np.sqrt(noise.mean())),
            "residual_lag1": lag1,
            "sigma_prior_scale": float(sigma_prior_scale),
            "tau_prior_scale": float(tau_prior_scale),
            "trend_absorbed": share,
            "trend_absorbed_measured": trend_absorbed is None and trend_reason is None,
            "trend_absorbed_reason": trend_reason,
        },
    )


# --------------------------------------------------------------------------------------
# The fitted model's response to shocks, by simulation
# --------------------------------------------------------------------------------------
def shock_clock(log_multipliers: np.ndarray, step: float) -> np.ndarray:
    """Operational time at the step edges: ``M(k step) = step * sum_{j<k} exp(e_j)``.

    Examples
    --------
    >>> shock_clock(np.log(np.array([1.0, 2.0, 0.5])), 2.0).tolist()
    [0.0, 2.0, 6.0, 7.0]
    """
    return np.r_[0.0, np.cumsum(np.exp(np.asarray(log_multipliers, dtype=float)) * step)]


def _summaries(
    acquired: np.ndarray, owner: np.ndarray, when: np.ndarray, end: float,
    period_ends: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Frequency, recency, the sum of the logs of the inter-purchase times (calibration
    up to ``end``) and holdout purchases per period of customers acquired at
    ``acquired`` with repeat purchases at calendar times ``when``.

    Examples
    --------
    >>> f, r, litt, holdout = _summaries(np.array([0.0, 2.0]), np.array([0, 0, 1, 0]),
    ...                                  np.array([3.0, 1.0, 4.0, 6.0]), 5.0, np.array([2.0]))
    >>> f.tolist(), r.tolist(), litt.round(4).tolist(), holdout.tolist()
    ([2.0, 1.0], [3.0, 2.0], [0.6931, 0.6931], [1.0])
    """
    n = acquired.size
    calibration = when <= end
    o, w = owner[calibration], when[calibration]
    frequency = np.bincount(o, minlength=n).astype(float)
    recency = np.zeros(n)
    np.maximum.at(recency, o, w - acquired[o])
    # Each purchase's gap to the one before it (to the acquisition for the first).
    order = np.lexsort((w, o))
    o, w = o[order], w[order]
    same = np.r_[False, o[1:] == o[:-1]]
    previous = np.where(same, np.r_[0.0, w[:-1]], acquired[o])
    litt = np.bincount(o, weights=np.log(w - previous), minlength=n)
    edges = end + np.r_[0.0, period_ends]
    period = np.searchsorted(edges, when[~calibration], side="left") - 1
    keep = (period >= 0) & (period < period_ends.size)
    holdout = np.bincount(period[keep], minlength=period_ends.size).astype(float)
    return frequency, recency, litt, holdout


def _refitted(model: Any, frame: pd.DataFrame, fit_kwargs: Mapping[str, Any]) -> Any:
    """A copy of ``model`` fitted on ``frame`` (a simulated cohort's summary)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return copy.deepcopy(model).fit(frame, **dict(fit_kwargs))


def _calendar_reading(
    acquired: np.ndarray, owner: np.ndarray, u: np.ndarray, edges: np.ndarray,
    clock: np.ndarray, stop: float,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Calendar times of purchases made ``u`` after acquisition in the operational time
    ``clock`` (at the step ``edges``), and which of them fall before ``stop``."""
    operational = np.interp(acquired, edges, clock)[owner] + u
    return np.interp(operational, clock, edges), operational <= np.interp(stop, edges, clock)


def _cohort_summary(
    frame: pd.DataFrame, acquired: np.ndarray, owner: np.ndarray, when: np.ndarray,
    end: float, period_ends: np.ndarray, with_litt: bool, unit: str,
) -> tuple[pd.DataFrame, np.ndarray]:  # fmt: skip
    """The calibration summary (``frame`` with the simulated frequency, recency and,
    ``with_litt``, inter-purchase sums) and the holdout purchases per period of
    simulated purchases at calendar times ``when``."""
    frequency, recency, litt, holdout = _summaries(acquired, owner, when, end, period_ends)
    sample = frame.assign(frequency=frequency, recency=recency,
                          **({LITT_COLUMN: litt} if with_litt else {}))  # fmt: skip
    sample.attrs["time_unit"] = unit
    return sample, holdout


def _refit_error(
    model: Any, frame: pd.DataFrame, holdout: np.ndarray, period_ends: np.ndarray,
    discount: np.ndarray, fit_kwargs: Mapping[str, Any],
) -> float:  # fmt: skip
    """``log(actual / forecast)`` of the discounted holdout purchases of a refitted copy."""
    refit = _refitted(model, frame, fit_kwargs)
    if np.all(discount == discount[0]):  # undiscounted: the horizon's end is enough
        ends, weights = period_ends[-1:], discount[:1]
    else:
        ends, weights = period_ends, discount
    cumulative = np.array(
        [float(np.sum(refit.expected_purchases(t=float(t), data=frame))) for t in ends]
    )
    forecast = np.clip(np.diff(np.r_[0.0, cumulative]), 0.0, None) @ weights
    return math.log(max(float(holdout @ discount), 0.5) / max(forecast, 1e-12))


def simulated_shock_effects(
    transaction_model: TransactionModel,
    data: Any,
    common_shocks: CommonShocks,
    period_ends: np.ndarray,
    discount: np.ndarray,
    *,
    n_refits: int = 100,
    fit_kwargs: Mapping[str, Any] | None = None,
    random_state: Any = None,
) -> np.ndarray:
    """Log effects of common shocks on a refitted model's forecast error, by simulation.

    Each of ``n_refits`` replicates draws ``(sigma, phi)`` from ``common_shocks`` and an
    AR(1) shock path over the calibration window and the horizon, simulates the
    customers of ``data`` (their acquisition times, from the model's point estimate)
    once, and reads the same simulated purchases twice: in calendar time (no shocks)
    and in the operational time the shocks make. The model is refitted on each
    calibration summary and forecasts the holdout's discounted purchases; the
    replicate's effect is ``log(actual / forecast)`` with shocks minus the same
    without, so that purchase noise and parameter error, which both versions share,
    largely cancel and what remains is what the shocks do to a forecast: their
    average over the horizon, net of what the refit absorbed from the calibration
    shocks as level, trend and recency. See the module docstring.

    Parameters
    ----------
    transaction_model : TransactionModel
        Fitted on ``data`` (one population, parameter draws one column per parameter).
    data : DataFrame
        The calibration summary (``frequency``, ``recency``, ``T`` and the model's
        other columns); a cohort larger than 20,000 customers is represented by a
        random sample of that size (the effects are relative, not totals).
    common_shocks : CommonShocks
    period_ends : ndarray
        Ends of the forecast periods in the model's time unit.
    discount : ndarray
        Discount factor of each period.
    n_refits : int, default 100
        Replicates, each with two refits of a copy of the model (``fit_kwargs`` passed
        to its ``fit``).
    fit_kwargs : mapping, optional
    random_state : int or numpy Generator, optional

    Returns
    -------
    ndarray
        One log effect per replicate whose refits converged (0 where ``sigma`` is 0).
        Failed refits are reported in one warning, with the first one's error; after 10
        failed replicates without a success the rest are not tried (the model cannot
        be refitted on these summaries).

    Examples
    --------
    >>> from clvmodels import BetaGeo, rfm_summary
    >>> from clvmodels.simulate import simulate_transactions
    >>> log = simulate_transactions(1000, {"r": 0.24, "alpha": 4.4, "a": 0.79, "b": 2.4},
    ...                             {"p": 6.25, "q": 3.74, "gamma": 15.44}, weeks=39,
    ...                             random_state=0)
    >>> summary = rfm_summary(log, "customer_id", "date", observation_end="2020-10-04")
    >>> effects = simulated_shock_effects(BetaGeo().fit(summary), summary,
    ...     CommonShocks.fixed(0.2, 0.5), np.array([13.0, 26.0]), np.ones(2),
    ...     n_refits=20, random_state=0)
    >>> bool(effects.size >= 15), bool(0.03 < effects.std() < 0.3)  # refits that converged
    (True, True)
    """
    n_refits = whole_number(n_refits, "n_refits", 1)
    effects, failures = _shock_effects(
        transaction_model, data, common_shocks, period_ends, discount, n_refits=n_refits,
        fit_kwargs=fit_kwargs, random_state=random_state,
    )  # fmt: skip
    if failures:
        warnings.warn(
            f"simulated_shock_effects: the refits of {len(failures)} replicates failed, "
            f"{effects.size} gave an effect; the first failure: {failures[0]}",
            RuntimeWarning,
            stacklevel=2,
        )
    return effects


def _shock_effects(
    model: Any,
    data: Any,
    common_shocks: CommonShocks,
    period_ends: np.ndarray,
    discount: np.ndarray,
    *,
    n_refits: int,
    fit_kwargs: Mapping[str, Any] | None,
    random_state: Any,
) -> tuple[np.ndarray, list[str]]:
    """The effects of :func:`simulated_shock_effects` and why the failed replicates
    failed. After ``_MIN_REFITS`` replicates without one success it stops: the model
    cannot be refitted on these summaries."""
    reason = shock_refit_refusal(model)
    if reason is not None:
        raise ValueError(f"simulated_shock_effects: {reason}")
    rng = np.random.default_rng(random_state)
    frame = validate_summary(data, context="simulated_shock_effects")
    if len(frame) > _MAX_REFIT_CUSTOMERS:
        frame = frame.iloc[np.sort(rng.choice(len(frame), _MAX_REFIT_CUSTOMERS, replace=False))]
    unit = model.time_unit_
    # The regularity models' statistic, from the simulated purchase times, wherever a
    # refit may read it (one that profiles k reads it even if the fit chose k = 1).
    with_litt = LITT_COLUMN in model.data_columns or LITT_COLUMN in frame.columns
    columns = list(dict.fromkeys(["frequency", "recency", "T", *model.data_columns]))
    frame = frame[columns].reset_index(drop=True)
    ages = frame["T"].to_numpy(dtype=float)
    end = float(ages.max())
    acquired = end - ages
    period_ends = np.asarray(period_ends, dtype=float)
    discount = np.asarray(discount, dtype=float)
    stop = end + float(period_ends[-1])
    step = common_shocks.step * TIME_UNIT_DAYS[common_shocks.time_unit] / TIME_UNIT_DAYS[unit]
    n_steps = max(1, math.ceil(stop / step - 1e-9))
    edges = np.arange(n_steps + 1) * step
    params = common_shocks.sample(int(n_refits), rng)
    new = frame.copy()
    new[["frequency", "recency", "T"]] = 0.0
    if with_litt:
        new[LITT_COLUMN] = 0.0
    new.attrs["time_unit"] = unit
    point = _point_draws(model, 1)
    effects: list[float] = []
    failures: list[str] = []
    for sigma, phi in zip(params["sigma"], params["phi"], strict=True):
        if len(failures) >= _MIN_REFITS and not effects:
            break
        if sigma == 0:
            effects.append(0.0)
            continue
        e = sigma * _ar1_path(float(phi), n_steps, rng)
        clock = shock_clock(e - sigma**2 / 2, step)
        opened = np.interp(acquired, edges, clock)
        exposure = np.maximum(np.interp(stop, edges, clock) - opened, stop - acquired)
        sims = model.simulate_purchases(
            t=float(exposure.max()), data=new, draws=point, random_state=rng
        )
        owner, u = sims.owner, np.asarray(sims.time, dtype=float)
        errors = []
        for when, inside in (
            (acquired[owner] + u, acquired[owner] + u <= stop),
            _calendar_reading(acquired, owner, u, edges, clock, stop),
        ):
            sample, holdout = _cohort_summary(
                frame, acquired, owner[inside], when[inside], end, period_ends, with_litt, unit
            )
            try:
                errors.append(
                    _refit_error(model, sample, holdout, period_ends, discount, fit_kwargs or {})
                )
            except (ConvergenceError, ValueError) as err:
                failures.append(f"{type(err).__name__}: {err}")
                break
        if len(errors) == 2:
            effects.append(errors[1] - errors[0])
    return np.asarray(effects, dtype=float), failures


def _cohort_log_ratios(
    model: Any, acquired: np.ndarray, when: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """``log(actual / expected)`` repeat purchases per step of a cohort acquired at
    ``acquired`` whose repeat purchases fell at ``when``, steps ending at ``edges[1:]``:
    the tracking curve of :func:`clvmodels.evaluation.expected_cumulative_purchases`,
    from times rather than a log of days.

    Examples
    --------
    A thousand customers acquired at 0, for whom the model expects 52.8 and 49.6 repeat
    purchases in the first two weeks, made 52 and 50:

    >>> from clvmodels import BetaGeo
    >>> model = BetaGeo.from_params({"r": 0.24, "alpha": 4.4, "a": 0.79, "b": 2.4})
    >>> when = np.r_[np.full(52, 0.5), np.full(50, 1.5)]
    >>> _cohort_log_ratios(model, np.zeros(1000), when, np.arange(3.0)).round(3).tolist()
    [-0.015, 0.007]
    """
    starts, counts = np.unique(acquired, return_counts=True)
    ages = np.clip(edges[1:, None] - starts[None, :], 0.0, None)
    cumulative = np.asarray(
        model.expected_purchases_new_customer(ages.ravel()), dtype=float
    ).reshape(ages.shape) @ counts
    expected = np.diff(np.r_[0.0, cumulative])
    which = np.clip(np.searchsorted(edges, when, side="right") - 1, 0, edges.size - 2)
    actual = np.bincount(which, minlength=edges.size - 1).astype(float)
    return np.log(np.maximum(actual, 0.5) / np.maximum(expected, 1e-12))


def absorbed_trend_share(
    transaction_model: TransactionModel,
    acquired: np.ndarray,
    n_steps: int,
    step: float,
    steps_used: np.ndarray,
    *,
    n_cohorts: int = TREND_COHORTS,
    fit_kwargs: Mapping[str, Any] | None = None,
    random_state: Any = None,
) -> float:
    """Share of a linear trend in the calibration shocks that a refitted model absorbs.

    A cohort acquired at ``acquired`` (time units after the start; a sample or
    resample of 20,000 customers) is simulated from the model's point estimate over
    ``n_steps`` steps of length ``step``, and the same purchases are read in the
    operational times of two shock paths, a linear trend in the log purchase rate
    rising by ``+-0.3`` over ``steps_used`` (:func:`shock_clock`). The model is refitted
    on both readings; of the difference of their tracking residuals
    (``log(actual / expected)`` per step, over ``steps_used``), the least-squares trend
    is ``1 - share`` of the trend put in, purchase noise cancelling as both readings
    share it. The mean over ``n_cohorts`` cohorts, clipped to [0, 1], is the
    ``trend_absorbed`` of :func:`tracking_log_posterior`.

    Parameters
    ----------
    transaction_model : TransactionModel
        Fitted (one population; see :func:`shock_refit_refusal`).
    acquired : ndarray
        Acquisition times of the cohort's customers, in time units after the start.
    n_steps : int
        Steps of the calibration window.
    step : float
        Length of a step in the model's time unit.
    steps_used : ndarray of int
        The steps whose residuals the estimate reads.
    n_cohorts : int, default 2
    fit_kwargs : mapping, optional
        Passed to ``fit`` of the refitted copies.
    random_state : int or numpy Generator, optional

    Returns
    -------
    float
        Raises ``ValueError`` with the first failure where no cohort's refits converged.

    Examples
    --------
    CDNOW's BG/NBD takes about half of a trend (the rest of the shocks' shape it keeps):

    >>> from clvmodels import BetaGeo, load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
    ...                       observation_end="1997-09-30")
    >>> acquired = (summary["T"].max() - summary["T"]).to_numpy()
    >>> share = absorbed_trend_share(BetaGeo().fit(summary), acquired, 39, 1.0,
    ...                              np.arange(1, 39), random_state=0)
    >>> bool(0.35 < share < 0.65)
    True
    """
    model = transaction_model
    reason = shock_refit_refusal(model)
    if reason is not None:
        raise ValueError(f"absorbed_trend_share: {reason}")
    rng = np.random.default_rng(random_state)
    acquired = np.asarray(acquired, dtype=float).ravel()
    n_steps = whole_number(n_steps, "n_steps", 1)
    n_cohorts = whole_number(n_cohorts, "n_cohorts", 1)
    if acquired.size == 0 or not np.all(np.isfinite(acquired)) or acquired.min() < 0:
        raise ValueError("acquired must hold one finite, non-negative time per customer")
    used = np.asarray(steps_used, dtype=int)
    if used.size < 3 or used.min() < 0 or used.max() >= n_steps:
        raise ValueError(f"steps_used must hold at least 3 of the {n_steps} steps")
    size = _MAX_REFIT_CUSTOMERS
    cohort = rng.choice(acquired, size, replace=acquired.size < size)
    end = n_steps * float(step)
    edges = np.arange(n_steps + 1) * float(step)
    unit = model.time_unit_
    with_litt = LITT_COLUMN in model.data_columns
    new = _new_customers(model, cohort.size)
    frame = new.assign(T=end - cohort)
    point = _point_draws(model, 1)
    # The probe: a log-rate trend rising by _TREND_PROBE across the steps read.
    k = np.arange(n_steps, dtype=float)
    probe = (k - k[used].mean()) / max(float(np.ptp(k[used])), 1.0)
    centred = probe[used] - probe[used].mean()
    clocks = [shock_clock(sign * _TREND_PROBE * probe, float(step)) for sign in (1, -1)]
    exposure = max(float(np.max(c[-1] - np.interp(cohort, edges, c))) for c in clocks)
    slopes: list[float] = []
    failures: list[str] = []
    for _ in range(n_cohorts):
        sims = model.simulate_purchases(t=exposure, data=new, draws=point, random_state=rng)
        owner, u = sims.owner, np.asarray(sims.time, dtype=float)
        residuals = []
        for clock in clocks:
            when, inside = _calendar_reading(cohort, owner, u, edges, clock, end)
            sample, _ = _cohort_summary(frame, cohort, owner[inside], when[inside], end,
                                        edges[1:2], with_litt, unit)  # fmt: skip
            try:
                refit = _refitted(model, sample, fit_kwargs or {})
            except (ConvergenceError, ValueError) as err:
                failures.append(f"{type(err).__name__}: {err}")
                break
            residuals.append(_cohort_log_ratios(refit, cohort, when[inside], edges)[used])
        if len(residuals) == 2:
            kept = (residuals[0] - residuals[1]) / (2 * _TREND_PROBE)
            slopes.append(float(kept @ centred / (centred @ centred)))
    if not slopes:
        raise ValueError(
            f"absorbed_trend_share: no refit of {type(model).__name__} on the simulated "
            f"cohorts converged; the first failure: {failures[0]}"
        )
    return float(np.clip(1.0 - np.mean(slopes), 0.0, 1.0))


def _ar1_path(phi: float, n_steps: int, rng: np.random.Generator) -> np.ndarray:
    """A stationary AR(1) path of unit variance and lag-one correlation ``phi``."""
    z = rng.standard_normal(n_steps)
    path = np.empty(n_steps)
    path[0] = z[0]
    scale = math.sqrt(1 - phi**2)
    for k in range(1, n_steps):
        path[k] = phi * path[k - 1] + scale * z[k]
    return path


# --------------------------------------------------------------------------------------
# Carrying the shocks into a forecast's total
# --------------------------------------------------------------------------------------
def predictive_log_spread(effects: np.ndarray, interval: float) -> float:
    """Standard deviation of a normal whose central ``interval`` is the prediction
    interval of one more effect, from a sample of ``effects``.

    The prediction interval of a normal sample of size ``n`` with unknown mean and sd
    is ``mean +- t_(n-1) * s * sqrt(1 + 1/n)`` (``t`` at the interval's upper
    probability); a few dozen effects read as empirical quantiles instead cover a new
    one less often than their level says (50 effects: about 86% at 90%).

    Examples
    --------
    >>> effects = np.random.default_rng(0).normal(0.0, 0.2, 50)
    >>> round(float(effects.std(ddof=1)), 3), round(predictive_log_spread(effects, 0.9), 3)
    (0.184, 0.189)
    """
    x = np.asarray(effects, dtype=float)
    n = x.size
    if n < 2:
        raise ValueError(f"predictive_log_spread: needs at least 2 effects, got {n}")
    high = interval_probabilities(interval)[1]
    widening = stats.t.ppf(high, n - 1) / stats.norm.ppf(high) * math.sqrt(1 + 1 / n)
    return float(x.std(ddof=1) * widening)


def total_multipliers(period_multipliers: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Each draw's multiplier of a total: its period multipliers weighted by the shares
    of the expected value that fall in each period.

    Examples
    --------
    >>> total_multipliers(np.array([[1.2, 0.8], [1.0, 1.0]]), np.array([0.75, 0.25])).tolist()
    [1.1, 1.0]
    """
    m = np.asarray(period_multipliers, dtype=float)
    w = np.asarray(shares, dtype=float)
    if m.ndim != 2 or w.shape != (m.shape[1],):
        raise ValueError(f"shapes {m.shape} and {w.shape} do not match: one share per period")
    if np.any(w < 0) or not np.isclose(w.sum(), 1.0):
        raise ValueError("shares must be non-negative and sum to 1")
    return m @ w


def period_value_shares(forecast: CLVForecast, data: Any) -> np.ndarray:
    """Share of the portfolio's expected discounted value that falls in each period.

    From the point estimates of the forecast's models on the customers of ``data``
    (the summary the forecast was made from): expected purchases at each period end,
    differenced, times expected spend, discounted, summed over customers.

    Examples
    --------
    >>> from clvmodels import BetaGeo, GammaGamma, customer_lifetime_value, load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
    ...                       observation_end="1997-09-30")
    >>> fc = customer_lifetime_value(BetaGeo().fit(summary), GammaGamma().fit(summary),
    ...                              summary, horizon=3, n_draws=50, random_state=0)
    >>> shares = period_value_shares(fc, summary)
    >>> shares.round(2).tolist()  # dropout: each month a little less than the one before
    [0.36, 0.33, 0.31]
    """
    scorer = forecast.scorer
    frame = validate_summary(data, require_monetary=True, context="period_value_shares")
    distinct, weights, _ = compress(frame, columns=list(scorer.columns))
    distinct.attrs["time_unit"] = scorer.time_unit
    tx, spend = scorer.transaction_model, scorer.spend_model
    value = np.asarray(spend.expected_spend(data=distinct), dtype=float) * weights
    cumulative = np.array(
        [
            np.asarray(tx.expected_purchases(t=float(t), data=distinct), dtype=float) @ value
            for t in scorer.period_ends
        ]
    )
    # Expected increments are non-negative; clipping guards the last bits of a float.
    per_period = np.clip(np.diff(np.r_[0.0, cumulative]), 0.0, None) * np.asarray(scorer.discount)
    total = per_period.sum()
    if not total > 0:  # no value expected at all: spread evenly
        return np.full(per_period.size, 1.0 / per_period.size)
    return per_period / total


def _refit_effects(
    forecast: CLVForecast,
    data: Any,
    common_shocks: CommonShocks,
    n_refits: int,
    fit_kwargs: Mapping[str, Any],
    rng: np.random.Generator,
) -> tuple[np.ndarray | None, Any, str | None]:
    """The shocks' effects on refits of the forecast's transaction model (or of its
    maximum-likelihood version), the model refitted, and why there are none (too few
    converged, or the model cannot be refitted on simulated cohorts)."""
    refitted, reason = _refit_model(forecast.scorer.transaction_model, data, fit_kwargs)
    if refitted is None:
        return None, None, reason
    effects, failures = _shock_effects(
        refitted, data, common_shocks, np.asarray(forecast.scorer.period_ends),
        np.asarray(forecast.scorer.discount), n_refits=n_refits, fit_kwargs=fit_kwargs,
        random_state=rng,
    )  # fmt: skip
    needed = max(_MIN_REFITS, n_refits // 2)
    if effects.size < needed:
        return None, refitted, (
            f"only {effects.size} of {n_refits} replicates' refits of "
            f"{type(refitted).__name__} on simulated shocked cohorts succeeded, fewer than "
            f"the {needed} needed" + (f"; the first failure: {failures[0]}" if failures else "")
        )
    return effects, refitted, None


@dataclass(frozen=True)
class ShockFactors:
    """Per-draw multipliers of a forecast's portfolio value for shocks common to all
    customers, from :func:`shock_factors`.

    A common shock scales every customer's value in a draw alike, so it moves totals
    (the portfolio's, a tier's) but never a rank: :meth:`total` widens the portfolio
    total's intervals, and :func:`clvmodels.segment` with ``common_multipliers`` (these
    factors) the tiers' totals.

    Attributes
    ----------
    factors : ndarray (n_draws,)
        One mean-one multiplier per forecast draw.
    interval : float
        The level the factors were made for (the spread of the refits' effects is a
        prediction interval of that level).
    method : str
        ``"refits"`` or ``"level-only"``.
    n_refits : int
        Replicates whose refits converged (0 for the level-only multipliers).
    refit_model : str or None
        The class refitted.
    level_only_reason : str or None
        Why the default could not refit (None where it could or where ``n_refits=0``
        was asked for).
    """

    factors: np.ndarray
    interval: float
    method: str
    n_refits: int = 0
    refit_model: str | None = None
    level_only_reason: str | None = None

    def attrs(self) -> dict[str, Any]:
        """How the factors were made, as the ``attrs`` of :meth:`total` hold them."""
        return {
            "shock_method": self.method,
            "n_refits": self.n_refits,
            "refit_model": self.refit_model,
            "level_only_reason": self.level_only_reason,
        }

    def total(self, forecast: CLVForecast) -> pd.Series:
        """``forecast.total(interval)`` with every draw's total (expected, and realised
        when the forecast is predictive: ``forecast.predictive_draw_totals``) multiplied
        by its factor; ``clv`` and ``clv_mean`` are unchanged (the factors are
        mean-preserving)."""
        if forecast.n_draws != self.factors.size:
            raise ValueError(
                f"the forecast has {forecast.n_draws} draws and the shock factors "
                f"{self.factors.size}: make them for this forecast"
            )
        low_p, high_p = interval_probabilities(self.interval)
        out = forecast.total(self.interval).copy()
        out["clv_lower"], out["clv_upper"] = np.quantile(
            forecast.draw_totals * self.factors, [low_p, high_p]
        )
        realised = forecast.predictive_draw_totals
        if realised is not None:
            out["clv_pred_lower"], out["clv_pred_upper"] = prediction_bounds(
                realised * self.factors, [low_p, high_p]
            )
        out.attrs.update(self.attrs())
        return out


def _check_refits(n_refits: Any) -> int | None:
    """``n_refits`` as asked: None (the default), 0, or at least :data:`_MIN_REFITS`."""
    if n_refits is None:
        return None
    refused = ValueError(
        f"n_refits must be 0 (level-only multipliers) or at least {_MIN_REFITS} (the "
        f"spread of the shocks' effects needs that many replicates), got {n_refits!r}"
    )
    # 12.5 or "many" is refused by name, not cut to a number nobody asked for.
    try:
        number = whole_number(n_refits, "n_refits", 0)
    except ValueError:
        raise refused from None
    if 0 < number < _MIN_REFITS:
        raise refused
    return number


def shock_factors(
    forecast: CLVForecast,
    data: Any,
    common_shocks: CommonShocks,
    *,
    interval: float | None = None,
    n_refits: int | None = None,
    fit_kwargs: Mapping[str, Any] | None = None,
    random_state: Any = None,
) -> ShockFactors:
    """One multiplier of the portfolio value per forecast draw, for common shocks.

    Every draw gets a lognormal factor of mean 1 whose spread is that of the effects
    of shock paths on a refitted model's forecast error (:func:`simulated_shock_effects`,
    read by :func:`predictive_log_spread`) and of a level error of sd ``tau``; with
    ``n_refits=0``, a shock path of ``common_shocks`` averaged over the horizon, net of
    the calibration level, instead (:func:`total_multipliers` of
    :meth:`CommonShocks.multipliers` and :func:`period_value_shares`). See the module
    docstring for the model, its assumptions and the coverage each gives;
    :func:`shocked_total` applies the factors to the portfolio total.

    Parameters
    ----------
    forecast : CLVForecast
        One model pair's forecast (a model average has no single model to refit).
    data : DataFrame
        The summary the forecast was made from.
    common_shocks : CommonShocks
        From :func:`estimate_common_shocks` (or :meth:`CommonShocks.fixed`).
    interval : float, optional
        Interval level; defaults to the forecast's.
    n_refits : int, optional
        Simulated shocked cohorts (two refits of the transaction model each) behind the
        shocks' effect, at least 10; 0 for the level-only approximation, which refits
        nothing. By default :data:`DEFAULT_REFITS` where the transaction model can be
        refitted, otherwise 0 (see :func:`shock_refit_refusal`; the regularity models
        read the inter-purchase sums of the simulated purchase times). A Bayesian or
        grouped fit is refitted through its maximum-likelihood version
        (``maximum_likelihood_model()``, fitted on ``data``): MCMC would take hours.
    fit_kwargs : mapping, optional
        Passed to ``fit`` of the refitted copies.
    random_state : int or numpy Generator, optional

    Returns
    -------
    ShockFactors

    Examples
    --------
    >>> from clvmodels import BetaGeo, GammaGamma, customer_lifetime_value, load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
    ...                       observation_end="1997-09-30")
    >>> fc = customer_lifetime_value(BetaGeo().fit(summary), GammaGamma().fit(summary),
    ...                              summary, horizon=39, period="W", discount_rate=0,
    ...                              n_draws=500, random_state=0)
    >>> made = shock_factors(fc, summary, CommonShocks.fixed(0.2, 0.5, 0.05), random_state=0)
    >>> made.method, made.factors.shape, bool(0.95 < made.factors.mean() < 1.05)
    ('refits', (500,), True)
    """
    if not isinstance(common_shocks, CommonShocks):
        raise TypeError(f"common_shocks must be a CommonShocks, got {type(common_shocks).__name__}")
    if getattr(forecast, "scorer", None) is None:
        raise ValueError(
            "common shocks need one model pair's forecast: a model average has no single "
            "model whose refits measure the shocks' effect"
        )
    scorer = forecast.scorer
    level = forecast.interval if interval is None else float(interval)
    interval_probabilities(level)  # checks the level
    asked = _check_refits(n_refits)
    n_refits = DEFAULT_REFITS if asked is None else asked
    rng = np.random.default_rng(random_state)
    n_draws = forecast.n_draws
    effects, refitted, reason = None, None, None
    if n_refits:
        effects, refitted, reason = _refit_effects(
            forecast, data, common_shocks, n_refits, fit_kwargs or {}, rng
        )
        if effects is None and asked is not None:
            raise ValueError(f"common shocks: {reason}")
    if effects is None:
        m = common_shocks.multipliers(
            n_draws, scorer.horizon, scorer.period_length, time_unit=scorer.time_unit,
            random_state=rng,
        )  # fmt: skip
        return ShockFactors(
            total_multipliers(m, period_value_shares(forecast, data)), level, "level-only",
            level_only_reason=reason,
        )  # fmt: skip
    spread = predictive_log_spread(effects, level)
    tau = common_shocks.sample(n_draws, rng)["tau"].to_numpy()
    log_factor = spread * rng.standard_normal(n_draws) + tau * rng.standard_normal(n_draws)
    return ShockFactors(
        np.exp(log_factor - (spread**2 + tau**2) / 2), level, "refits",
        n_refits=int(effects.size), refit_model=type(refitted).__name__,
    )  # fmt: skip


def shocked_total(
    forecast: CLVForecast,
    data: Any,
    common_shocks: CommonShocks,
    *,
    interval: float | None = None,
    n_refits: int | None = None,
    fit_kwargs: Mapping[str, Any] | None = None,
    random_state: Any = None,
) -> pd.Series:
    """A forecast's portfolio total with common shocks in its intervals.

    Every parameter draw's total (expected, and simulated when the forecast is
    predictive) is multiplied by its factor from :func:`shock_factors`, which takes
    the same arguments; ``shock_factors(...).total(forecast)`` is the same total.

    Returns
    -------
    Series
        The keys of :meth:`CLVForecast.total` (``clv`` and ``clv_mean`` unchanged:
        the shocks are mean-preserving), with the intervals widened;
        ``attrs["shock_method"]`` says how (``"refits"`` or ``"level-only"``),
        ``attrs["n_refits"]`` how many replicates' refits converged,
        ``attrs["refit_model"]`` the class refitted, and ``attrs["level_only_reason"]``
        why the default could not refit (None where it could or where ``n_refits=0``
        was asked for).

    Examples
    --------
    >>> from clvmodels import BetaGeo, GammaGamma, customer_lifetime_value, load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
    ...                       observation_end="1997-09-30")
    >>> fc = customer_lifetime_value(BetaGeo().fit(summary), GammaGamma().fit(summary),
    ...                              summary, horizon=39, period="W", discount_rate=0,
    ...                              n_draws=500, predictive=True, random_state=0)
    >>> plain = fc.total()
    >>> shocks = CommonShocks.fixed(0.2, 0.5, 0.05)
    >>> wide = shocked_total(fc, summary, shocks, random_state=0)
    >>> wide.attrs["shock_method"], wide.attrs["n_refits"]
    ('refits', 50)
    >>> level_only = shocked_total(fc, summary, shocks, n_refits=0, random_state=0)
    >>> width = lambda t: t["clv_pred_upper"] - t["clv_pred_lower"]
    >>> [bool(1.3 < width(t) / width(plain) < 4) for t in (wide, level_only)]
    [True, True]
    """
    return shock_factors(
        forecast, data, common_shocks, interval=interval, n_refits=n_refits,
        fit_kwargs=fit_kwargs, random_state=random_state,
    ).total(forecast)  # fmt: skip
