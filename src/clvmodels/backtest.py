"""Rolling-origin backtests: refit at cut points inside a window, forecast the next block.

A model fitted to a calibration window says nothing about its own forecast error. A
rolling-origin backtest measures it where the answer is known: the model is refitted
on the log up to a cut point *inside* the window, forecasts the next block, and the
forecast is compared with what happened. :func:`backtest_cuts` places the cut points
(non-overlapping blocks ending at the window's end), :func:`backtest_purchases` runs
them for the cohort's repeat purchases, with the spread that parameter uncertainty and
purchase noise alone explain (simulated from each refitted model), so that the error
beyond it can be told apart. :func:`clvmodels.shocks.estimate_common_shocks` uses them
to estimate a model's level error.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from clvmodels.data import calibration_holdout_split, compress
from clvmodels.errors import ConvergenceError
from clvmodels.models.base import TransactionModel

__all__ = ["backtest_cuts", "backtest_purchases"]

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
