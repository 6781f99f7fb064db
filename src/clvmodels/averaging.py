"""Model averaging: forecasts of the same customers by several models, combined.

One model's intervals hold the uncertainty of its parameters, not the uncertainty of
which model is right. :func:`average_forecasts` combines forecasts by several models
(e.g. the family of :func:`clvmodels.compare`) with weights from the holdout
(:func:`stacking_weights` of :func:`holdout_log_density`: Yao, Vehtari, Simpson &
Gelman 2018, "Using stacking to average Bayesian predictive distributions", *Bayesian
Analysis* 13(3)), from PSIS-LOO stacking of Bayesian models (:func:`loo_weights`,
``arviz.compare(method="stacking")``), or given. Point values are the weighted means;
intervals come from the mixture: of the ``n_draws`` draws, model ``k`` contributes
``w_k n_draws`` (:func:`mixture_allocation`, largest remainders), so every quantile of
the mixture lies between the smallest and the largest of the models' quantiles.

Holdout weights score the purchase counts (the transaction model, which carries most of
the difference between the family's forecasts); the spend model is the same
Gamma-Gamma for the whole family by default.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from clvmodels._summary_options import summary_options_for
from clvmodels.clv import CLVForecast, interval_probabilities, predictive_interval
from clvmodels.data import calibration_holdout_split, compress, validate_summary
from clvmodels.errors import ConvergenceError
from clvmodels.models.base import TransactionModel, accepted_fit_options
from clvmodels.units import TIME_UNIT_DAYS

__all__ = [
    "AveragedForecast",
    "average_forecasts",
    "backtest_weights",
    "holdout_log_density",
    "holdout_weights",
    "loo_weights",
    "mixture_allocation",
    "stacking_weights",
]

# Simulated (draw, customer) pairs per block of the holdout simulations.
_BLOCK_PAIRS = 2_000_000
# Values per block that an AveragedForecast yields.
_BLOCK_VALUES = 4_000_000


def stacking_weights(log_density: Any, *, tol: float = 1e-10, max_iter: int = 10_000) -> pd.Series:
    """Stacking weights: the mixture weights that maximise the mean log score.

    ``argmax_w sum_i log sum_k w_k p_ik`` over the simplex (Yao et al. 2018), by the
    EM iteration for mixture weights, which increases the score at every step.

    Parameters
    ----------
    log_density : DataFrame or 2-d array (n_observations, n_models)
        Log predictive density of each observation (a holdout customer, or a LOO
        term) under each model.

    Returns
    -------
    Series
        One weight per model (column), summing to 1.

    Examples
    --------
    A model that predicts half of the customers well and another the other half get
    equal weights; a model that is never better gets none:

    >>> lp = np.log([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1]] * 50)
    >>> stacking_weights(pd.DataFrame(lp, columns=["a", "b", "c"])).round(3).tolist()
    [0.5, 0.5, 0.0]
    """
    frame = pd.DataFrame(log_density)
    lp = frame.to_numpy(dtype=float)
    if lp.ndim != 2 or lp.shape[0] == 0 or lp.shape[1] == 0:
        raise ValueError("log_density must be a non-empty (observations, models) table")
    if np.any(np.isnan(lp)) or np.any(lp == np.inf):
        raise ValueError("log_density must hold finite log densities (or -inf)")
    keep = np.isfinite(lp).any(axis=1)
    lp = lp[keep] - np.max(lp[keep], axis=1, keepdims=True)
    dens = np.exp(lp)
    w = np.full(lp.shape[1], 1.0 / lp.shape[1])
    for _ in range(int(max_iter)):
        mix = dens @ w
        new = w * (dens / mix[:, None]).mean(axis=0)
        new /= new.sum()
        if np.max(np.abs(new - w)) < tol:
            w = new
            break
        w = new
    return pd.Series(w, index=frame.columns, name="weight")


def mixture_allocation(weights: np.ndarray, n: int) -> np.ndarray:
    """How many of ``n`` draws each component contributes: ``weights * n`` rounded by
    largest remainders, so that the counts sum to ``n``.

    Examples
    --------
    >>> mixture_allocation(np.array([0.5, 0.3, 0.2]), 7).tolist()
    [4, 2, 1]
    """
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or w.size == 0 or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
        raise ValueError(f"weights must be non-negative and sum to 1, got {w.tolist()}")
    exact = w * int(n)
    counts = np.floor(exact).astype(np.int64)
    short = int(n) - int(counts.sum())
    if short:
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:short]] += 1
    return counts


# --------------------------------------------------------------------------------------
# Model weights
# --------------------------------------------------------------------------------------
def holdout_log_density(
    transaction_model: TransactionModel,
    calibration_holdout: pd.DataFrame,
    *,
    n_draws: int = 1000,
    random_state: Any = None,
) -> pd.Series:
    """Log predictive probability of each customer's holdout purchase count.

    ``P(Y = y_i | history)`` is estimated from ``n_draws`` futures simulated under
    parameter draws (``simulate_purchases``), pooled over identical customers, as
    ``(matches + 1/2) / (futures + 1)`` so that no count gets probability 0. The input
    of :func:`stacking_weights`.

    Examples
    --------
    >>> from clvmodels import BetaGeo, calibration_holdout_split, load_cdnow
    >>> split = calibration_holdout_split(load_cdnow(), "customer_id", "date",
    ...     calibration_end="1997-09-30", observation_end="1998-06-30")
    >>> lp = holdout_log_density(BetaGeo().fit(split), split, n_draws=200, random_state=0)
    >>> round(float(lp.mean()), 1)
    -1.0
    """
    frame = validate_summary(calibration_holdout, context="holdout_log_density")
    if "frequency_holdout" not in frame.columns or "duration_holdout" not in frame.columns:
        raise ValueError("holdout_log_density needs the output of calibration_holdout_split")
    rng = np.random.default_rng(random_state)
    length = float(frame["duration_holdout"].iloc[0])
    cols = list(dict.fromkeys(["frequency", "recency", "T", *transaction_model.data_columns]))
    group = getattr(transaction_model, "group_col", None)
    rows, _, inverse = compress(frame, columns=cols, extra=[group] if group else [])
    rows.attrs["time_unit"] = frame.attrs.get("time_unit")
    y = frame["frequency_holdout"].to_numpy(dtype=np.int64)
    # Identical customers with the same holdout count share one estimate.
    pairs, pair_of_customer = np.unique(np.stack([inverse, y], axis=1), axis=0,
                                        return_inverse=True)  # fmt: skip
    prob = np.empty(len(pairs))
    draws = transaction_model.param_draws(int(n_draws), random_state=rng)
    block = max(1, _BLOCK_PAIRS // int(n_draws))
    for start in range(0, len(rows), block):
        part = rows.iloc[start : start + block].reset_index(drop=True)
        part.attrs["time_unit"] = rows.attrs["time_unit"]
        counts = transaction_model.simulate_purchases(
            t=length, data=part, draws=draws, random_state=rng
        ).counts()
        inside = (pairs[:, 0] >= start) & (pairs[:, 0] < start + len(part))
        matches = counts[:, pairs[inside, 0] - start] == pairs[inside, 1][None, :]
        prob[inside] = (matches.sum(axis=0) + 0.5) / (counts.shape[0] + 1.0)
    values = np.log(prob[np.ravel(pair_of_customer)])
    return pd.Series(values, index=frame.index, name="log_density")


def holdout_weights(
    models: Mapping[str, Any],
    calibration_holdout: pd.DataFrame,
    *,
    n_draws: int = 1000,
    random_state: Any = None,
) -> pd.Series:
    """Stacking weights of fitted models on a holdout: :func:`stacking_weights` of each
    model's :func:`holdout_log_density`.

    Parameters
    ----------
    models : mapping of str to a transaction model or a (transaction, spend) pair
        Fitted on the calibration columns of ``calibration_holdout``, e.g. the
        ``models`` that :func:`clvmodels.compare` fitted.
    calibration_holdout : DataFrame
        Output of :func:`clvmodels.calibration_holdout_split`.
    n_draws : int, default 1000
    random_state : int, optional
        The same seed for every model.

    Examples
    --------
    >>> from clvmodels import BetaGeo, ParetoNBD, calibration_holdout_split, load_cdnow
    >>> split = calibration_holdout_split(load_cdnow(), "customer_id", "date",
    ...     calibration_end="1997-09-30", observation_end="1998-06-30")
    >>> w = holdout_weights({"bgnbd": BetaGeo().fit(split), "pareto": ParetoNBD().fit(split)},
    ...                     split, n_draws=200, random_state=0)
    >>> float(w.sum())
    1.0
    """
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty mapping of name -> model or pair")
    densities = {}
    for name, model in models.items():
        transaction = model[0] if isinstance(model, tuple | list) else model
        densities[str(name)] = holdout_log_density(
            transaction, calibration_holdout, n_draws=n_draws, random_state=random_state
        )
    return stacking_weights(pd.DataFrame(densities))


def loo_weights(models: Mapping[str, Any]) -> pd.Series:
    """Stacking weights of Bayesian models from PSIS-LOO (``arviz.compare``).

    The models must be fitted on the same customers with the pointwise log-likelihood
    stored (as :func:`clvmodels.compare_loo` needs).
    """
    from clvmodels.models.bayes import compare_loo

    table = compare_loo(models, method="stacking")
    return table["weight"].reindex(list(models)).rename("weight")


def backtest_weights(
    models: Mapping[str, Any],
    transactions: Any,
    calibration_holdout: pd.DataFrame,
    *,
    block_days: float | None = None,
    n_draws: int = 1000,
    fit_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    random_state: Any = None,
) -> pd.Series:
    """Stacking weights from a backtest inside the calibration window: no holdout used.

    Weights chosen on the holdout that the average is then scored on would flatter it.
    Here each model is refitted (a copy; the models passed are never changed) on the
    log up to a cut *inside* the calibration window, and :func:`stacking_weights` of
    the refits' :func:`holdout_log_density` on the block between the cut and the
    window's end gives the weights. The block is as long as the holdout
    (``duration_holdout``), at most a third of the window (from the customers' first
    purchase to ``calibration_end``), so that the refits see two thirds of it: the last
    cut of :func:`clvmodels.backtest.backtest_cuts`. On CDNOW's 39-week window a cut at
    half of it leaves too little for Pareto/NBD to be identified.

    Parameters
    ----------
    models : mapping of str to a transaction model or a (transaction, spend) pair
        E.g. the ``models`` that :func:`clvmodels.compare` compares.
    transactions : DataFrame
        The transaction log ``calibration_holdout`` was made from (any frame
        :func:`clvmodels.calibration_holdout_split` reads).
    calibration_holdout : DataFrame
        Output of :func:`clvmodels.calibration_holdout_split` (its ``attrs`` name the
        columns, ``freq``, ``time_unit`` and ``calibration_end``). Only its customers
        are scored; its columns that a log does not give (customer attributes such as
        covariates) are carried to the summary at the cut.
    block_days : float, optional
        Length of the block in days, instead of the default above.
    n_draws : int, default 1000
        Simulated futures behind each log density.
    fit_kwargs : mapping of str to dict, optional
        Extra ``fit`` arguments per model name (each fit takes those it accepts).
    random_state : int, optional
        The same seed for every model.

    Returns
    -------
    Series
        One weight per model, summing to 1. A model that cannot be refitted at the cut
        (a short window may not identify it) gets weight 0. ``attrs`` records
        ``method`` ("backtest"), ``cut`` and ``window_end`` (ISO dates), ``block_days``,
        ``customers`` (scored at the cut) and ``left_out`` (model: why).

    Examples
    --------
    >>> from clvmodels import BetaGeo, ParetoNBD, calibration_holdout_split, load_cdnow
    >>> log = load_cdnow()
    >>> split = calibration_holdout_split(log, "customer_id", "date",
    ...     calibration_end="1997-09-30", observation_end="1998-06-30")
    >>> w = backtest_weights({"bgnbd": BetaGeo(), "pareto": ParetoNBD()}, log, split,
    ...                      n_draws=200, random_state=0)
    >>> w.attrs["cut"], w.attrs["block_days"], round(float(w.sum()), 12)
    ('1997-07-01', 91.0, 1.0)
    """
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty mapping of name -> model or pair")
    frame = validate_summary(calibration_holdout, context="backtest_weights")
    attrs = frame.attrs
    lacking = [k for k in ("customer_col", "date_col", "freq", "time_unit") if not attrs.get(k)]
    end = attrs.get("calibration_end", attrs.get("observation_end"))
    if lacking or end is None:
        raise ValueError(
            "backtest_weights needs a split made by calibration_holdout_split (its attrs "
            f"lack {lacking or ['calibration_end']})"
        )
    transactions_of = {str(n): (m[0] if isinstance(m, tuple | list) else m)
                       for n, m in models.items()}  # fmt: skip
    unit_days = TIME_UNIT_DAYS[attrs["time_unit"]]
    end = pd.Timestamp(end).normalize()
    window_days = float(frame["T"].max()) * unit_days + 1
    if block_days is None:
        holdout = (float(frame["duration_holdout"].iloc[0]) * unit_days
                   if "duration_holdout" in frame.columns else np.inf)
        block_days = float(min(holdout, np.floor(window_days / 3)))
    if not 1 <= block_days <= window_days - 1:
        raise ValueError(
            f"backtest_weights: block_days must lie between 1 and {window_days - 1:g} "
            f"(the calibration window less a day), got {block_days!r}"
        )
    cut = end - pd.Timedelta(days=round(block_days))
    # The columns the models read, and the regularity column whatever they read (a fitted
    # BG/CNBD-k with k = 1 reads the history only, but its refit estimates k from it).
    columns = [*frame.columns, *(c for m in transactions_of.values() for c in m.data_columns)]
    options = {**summary_options_for(columns), "regularity": True}
    inner = calibration_holdout_split(
        transactions, attrs["customer_col"], attrs["date_col"], calibration_end=cut,
        observation_end=end, freq=attrs["freq"], time_unit=attrs["time_unit"],
        group_col=attrs.get("group_col"), **options,
    )  # fmt: skip
    kept = inner.loc[inner.index.isin(frame.index)].copy()
    # Customer attributes of the split (covariates) that a log does not hold.
    for col in frame.columns:
        if col not in kept.columns and not str(col).endswith("_holdout"):
            kept[col] = frame[col].reindex(kept.index)
    kept.attrs = dict(inner.attrs)
    if kept.empty:
        raise ValueError(f"backtest_weights: none of the customers had bought by the cut {cut}")
    densities: dict[str, pd.Series] = {}
    left_out: dict[str, str] = {}
    for name, model in transactions_of.items():
        try:
            with warnings.catch_warnings():
                # A refit that cannot give standard errors is left out below, and named.
                warnings.simplefilter("ignore", RuntimeWarning)
                refit = copy.deepcopy(model)
                refit.fit(kept, **accepted_fit_options(refit.fit, (fit_kwargs or {}).get(name, {})))
            densities[name] = holdout_log_density(
                refit, kept, n_draws=n_draws, random_state=random_state
            )
        except (ConvergenceError, ValueError) as err:
            left_out[name] = f"{type(err).__name__}: {err}"
    if not densities:
        raise ConvergenceError(
            f"backtest_weights: no model could be refitted at the cut {cut.date()}: {left_out}"
        )
    weights = stacking_weights(pd.DataFrame(densities)).reindex(list(transactions_of))
    weights = weights.fillna(0.0)
    weights.attrs = {
        "method": "backtest",
        "cut": cut.date().isoformat(),
        "window_end": end.date().isoformat(),
        "block_days": float(round(block_days)),
        "customers": len(kept),
        "left_out": left_out,
    }
    return weights


# --------------------------------------------------------------------------------------
# Model averaging
# --------------------------------------------------------------------------------------
class AveragedForecast(CLVForecast):
    """A mixture of forecasts of the same customers, from :func:`average_forecasts`.

    A :class:`~clvmodels.clv.CLVForecast` whose draws are the mixture's, so that
    :func:`clvmodels.segment` and :func:`clvmodels.evaluation.forecast_calibration`
    take it as they take one model's forecast. Every customer is its own row
    (:attr:`row_weights` are ones); it has no ``scorer`` (there is no single model to
    score further customers with).

    Attributes
    ----------
    table : DataFrame
        Per customer: the weighted means of ``expected_purchases``,
        ``probability_alive``, ``expected_spend`` and ``clv``; ``clv_lower`` /
        ``clv_upper`` (and ``clv_pred_lower`` / ``clv_pred_upper``) from the mixture's
        draws.
    weights : Series
        Weight of each model.
    draw_totals, predictive_totals : ndarray (n_draws,), ndarray (n_futures,)
        Portfolio totals of the mixture's draws (expected) and futures (simulated).
    predictive_draw_totals : ndarray (n_draws,) or None
        Realised portfolio total under each of the mixture's draws: each member's
        :attr:`CLVForecast.predictive_draw_totals` for the draws it gives.
    model_of_draw : ndarray of str (n_draws,)
        The model behind each draw.
    settings : dict
        The members' common settings (horizon, period, discount rate, time unit), the
        interval, the number of draws and customers, and the weights.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        weights: pd.Series,
        draw_totals: np.ndarray,
        predictive_totals: np.ndarray | None,
        model_of_draw: np.ndarray,
        interval: float,
        *,
        predictive_draw_totals: np.ndarray | None = None,
        settings: Mapping[str, Any] | None = None,
        expected_draws: np.ndarray | None = None,
        predictive_draws: np.ndarray | None = None,
    ) -> None:
        # The mixture's own state; CLVForecast's (a scorer and a layout of distinct rows)
        # has no meaning for a mixture, so its constructor is not called.
        self.table = table
        self.weights = weights
        self.draw_totals = draw_totals
        self.predictive_totals = predictive_totals
        if (predictive_draw_totals is None) != (predictive_totals is None):
            raise ValueError(
                "predictive_totals and predictive_draw_totals come together: the futures' "
                "totals and a realised total under every draw of the mixture"
            )
        self.predictive_draw_totals = predictive_draw_totals
        self.model_of_draw = model_of_draw
        self.scorer = None
        self.realised_histogram = None
        self.expected_histogram = None
        self._level = float(interval)
        self._draws = {"expected": expected_draws, "predictive": predictive_draws}
        self.settings = {
            **dict(settings or {}),
            "interval": self._level,
            "n_draws": int(draw_totals.size),
            "n_futures": None if predictive_totals is None else int(predictive_totals.size),
            "n_customers": len(table),
            "n_distinct_customers": len(table),
            "weights": {str(k): float(v) for k, v in weights.items()},
        }

    @property
    def interval(self) -> float:
        return self._level

    @property
    def n_draws(self) -> int:
        return int(self.draw_totals.size)

    @property
    def n_futures(self) -> int:
        """Simulated futures per customer of the mixture (``n_draws`` when it has none)."""
        return self.n_draws if self.predictive_totals is None else int(self.predictive_totals.size)

    @property
    def row_weights(self) -> np.ndarray:
        """Ones: every customer is its own row of the mixture."""
        return np.ones(len(self.table))

    @property
    def row_of_customer(self) -> np.ndarray:
        return np.arange(len(self.table))

    @property
    def n_row_blocks(self) -> int:
        return len(self._blocks())

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}: {v:.2f}" for k, v in self.weights.items())
        return f"<AveragedForecast {len(self.table)} customers, weights {parts}>"

    def _blocks(self) -> list[tuple[int, int]]:
        step = max(1, _BLOCK_VALUES // max(self.n_draws, 1))
        return [(i, min(i + step, len(self.table))) for i in range(0, len(self.table), step)]

    def _values(self, kind: str) -> np.ndarray:
        if kind not in ("expected", "predictive"):
            raise ValueError(f"kind must be 'expected' or 'predictive', got {kind!r}")
        values = self._draws[kind]
        if values is None:
            why = ("the members were not all predictive" if kind == "predictive"
                   and self.predictive_totals is None else "per_customer=False")
            raise ValueError(f"this mixture keeps no per-customer {kind} draws ({why})")
        return values

    def iter_draws(self, kind: str = "expected") -> Iterator[tuple[pd.Index, np.ndarray]]:
        """Per-draw values of the mixture, block by block, as
        :meth:`CLVForecast.iter_draws` gives them."""
        values = self._values(kind)
        for start, stop in self._blocks():
            yield self.table.index[start:stop], values[:, start:stop]

    def iter_row_draws(self) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
        """Per-draw expected CLV of the customers (each its own row), block by block."""
        values = self._values("expected")
        for start, stop in self._blocks():
            yield slice(start, stop), np.ones(stop - start), values[:, start:stop]


def _check_weights(weights: Any, names: list[str]) -> np.ndarray:
    if weights is None:
        return np.full(len(names), 1.0 / len(names))
    series = pd.Series(weights, dtype=float) if not isinstance(weights, pd.Series) else weights
    if isinstance(weights, Mapping) or isinstance(weights, pd.Series):
        unknown = sorted(set(map(str, series.index)) - set(names))
        if unknown:
            raise ValueError(f"weights name unknown models {unknown}")
        series = series.reindex(names).fillna(0.0)
    elif len(series) != len(names):
        raise ValueError(f"weights must have one entry per forecast ({len(names)})")
    w = series.to_numpy(dtype=float)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {w.tolist()}")
    return w / w.sum()


def _mixture_columns(
    forecasts: list[CLVForecast], counts: np.ndarray, kind: str, index: pd.Index
) -> np.ndarray:
    """The mixture's per-customer draws: the first ``counts[k]`` draws of forecast ``k``."""
    out = np.empty((int(counts.sum()), len(index)))
    offset = 0
    for fc, n in zip(forecasts, counts, strict=True):
        if n == 0:
            continue
        for ids, values in fc.iter_draws(kind):
            out[offset : offset + n, index.get_indexer(ids)] = values[:n]
        offset += n
    return out


def average_forecasts(
    forecasts: Mapping[str, CLVForecast],
    weights: Any = None,
    *,
    n_draws: int | None = None,
    interval: float | None = None,
    per_customer: bool = True,
) -> AveragedForecast:
    """Combine forecasts of the same customers by several models into their mixture.

    Parameters
    ----------
    forecasts : mapping of str to CLVForecast
        Forecasts of the same customers with the same settings (horizon, period,
        discount rate), e.g. one per model of :func:`clvmodels.compare`.
    weights : mapping, Series or sequence, optional
        Weight of each forecast (normalised to sum 1; missing names get 0), e.g. from
        :func:`stacking_weights` of :func:`holdout_log_density`, or :func:`loo_weights`.
        Default: equal weights.
    n_draws : int, optional
        Draws of the mixture; by default the fewest draws of any forecast with weight.
        Its simulated futures (predictive) are as many, or the fewest futures of any
        forecast with weight where that is less (``n_futures`` of
        :func:`clvmodels.customer_lifetime_value`), shared out by the same weights.
    interval : float, optional
        Interval level; defaults to the first forecast's.
    per_customer : bool, default True
        Also compute per-customer mixture intervals, and keep the mixture's draws
        (``n_draws * customers`` values in memory per kind) for :meth:`iter_draws`,
        :func:`clvmodels.segment` and :func:`clvmodels.evaluation.forecast_calibration`;
        with False only the point values and the totals. Predictive
        bounds come from each customer's own simulated futures
        (:meth:`CLVForecast.iter_draws`), so identical customers may differ by the
        Monte Carlo error of a quantile.

    Returns
    -------
    AveragedForecast

    Examples
    --------
    >>> from clvmodels import (BetaGeo, GammaGamma, ParetoNBD, customer_lifetime_value,
    ...                        load_cdnow, rfm_summary)
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
    ...                       observation_end="1997-09-30")
    >>> spend = GammaGamma().fit(summary)
    >>> fcs = {name: customer_lifetime_value(m.fit(summary), spend, summary, n_draws=100,
    ...                                      random_state=0)
    ...        for name, m in {"bgnbd": BetaGeo(), "pareto": ParetoNBD()}.items()}
    >>> mix = average_forecasts(fcs, {"bgnbd": 0.5, "pareto": 0.5})
    >>> t = mix.total()
    >>> bool(t["clv_lower"] < t["clv_mean"] < t["clv_upper"])
    True
    """
    if not isinstance(forecasts, Mapping) or not forecasts:
        raise ValueError("forecasts must be a non-empty mapping of name -> CLVForecast")
    names = [str(k) for k in forecasts]
    fcs = list(forecasts.values())
    for name, fc in zip(names, fcs, strict=True):
        if not isinstance(fc, CLVForecast):
            raise TypeError(f"forecasts[{name!r}] is a {type(fc).__name__}, not a CLVForecast")
    index = fcs[0].table.index
    keys = ("horizon", "period", "discount_rate", "time_unit")
    for name, fc in zip(names[1:], fcs[1:], strict=True):
        if len(fc.table) != len(index) or not fc.table.index.isin(index).all():
            raise ValueError(f"forecasts[{name!r}] is not of the same customers")
        differ = [k for k in keys if fc.settings.get(k) != fcs[0].settings.get(k)]
        if differ:
            raise ValueError(f"forecasts[{name!r}] has other settings: {differ}")
    w = _check_weights(weights, names)
    used = w > 0
    limit = min(fc.n_draws for fc, u in zip(fcs, used, strict=True) if u)
    n = limit if n_draws is None else int(n_draws)
    if not 2 <= n <= limit:
        raise ValueError(f"n_draws must be between 2 and {limit}, got {n_draws!r}")
    counts = mixture_allocation(w, n)
    level = fcs[0].interval if interval is None else float(interval)
    low_p, high_p = interval_probabilities(level)
    predictive = all(fc.predictive_totals is not None for fc, u in zip(fcs, used, strict=True) if u)

    tables = [fc.table.reindex(index) for fc in fcs]
    table = pd.DataFrame(index=index)
    for col in ("expected_purchases", "probability_alive", "expected_spend", "clv"):
        if all(col in t.columns for t in tables):
            table[col] = sum(
                wk * t[col].to_numpy(dtype=float) for wk, t in zip(w, tables, strict=True)
            )
    draw_totals = np.concatenate([fc.draw_totals[:c] for fc, c in zip(fcs, counts, strict=True)])
    future_counts = counts
    if predictive:
        n_futures = min(fc.n_futures for fc, u in zip(fcs, used, strict=True) if u)
        future_counts = counts if n_futures >= n else mixture_allocation(w, n_futures)
    pred_totals = (
        np.concatenate(
            [fc.predictive_totals[:c] for fc, c in zip(fcs, future_counts, strict=True) if c]
        )
        if predictive
        else None
    )
    # Each member's realised totals for the draws it gives: its futures carried to its
    # own draws, so the total's predictive interval keeps all n draws of the mixture.
    pred_draw_totals = (
        np.concatenate(
            [fc.predictive_draw_totals[:c] for fc, c in zip(fcs, counts, strict=True) if c]
        )
        if predictive
        else None
    )
    expected = predicted = None
    if per_customer:
        expected = _mixture_columns(fcs, counts, "expected", index)
        table["clv_lower"], table["clv_upper"] = np.quantile(expected, [low_p, high_p], axis=0)
        if predictive:
            predicted = _mixture_columns(fcs, future_counts, "predictive", index)
            table["clv_pred_lower"], table["clv_pred_upper"] = predictive_interval(
                predicted, level
            )
    model_of_draw = np.repeat(np.asarray(names, dtype=object), counts)
    return AveragedForecast(
        table=table,
        weights=pd.Series(w, index=names, name="weight"),
        draw_totals=draw_totals,
        predictive_totals=pred_totals,
        predictive_draw_totals=pred_draw_totals,
        model_of_draw=model_of_draw,
        interval=level,
        settings={k: fcs[0].settings.get(k) for k in keys},
        expected_draws=expected,
        predictive_draws=predicted,
    )
