"""Rolling-origin backtests: refit at cut points inside a window, forecast the next block.

A model fitted to a calibration window says nothing about its own forecast error. A
rolling-origin backtest measures it where the answer is known: the model is refitted
on the log up to a cut point *inside* the window, forecasts the next block, and the
forecast is compared with what happened. :func:`backtest_cuts` places the cut points
(non-overlapping blocks ending at the window's end), :func:`backtest_purchases` runs
them for the cohort's repeat purchases, with the spread that parameter uncertainty and
purchase noise alone explain (simulated from each refitted model), so that the error
beyond it can be told apart. :func:`clvmodels.shocks.estimate_common_shocks` uses them
to estimate a model's level error. :func:`backtest_tier_probability` runs one for a
forecast's tier probabilities: of customers given about ``p``, what share reached the
tier in the block, and the logistic recalibration that would have made them right
(:func:`clvmodels.calibration.logistic_recalibration`), to apply to the forecast.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clvmodels._summary_options import summary_options_for
from clvmodels.calibration import (
    logistic_recalibration,
    rank_share_tiers,
    recalibrated,
    tier_calibration,
)
from clvmodels.clv import CLVForecast, customer_lifetime_value
from clvmodels.data import calibration_holdout_split, compress, join_customer_data
from clvmodels.errors import ConvergenceError, DataValidationError
from clvmodels.models.base import TransactionModel
from clvmodels.segmentation import segment
from clvmodels.units import TIME_UNIT_DAYS

__all__ = [
    "TierProbabilityBacktest",
    "backtest_cuts",
    "backtest_purchases",
    "backtest_tier_probability",
    "refit_refusal",
]

#: The top-tier probability columns of :func:`clvmodels.segment` that a backtest tries:
#: the probability that the customer's realised value reaches the top tier (from
#: predictive draws, or from parameter draws alone).
TOP_TIER_COLUMNS = ("top_tier_probability_realised", "top_tier_probability")

BACKTEST_COLUMNS = ["cut", "length", "actual", "forecast", "log_error", "noise_var"]


def backtest_cuts(
    start: Any, end: Any, block_days: float, n_backtests: int | None = None
) -> list[pd.Timestamp]:
    """Cut dates of non-overlapping blocks of ``block_days`` ending at ``end``.

    The last cut is the last day before the last block, the one before it a block
    earlier, and so on, as long as at least one block and a third of the window
    remain to fit on (or ``n_backtests`` cuts are placed).

    Examples
    --------
    >>> [c.date().isoformat() for c in backtest_cuts("1997-01-01", "1997-09-30", 91)]
    ['1997-07-01', '1997-04-01']
    """
    start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    if not block_days > 0:
        raise ValueError(f"block_days must be positive, got {block_days!r}")
    span = (end - start).days + 1
    minimum = max(block_days, span / 3)
    cuts = []
    j = 1
    while n_backtests is None or j <= n_backtests:
        cut_day = span - 1 - j * block_days
        if cut_day + 1 < minimum:
            break
        cuts.append(start + pd.Timedelta(days=round(cut_day)))
        j += 1
    return cuts


def backtest_purchases(
    transaction_model: TransactionModel,
    transactions: pd.DataFrame,
    customer_col: str,
    date_col: str,
    cuts: Sequence[Any],
    block_days: float,
    *,
    time_unit: str,
    n_simulations: int = 200,
    fit_kwargs: Mapping[str, Any] | None = None,
    random_state: Any = None,
) -> pd.DataFrame:
    """Refit a copy of the model at each cut and forecast the next block's purchases.

    Parameters
    ----------
    transaction_model : TransactionModel
        A model of the population (fitted or not; it is copied, never changed).
    transactions : DataFrame
        The log, at least up to the last cut plus a block.
    customer_col, date_col : str
    cuts : sequence of date-like
        Last days of the calibration windows (e.g. from :func:`backtest_cuts`).
    block_days : float
        Length of the forecast block in days.
    time_unit : str
        Time unit of the refitted summaries ("D", "W", ...).
    n_simulations : int, default 200
        Parameter draws, one simulated future of the cohort each, behind
        ``noise_var``.
    fit_kwargs : mapping, optional
        Passed to ``fit``.
    random_state : int or numpy Generator, optional

    Returns
    -------
    DataFrame
        Per cut: ``cut``, ``length`` (of the block in ``time_unit``), ``actual`` and
        ``forecast`` (the cohort's repeat purchases in the block), ``log_error``
        (log of actual over the simulated totals' geometric mean) and ``noise_var``
        (variance of the simulated log totals: what parameter uncertainty and purchase
        noise explain). Cuts where the refit fails (a short window may not identify
        the model) are left out and named in ``attrs["skipped"]``.

    Examples
    --------
    >>> from clvmodels import BetaGeo, load_cdnow
    >>> table = backtest_purchases(BetaGeo(), load_cdnow(), "customer_id", "date",
    ...                            ["1997-06-30"], 91, time_unit="W", random_state=0)
    >>> row = table.loc[0]
    >>> int(row["actual"]), round(float(row["forecast"] / row["actual"]), 2)
    (712, 1.0)
    """
    rng = np.random.default_rng(random_state)
    rows = []
    skipped: list[str] = []
    for cut in map(pd.Timestamp, cuts):
        block_end = cut + pd.Timedelta(days=round(block_days))
        split = calibration_holdout_split(
            transactions, customer_col, date_col, calibration_end=cut,
            observation_end=block_end, time_unit=time_unit,
        )  # fmt: skip
        try:
            with warnings.catch_warnings():
                # A refit that cannot give standard errors is skipped below, and named.
                warnings.simplefilter("ignore", RuntimeWarning)
                refit = copy.deepcopy(transaction_model).fit(split, **dict(fit_kwargs or {}))
            draws = refit.param_draws(int(n_simulations), random_state=rng)
        except (ConvergenceError, ValueError) as err:
            # A short window may not identify the model (no fit, or no covariance).
            skipped.append(f"{cut.date().isoformat()}: {type(err).__name__}")
            continue
        length = float(split["duration_holdout"].iloc[0])
        data_cols = list(dict.fromkeys(["frequency", "recency", "T", *refit.data_columns]))
        distinct, weights, _ = compress(split, columns=data_cols)
        distinct.attrs["time_unit"] = time_unit
        forecast = float(
            np.asarray(refit.expected_purchases(t=length, data=distinct), dtype=float) @ weights
        )
        sims = refit.simulate_purchases(t=length, data=distinct, draws=draws, random_state=rng)
        log_totals = np.log(np.maximum(sims.counts() @ weights, 0.5))
        actual = float(split["frequency_holdout"].sum())
        rows.append(
            {
                "cut": cut.date().isoformat(),
                "length": length,
                "actual": actual,
                "forecast": forecast,
                "log_error": math.log(max(actual, 0.5)) - float(log_totals.mean()),
                "noise_var": float(log_totals.var(ddof=1)),
            }
        )
    table = pd.DataFrame(rows, columns=BACKTEST_COLUMNS)
    table.attrs["skipped"] = skipped
    return table


@dataclass(frozen=True)
class TierProbabilityBacktest:
    """A forecast's tier probabilities tried on a block whose outcome is known.

    Attributes
    ----------
    column : str
        The :func:`clvmodels.segment` column tried (one of :data:`TOP_TIER_COLUMNS`).
    cut, end : str
        The backtest's calibration end and the end of its block (ISO dates).
    intercept, slope : float
        The logistic recalibration fitted on the block:
        ``logit P(event) = intercept + slope logit(p)``.
    calibration : DataFrame
        :func:`clvmodels.calibration.tier_calibration` of the backtest's probabilities.
    recalibrated_calibration : DataFrame
        The same after the recalibration (fitted on these customers: in-sample).
    n_customers : int
    """

    column: str
    cut: str
    end: str
    intercept: float
    slope: float
    calibration: pd.DataFrame
    recalibrated_calibration: pd.DataFrame
    n_customers: int

    def recalibrate(self, probability: Any) -> np.ndarray:
        """Probabilities of the same kind mapped by the fitted recalibration."""
        return recalibrated(probability, self.intercept, self.slope)

    def apply(self, customers: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``customers`` (e.g. ``segment(forecast).customers``) with the column
        ``<column>_recalibrated`` beside the original."""
        if self.column not in customers.columns:
            raise ValueError(
                f"apply: the table has no column {self.column!r} (it has "
                f"{list(customers.columns)})"
            )
        out = customers.copy()
        out[f"{self.column}_recalibrated"] = self.recalibrate(customers[self.column])
        return out


def refit_refusal(models: Sequence[Any]) -> str | None:
    """Why a backtest will not refit these models (None where it will): Bayesian and
    grouped fits would rerun MCMC or need their groups' history.

    Examples
    --------
    >>> from clvmodels import BetaGeo, GammaGamma
    >>> refit_refusal([BetaGeo(), GammaGamma()]) is None
    True
    """
    for model in models:
        if getattr(model, "idata_", None) is not None or getattr(model, "group_col", None):
            return (
                f"{type(model).__name__} is a Bayesian or grouped fit, which the backtest "
                "would refit; make the forecast with the maximum-likelihood version "
                "(model.maximum_likelihood_model(), fitted)"
            )
    return None


def backtest_tier_probability(
    forecast: CLVForecast,
    transactions: pd.DataFrame,
    customer_col: str,
    date_col: str,
    value_col: str,
    *,
    calibration_end: Any,
    column: str = "top_tier_probability_realised",
    tiers: Any = None,
    summary_options: Mapping[str, Any] | None = None,
    customer_data: pd.DataFrame | None = None,
    random_state: Any = None,
) -> TierProbabilityBacktest:
    """Try a forecast's tier probabilities on the last block of its calibration window.

    The forecast's models are refitted (copies) on the log up to ``calibration_end``
    minus the forecast's horizon, forecast that block with the forecast's settings
    (predictive draws for ``top_tier_probability_realised``), and
    :func:`clvmodels.segment` gives every customer the probability ``column``. Which
    customers then reached the top tier by realised value in the block (undiscounted,
    ranked as :func:`clvmodels.calibration.rank_share_tiers` does) is known, so the
    probabilities' calibration is measured and a logistic recalibration fitted, which
    :meth:`TierProbabilityBacktest.apply` carries to the forecast's own probabilities.

    The recalibration assumes that the model errs about tiers in the block before the
    cut-off as it will after it. On CDNOW's full cohort (rolling origin, 11 cuts,
    13-week holdouts, ``benchmarks/bench_coverage.py``) it brought the predictive
    top-tier probability within 4.2 points of the realised share in every decile bin,
    from up to 7.2 points off.

    Parameters
    ----------
    forecast : CLVForecast
        Made with maximum-likelihood models (refitting a Bayesian one would rerun MCMC:
        make the forecast with ``model.maximum_likelihood_model()`` fitted instead).
    transactions : DataFrame, path, glob or list of paths
        The log, at least up to ``calibration_end``, in any form
        :func:`clvmodels.calibration_holdout_split` reads (files out of core).
    customer_col, date_col, value_col : str
    calibration_end : date-like
        The forecast's calibration end: the backtest's block ends here.
    column : str, default "top_tier_probability_realised"
        One of :data:`TOP_TIER_COLUMNS`. (The probability of staying in the point
        tier is not tried: most customers realise exactly 0 in a block, and their
        ties decide which lower tier they reached.)
    tiers : optional
        Rank-share tiers as :func:`clvmodels.segment` takes them (its default if None).
    summary_options : mapping, optional
        Options of the backtest's summary as the forecast's summary was made
        (:func:`clvmodels.calibration_holdout_split`'s ``freq``, ``group_col``,
        ``date_format``, ``regularity``, ...). The columns the fitted models read are
        asked for in any case; a model that re-estimates a setting on refitting (e.g.
        BG/CNBD-k's ``k``) may need more, as its unfitted version would.
    customer_data : DataFrame, optional
        One row per customer, indexed by id: the covariates the forecast's models read,
        joined onto the backtest's summary (:func:`clvmodels.data.join_customer_data`).
    random_state : int or numpy Generator, optional
        Seed of the backtest forecast's draws.

    Returns
    -------
    TierProbabilityBacktest

    Examples
    --------
    >>> from clvmodels import (BetaGeo, GammaGamma, calibration_holdout_split,
    ...                        customer_lifetime_value, load_cdnow, segment)
    >>> log = load_cdnow()
    >>> split = calibration_holdout_split(log, "customer_id", "date", "amount",
    ...                                   calibration_end="1997-09-30")
    >>> fc = customer_lifetime_value(BetaGeo().fit(split), GammaGamma().fit(split), split,
    ...                              horizon=13, period="W", discount_rate=0, n_draws=200,
    ...                              predictive=True, random_state=0, progressbar=False)
    >>> check = backtest_tier_probability(fc, log, "customer_id", "date", "amount",
    ...                                   calibration_end="1997-09-30", random_state=1)
    >>> check.cut, check.end
    ('1997-07-01', '1997-09-30')
    >>> table = check.apply(segment(fc).customers)
    >>> "top_tier_probability_realised_recalibrated" in table.columns
    True
    """
    if column not in TOP_TIER_COLUMNS:
        raise ValueError(f"column must be one of {list(TOP_TIER_COLUMNS)}, got {column!r}")
    if not isinstance(forecast, CLVForecast):
        raise TypeError(
            f"backtest_tier_probability needs a CLVForecast, got {type(forecast).__name__}"
        )
    scorer = forecast.scorer
    models = (scorer.transaction_model, scorer.spend_model)
    refusal = refit_refusal(models)
    if refusal is not None:
        raise ValueError(f"backtest_tier_probability: {refusal}")
    end = pd.Timestamp(calibration_end).normalize()
    horizon_days = float(scorer.period_ends[-1]) * TIME_UNIT_DAYS[scorer.time_unit]
    cut = end - pd.Timedelta(days=round(horizon_days))
    columns = [c for m in models for c in m.data_columns]
    options = {**summary_options_for(columns), **dict(summary_options or {}),
               "time_unit": scorer.time_unit}
    try:
        split = calibration_holdout_split(
            transactions, customer_col, date_col, value_col, calibration_end=cut,
            observation_end=end, **options,
        )  # fmt: skip
    except DataValidationError as err:
        raise DataValidationError(
            f"backtest_tier_probability: the backtest's calibration ends on {cut.date()} "
            f"(calibration_end {end.date()} minus the forecast's horizon of "
            f"{horizon_days:g} days): {err}"
        ) from err
    split = join_customer_data(split, customer_data)
    with warnings.catch_warnings():
        # The refits' notes (e.g. customers without a usable spend) are the forecast's own.
        warnings.simplefilter("ignore", UserWarning)
        refits = [copy.deepcopy(m).fit(split) for m in models]
    settings = scorer.settings
    predictive = column.endswith("_realised")
    check = customer_lifetime_value(
        *refits, split, horizon=settings["horizon"], period=settings["period"],
        discount_rate=settings["discount_rate"], interval=settings["interval"],
        n_draws=settings["n_draws"], predictive=predictive,
        n_futures=settings.get("n_futures") if predictive else None,
        random_state=random_state, progressbar=False,
    )  # fmt: skip
    segmentation = segment(check, tiers, progressbar=False)
    customers = segmentation.customers.reindex(split.index)
    shares = list(segmentation.settings["tiers"].values())
    realised = (split["frequency_holdout"] * split["monetary_value_holdout"]).to_numpy(float)
    hit = rank_share_tiers(realised, shares) == 0
    if hit.all() or realised[hit].min() <= 0:
        raise ValueError(
            f"backtest_tier_probability: only {int((realised > 0).sum())} of {realised.size} "
            f"customers bought in the block {cut.date()} to {end.date()}, fewer than the "
            f"top tier's share {shares[0]:g}: who reached it is decided by ties at 0"
        )
    probability = customers[column].to_numpy(dtype=float)
    intercept, slope = logistic_recalibration(probability, hit)
    return TierProbabilityBacktest(
        column=column,
        cut=cut.date().isoformat(),
        end=end.date().isoformat(),
        intercept=intercept,
        slope=slope,
        calibration=tier_calibration(probability, hit),
        recalibrated_calibration=tier_calibration(
            recalibrated(probability, intercept, slope), hit
        ),
        n_customers=len(split),
    )

