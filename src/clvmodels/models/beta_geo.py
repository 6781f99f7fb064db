"""BG/NBD: the beta-geometric / negative binomial distribution model.

Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "'Counting Your Customers' the
Easy Way: An Alternative to the Pareto/NBD Model", *Marketing Science* 24(2), 275-284
(FHL 2005 below). While alive, a customer buys at a Poisson rate ``lambda ~
Gamma(r, alpha)``; after each purchase the customer drops out with probability ``p ~
Beta(a, b)``.

The pure functions below take broadcastable NumPy arrays and work in log space;
:class:`BetaGeo` is a thin maximum-likelihood shell around them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import betainc, betaln, gammaln

from clvmodels.data import column_arrays, compress, validate_summary
from clvmodels.errors import DataValidationError
from clvmodels.models._beta_geo_family import (
    BetaGeoFamilyFit,
    frequency_groups,
    xbg_expected_purchases,
    xbg_log_likelihood,
    xbg_neg_loglik_grad,
    xbg_probability_alive,
)
from clvmodels.models._beta_geo_family import purchases_while_alive as _purchases_while_alive
from clvmodels.models._hypergeometric import purchases_while_alive_sums
from clvmodels.models._shared import alive_probabilities
from clvmodels.models._shared import check_horizon as _check_horizon
from clvmodels.models._shared import n_draws as _n_draws
from clvmodels.models._shared import shaped as _shaped
from clvmodels.models.base import SimulatedPurchases
from clvmodels.models.covariates import CovariateEffects
from clvmodels.models.mle import PurchaseDropoutModel
from clvmodels.models.ops import NUMPY

__all__ = [
    "BetaGeo",
    "BetaGeoPredictions",
    "bgnbd_expected_purchases",
    "bgnbd_expected_purchases_new_customer",
    "bgnbd_log_likelihood",
    "bgnbd_neg_loglik_grad",
    "bgnbd_probability_alive",
    "bgnbd_probability_of_purchases",
    "frequency_groups",
]

_SUMMARY_COLUMNS = ("frequency", "recency", "T")


# --------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------
def bgnbd_log_likelihood(r, alpha, a, b, frequency, recency, T, ops=NUMPY):
    """Per-customer BG/NBD log-likelihood, FHL 2005 eq. (6), in log space.

    ``L = A1 * A2 * (A3 + [x > 0] A4)`` with
    ``A1 = Gamma(r+x) alpha^r / Gamma(r)``, ``A2 = B(a, b+x) / B(a, b)``,
    ``A3 = (alpha+T)^-(r+x)`` and ``A4 = a / (b+x-1) (alpha+t_x)^-(r+x)``;
    ``log(A3 + A4) = log A3 + softplus(log(A4 / A3))``, so no large exponent is taken.

    Parameters
    ----------
    r, alpha, a, b : float or array
        Model parameters, broadcastable against the customer arrays.
    frequency, recency, T : array
        Repeat purchases ``x``, time of last purchase ``t_x`` and age ``T``.
    ops : namespace, default NUMPY
        Array namespace (:mod:`clvmodels.models.ops`): NumPy values, forward-mode
        derivatives, or a PyTensor graph.

    Returns
    -------
    numpy.ndarray
        log L for each customer; finite for any valid input.

    Examples
    --------
    >>> round(float(bgnbd_log_likelihood(0.2426, 4.4136, 0.7929, 2.4259, 2, 30.43, 38.86)), 4)
    -9.4597
    """
    return xbg_log_likelihood(r, alpha, a, b, frequency, recency, T, ops=ops)


def bgnbd_neg_loglik_grad(
    log_params: np.ndarray,
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    weights: np.ndarray,
    groups: tuple[np.ndarray, ...] | None = None,
) -> tuple[float, np.ndarray]:
    """Weighted negative log-likelihood and its analytic gradient in log-parameters.

    ``log(A3 + A4) = log A3 + log(1 + exp(rho))`` with ``rho`` the log dropout odds;
    ``w4 = expit(rho)`` is the share of ``A4``, so no exponent of a large number is
    ever taken, and every partial derivative is a mix of closed-form digamma and log
    terms. ``groups`` is :func:`frequency_groups` of the data, computed once per fit.
    """
    return xbg_neg_loglik_grad(log_params, frequency, recency, T, weights, groups)


def bgnbd_probability_alive(r, alpha, a, b, frequency, recency, T):
    """P(alive | x, t_x, T), FHL 2005 eq. (10 denominator); 1 for x == 0.

    Computed as a logistic function of the log dropout odds, so it never overflows.
    """
    return xbg_probability_alive(r, alpha, a, b, frequency, recency, T)


def bgnbd_expected_purchases(t, r, alpha, a, b, frequency, recency, T):
    """E[Y(t) | x, t_x, T]: expected purchases in the next ``t`` periods, FHL 2005 eq. (10).

    Examples
    --------
    >>> round(float(bgnbd_expected_purchases(39, 0.2426, 4.4136, 0.7929, 2.4259,
    ...                                       2, 30.43, 38.86)), 3)
    1.226
    """
    return xbg_expected_purchases(t, r, alpha, a, b, frequency, recency, T)


def bgnbd_expected_purchases_new_customer(t, r, alpha, a, b):
    """E[X(t)] for a customer just acquired, FHL 2005 eq. (9).

    Examples
    --------
    >>> round(float(bgnbd_expected_purchases_new_customer(78, 0.2426, 4.4136, 0.7929,
    ...                                                    2.4259)), 3)
    1.858
    """
    return _purchases_while_alive(t, r, alpha, a, b)


def bgnbd_probability_of_purchases(n, t, r, alpha, a, b):
    """P(X(t) = n) for a new customer, FHL 2005 eq. (8).

    The finite sum of negative binomial probabilities in eq. (8) is the
    negative binomial survival function, written as a regularised incomplete beta
    function: ``1 - sum_{j<n} NB(j) = I_{t/(alpha+t)}(n, r)``.

    Examples
    --------
    >>> round(float(bgnbd_probability_of_purchases(0, 39, 0.243, 4.414, 0.793, 2.426)), 7)
    0.5737864
    """
    n = np.asarray(n, dtype=float)
    t = np.asarray(t, dtype=float)
    log_p = np.log(alpha) - np.log(alpha + t)
    log_q = np.log(t) - np.log(alpha + t)
    log_nb = gammaln(r + n) - gammaln(r) - gammaln(n + 1) + r * log_p + n * log_q
    first = np.exp(betaln(a, b + n) - betaln(a, b) + log_nb)
    positive = n > 0
    n_safe = np.where(positive, n, 1.0)
    second = np.exp(betaln(a + 1, b + n_safe - 1) - betaln(a, b)) * betainc(
        n_safe, r, t / (alpha + t)
    )
    return first + np.where(positive, second, 0.0)


# --------------------------------------------------------------------------------------
# Shared prediction methods (BetaGeo and HierarchicalBetaGeo)
# --------------------------------------------------------------------------------------
def _summary_arrays(data: pd.DataFrame) -> dict[str, np.ndarray]:
    return column_arrays(data, _SUMMARY_COLUMNS)


# Terms of the shared series before an entry falls back to scipy's per-horizon form;
# ~250 reach 1e-17 at z = 0.85 (horizon 5.7 times alpha + T).
_SERIES_TERMS = 2_000


class BetaGeoPredictions:
    """BG/NBD predictions on top of ``self._params_for(data, draws)``.

    Any model whose parameters are ``r, alpha, a, b`` (maximum likelihood or
    Bayesian, pooled or grouped) gets the public prediction methods of the
    transaction-model contract (:mod:`clvmodels.models.base`) from here.
    """

    @property
    def alive_future_columns(self) -> tuple[str, ...] | None:
        """Given alive, a BG/NBD customer's future depends on (x, T) alone (FHL 2005 eq.
        10), and on its covariates."""
        return ("frequency", "T", *getattr(self, "covariate_columns", ()))

    @property
    def data_columns(self) -> tuple[str, ...]:
        return (*_SUMMARY_COLUMNS, *getattr(self, "covariate_columns", ()))

    def expected_purchases(
        self, t: Any, data: pd.DataFrame, *, draws: pd.DataFrame | None = None
    ) -> pd.Series | np.ndarray:
        """Expected number of purchases in the next ``t`` time units, per customer.

        Parameters
        ----------
        t : float or array
            Forecast horizon in the summary's ``time_unit`` (weeks by default): one
            value, or one per row of ``data``.
        data : DataFrame
            Summary frame with ``frequency``, ``recency`` and ``T``.
        draws : DataFrame, optional
            Parameter draws from ``param_draws``: the result is then an array
            ``(n_draws, n_rows)``, one row per draw.

        Examples
        --------
        >>> from clvmodels import BetaGeo, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
        ...                       observation_end="1997-09-30")
        >>> model = BetaGeo().fit(summary)
        >>> round(float(model.expected_purchases(t=39, data=summary).loc[1]), 3)
        1.226
        >>> model.expected_purchases(t=39, data=summary, draws=model.param_draws(5)).shape
        (5, 2357)
        """
        t_arr = _check_horizon(t)
        data = validate_summary(data, context="expected_purchases")
        if draws is not None:
            params = self._params_for(data, draws)
            return np.asarray(self._expected_purchases_given(t_arr, params, data))
        values = self._on_distinct_rows(
            data, lambda params, rows: self._expected_purchases_given(t_arr, params, rows),
            per_row=t_arr.ndim > 0,
        )
        return pd.Series(values, index=data.index, name="expected_purchases")

    def probability_alive(
        self, data: pd.DataFrame, *, draws: pd.DataFrame | None = None
    ) -> pd.Series | np.ndarray:
        """Probability that each customer is still active at the end of observation.

        With ``draws`` (from ``param_draws``) an array ``(n_draws, n_rows)``.

        Examples
        --------
        >>> from clvmodels import BetaGeo, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
        ...                       observation_end="1997-09-30")
        >>> bool(BetaGeo().fit(summary).probability_alive(data=summary).between(0, 1).all())
        True
        """
        data = validate_summary(data, context="probability_alive")
        if draws is not None:
            return np.asarray(self._probability_alive_given(self._params_for(data, draws), data))
        values = self._on_distinct_rows(data, self._probability_alive_given)
        return pd.Series(values, index=data.index, name="probability_alive")

    def expected_purchases_while_alive(
        self,
        t: Any,
        weights: Any,
        data: pd.DataFrame,
        *,
        draws: pd.DataFrame | None = None,
    ) -> np.ndarray:
        """Weighted sums over horizons of the expected purchases of customers known to
        be alive: ``sum_j weights[q, j] E[Y(t_j) | alive, x, T]``.

        The optional speed-up that goes with ``alive_future_columns``: no P(alive) is
        computed, and for the beta-geometric family the series of all horizons share
        their coefficients, so that the CLV's discounted purchases over its period ends
        cost about what one horizon costs
        (:func:`clvmodels.models._hypergeometric.purchases_while_alive_sums`; entries
        where that series is not to be trusted take the per-horizon form).

        Parameters
        ----------
        t : array
            Horizons (non-negative) in the summary's ``time_unit``, 1-d.
        weights : array
            ``(n_sums, len(t))``: each row one weighted sum.
        data : DataFrame
            Summary frame (``frequency``, ``T``; ``recency`` does not enter).
        draws : DataFrame, optional
            Parameter draws from ``param_draws``.

        Returns
        -------
        ndarray
            ``(n_sums, n_rows)``, or ``(n_sums, n_draws, n_rows)`` with ``draws``.

        Examples
        --------
        >>> import numpy as np
        >>> from clvmodels import BetaGeo, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
        ...                       observation_end="1997-09-30")
        >>> model = BetaGeo().fit(summary)
        >>> sums = model.expected_purchases_while_alive([13.0, 39.0], np.eye(2), summary)
        >>> given_alive = model.expected_purchases(t=39, data=summary) / model.probability_alive(
        ...     data=summary)
        >>> bool(np.allclose(sums[1], given_alive, rtol=1e-9))
        True
        """
        if self.alive_future_columns is None:
            raise ValueError(
                f"{self!r}: given alive, its future depends on more than frequency and T, "
                "so expected_purchases_while_alive is not offered"
            )
        times = np.asarray(t, dtype=float)
        weights = np.asarray(weights, dtype=float)
        if times.ndim != 1 or not np.all(np.isfinite(times)) or np.any(times < 0):
            raise ValueError(f"t must be a 1-d array of finite, non-negative horizons, got {t!r}")
        if weights.ndim != 2 or weights.shape[1] != times.size:
            raise ValueError(
                f"weights must have shape (n_sums, {times.size}) (one column per horizon), "
                f"got {weights.shape}"
            )
        data = validate_summary(data, context="expected_purchases_while_alive")
        params = self._params_for(data, draws)
        x = data["frequency"].to_numpy(dtype=float)
        T = data["T"].to_numpy(dtype=float)
        return self._purchases_while_alive_sums(times, weights, params, x, T)

    def _purchases_while_alive_sums(
        self,
        t: np.ndarray,
        weights: np.ndarray,
        params: Mapping[str, np.ndarray],
        x: np.ndarray,
        T: np.ndarray,
    ) -> np.ndarray:
        """:meth:`expected_purchases_while_alive` on checked arrays: the shared series
        (FHL 2005 eq. 10 with ``p ~ Beta(a, b + shift)``), per-horizon scipy where it
        is not to be trusted."""
        shape = np.broadcast_shapes(*(np.shape(params[k]) for k in ("r", "alpha", "a", "b")),
                                    x.shape)

        def flat(value: Any) -> np.ndarray:
            return np.ascontiguousarray(np.broadcast_to(np.asarray(value, float), shape)).ravel()

        shape_rate = flat(params["r"] + x)
        rate = flat(params["alpha"] + T)
        a = flat(params["a"])
        b_alive = flat(params["b"] + np.asarray(self._dropout_b_shift(x), dtype=float))
        sums, untrusted = purchases_while_alive_sums(
            t, np.ascontiguousarray(weights), shape_rate, rate, a, b_alive, _SERIES_TERMS
        )
        if untrusted.any():
            per_time = np.stack([
                _purchases_while_alive(
                    ti, shape_rate[untrusted], rate[untrusted], a[untrusted], b_alive[untrusted]
                )
                for ti in t
            ])
            sums[:, untrusted] = weights @ per_time
        return sums.reshape((weights.shape[0], *shape))

    def expected_purchases_new_customer(
        self, t: Any, data: pd.DataFrame | None = None, *, draws: pd.DataFrame | None = None
    ) -> Any:
        """Expected purchases of a newly acquired customer within ``t`` time units.

        Without ``data`` for the population (a float, or an array shaped like ``t``);
        with ``data``, for a new customer of each row's group (a Series, ``t`` a scalar
        or one value per row). ``draws`` adds a leading axis of draws.

        Examples
        --------
        >>> from clvmodels import BetaGeo, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
        ...                       observation_end="1997-09-30")
        >>> round(float(BetaGeo().fit(summary).expected_purchases_new_customer(t=78)), 3)
        1.858
        """
        t_arr = _check_horizon(t)
        params, index = self._new_customer_params(data, draws, t_arr)
        values = self._expected_purchases_new_customer_given(t_arr, params)
        return _shaped(values, index, draws, "expected_purchases_new_customer")

    def probability_of_purchases(
        self,
        n: Any,
        t: Any,
        data: pd.DataFrame | None = None,
        *,
        draws: pd.DataFrame | None = None,
    ) -> Any:
        """P(X(t) = n): probability that a new customer makes ``n`` purchases by ``t``.

        Without ``data`` for the population (``n`` and ``t`` broadcast); with ``data``
        for a new customer of each row's group (``n`` and ``t`` scalars or one value per
        row), a Series. ``draws`` adds a leading axis of draws.

        Examples
        --------
        >>> from clvmodels import BetaGeo, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
        ...                       observation_end="1997-09-30")
        >>> round(float(BetaGeo().fit(summary).probability_of_purchases(n=0, t=39)), 4)
        0.5743
        """
        n_arr = np.asarray(n)
        if np.any(n_arr < 0) or np.any(np.asarray(n_arr, float) % 1 != 0):
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        t_arr = _check_horizon(t)
        params, index = self._new_customer_params(data, draws, t_arr)
        values = self._probability_of_purchases_given(n_arr, t_arr, params)
        return _shaped(values, index, draws, "probability_of_purchases")

    def simulate_purchases(
        self,
        t: float,
        data: pd.DataFrame,
        *,
        draws: pd.DataFrame | None,
        random_state: Any = None,
        probability_alive: np.ndarray | None = None,
    ) -> SimulatedPurchases:
        """One simulated future per parameter draw and customer over the next ``t``.

        Given its history ``(x, t_x, T)`` a customer is alive with probability
        ``P(alive)``; if alive, its purchase rate and dropout probability have the
        posteriors ``lambda ~ Gamma(r + x, rate alpha + T)`` and ``p ~ Beta(a, b + x)``.
        It then buys at Poisson times and drops out after each purchase with
        probability ``p``: ``K = min(N, D)`` purchases, ``N ~ Poisson(lambda t)``,
        ``D ~ Geometric(p)``. ``K > 0`` exactly when the customer is alive and ``N > 0``,
        whose probability ``P(alive) (1 - (1 + t / (alpha + T))^-(r + x))`` is closed;
        a compiled loop visits only the pairs that may buy (thinning) and draws for
        those that do ``N`` (negative binomial given ``N > 0``, ``lambda`` integrated
        out) and ``D`` (beta-geometric, ``p`` integrated out). The time of the ``K``-th
        of ``N`` uniform arrivals is ``t Beta(K, N - K + 1)`` and the first ``K - 1``
        are uniform below it, so the cost follows the number of purchases, not of
        arrivals or of pairs that buy nothing.

        Parameters
        ----------
        t : float
            Horizon in the model's time unit.
        data : DataFrame
            Summary rows.
        draws : DataFrame or None
            From ``param_draws``; None simulates one future at the point estimate.
        random_state : int or numpy Generator, optional
        probability_alive : array (n_draws, n_rows), optional
            This model's ``probability_alive(data, draws=draws)`` where the caller has
            it already (CLV does); computed here otherwise.

        Examples
        --------
        >>> from clvmodels import BetaGeo, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
        ...                       observation_end="1997-09-30")
        >>> model = BetaGeo().fit(summary)
        >>> sims = model.simulate_purchases(39, summary, draws=model.param_draws(200,
        ...                                 random_state=1), random_state=2)
        >>> sims.shape
        (200, 2357)
        """
        horizon = float(_check_horizon(t))
        data = validate_summary(data, context="simulate_purchases")
        rng = np.random.default_rng(random_state)
        params = self._params_for(data, draws)
        arrays = _summary_arrays(data)
        x, T = arrays["frequency"], arrays["T"]
        n_draws = 1 if draws is None else _n_draws(draws)
        shape = (n_draws, len(data))
        p_alive = alive_probabilities(
            probability_alive, shape, lambda: self._probability_alive_given(params, data)
        )

        from clvmodels.models._simulation import beta_geo_purchases, compact, read_only

        # Compiled: only the pairs that can buy are visited (see beta_geo_purchases).
        owner, times = beta_geo_purchases(
            read_only(np.broadcast_to(np.asarray(p_alive, dtype=float), shape)),
            compact(params["r"], shape), read_only(x),
            compact(params["alpha"], shape), read_only(T),
            compact(params["a"], shape), compact(params["b"], shape),
            read_only(self._dropout_b_shift(x)),
            horizon, rng,
        )
        return SimulatedPurchases(owner=owner, time=times, shape=shape)

    def _new_customer_params(
        self, data: pd.DataFrame | None, draws: pd.DataFrame | None, t: np.ndarray
    ) -> tuple[dict[str, np.ndarray], pd.Index | None]:
        """Parameters of a new customer: the population's, or each row's group's."""
        if data is None:
            if draws is None:
                return self._population_params(), None
            params = self._population_draws(draws)
            # (n_draws, 1...) against t's shape
            return {k: v.reshape(v.shape[:1] + (1,) * t.ndim) for k, v in params.items()}, None
        frame = _new_customer_frame(
            data, getattr(self, "group_col", None), getattr(self, "covariate_columns", ())
        )
        return self._params_for(frame, draws), frame.index

    def _population_draws(self, draws: pd.DataFrame) -> dict[str, np.ndarray]:
        """Per-draw parameters of a new customer of no known group (and covariates at 0
        or their reference level)."""
        population = draws.attrs.get("population")
        source = draws if population is None else population
        return {k: source[k].to_numpy(dtype=float) for k in type(self).param_names}

    # Large frames repeat the same (frequency, recency, T) many times over: with shared
    # parameters, predict each distinct row once.
    _DISTINCT_ROWS_FROM = 20_000

    def _on_distinct_rows(
        self,
        data: pd.DataFrame,
        func: Callable[[dict[str, np.ndarray], pd.DataFrame], Any],
        per_row: bool = False,
    ) -> np.ndarray:
        covariates = tuple(getattr(self, "covariate_columns", ()))
        if covariates and getattr(self, "group_col", None) is None:
            # each row's parameters follow from its covariates: predict each distinct
            # (history, covariates) row once
            if len(data) >= self._DISTINCT_ROWS_FROM and not per_row:
                rows, _, inverse = compress(data, columns=(*_SUMMARY_COLUMNS, *covariates))
                rows.attrs = dict(data.attrs)
                return np.asarray(func(self._params_for(rows), rows))[inverse]
            return np.asarray(func(self._params_for(data), data))
        params = self._params_for(data)
        shared = all(np.ndim(v) == 0 for v in params.values())
        if len(data) >= self._DISTINCT_ROWS_FROM and shared and not per_row:
            rows, _, inverse = compress(data, columns=_SUMMARY_COLUMNS)
            return np.asarray(func(params, rows))[inverse]
        return np.asarray(func(params, data))

    # Array-level hooks: CLV and scoring evaluate these under many parameter draws at
    # once (params from ``self._params_for(data, draws)``), on validated frames.
    @staticmethod
    def _expected_purchases_given(
        t: Any, params: Mapping[str, np.ndarray], data: pd.DataFrame
    ) -> np.ndarray:
        return bgnbd_expected_purchases(t, **params, **_bg_args(_summary_arrays(data)))

    @staticmethod
    def _probability_alive_given(
        params: Mapping[str, np.ndarray], data: pd.DataFrame
    ) -> np.ndarray:
        return bgnbd_probability_alive(**params, **_bg_args(_summary_arrays(data)))

    @staticmethod
    def _expected_purchases_new_customer_given(
        t: np.ndarray, params: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        return bgnbd_expected_purchases_new_customer(t, **params)

    @staticmethod
    def _probability_of_purchases_given(
        n: np.ndarray, t: np.ndarray, params: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        return bgnbd_probability_of_purchases(n, t, **params)

    @staticmethod
    def _dropout_b_shift(frequency: np.ndarray) -> np.ndarray:
        """What a customer's history adds to ``b`` in the Beta posterior of its dropout
        probability ``p`` once it is known to be alive: ``p ~ Beta(a, b + shift)``, the
        repeat purchases it survived."""
        return np.asarray(frequency, dtype=float)

    def _population_params(self) -> dict[str, np.ndarray]:
        """Parameters that describe a new customer; grouped models override this."""
        return self._params_for(None)


def _new_customer_frame(
    data: pd.DataFrame, group_col: str | None, covariates: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Rows without history (frequency = recency = T = 0) that keep each row's group
    and covariates."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    frame = pd.DataFrame(
        {"frequency": 0.0, "recency": 0.0, "T": 0.0}, index=data.index
    )
    if group_col is not None:
        if group_col not in data.columns:
            raise DataValidationError(
                f"the model has group-level parameters, but the data has no '{group_col}' column"
            )
        frame[group_col] = data[group_col].to_numpy()
    for column in covariates:
        if column not in data.columns:
            raise DataValidationError(
                f"covariate column '{column}' is missing: the model's predictions depend on "
                f"its covariate columns {list(covariates)}"
            )
        frame[column] = data[column].array
    frame.attrs = dict(data.attrs)
    return frame


def _bg_args(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"frequency": arrays["frequency"], "recency": arrays["recency"], "T": arrays["T"]}


# --------------------------------------------------------------------------------------
# Maximum-likelihood model
# --------------------------------------------------------------------------------------
class BetaGeo(BetaGeoPredictions, BetaGeoFamilyFit, PurchaseDropoutModel):
    """BG/NBD transaction model fitted by maximum likelihood.

    Parameters
    ----------
    penalizer : float, default 0
        Optional ridge penalty (per customer) on the log-parameters around their
        natural centre. Not needed on well-behaved data; a small value (1e-3)
        regularises data that cannot identify every parameter.
    purchase_covariates : list of str, optional
        Summary columns that scale each customer's purchase rate:
        ``alpha_i = alpha exp(-gamma_p' z_i)``, so ``E[lambda_i] = r / alpha_i`` grows
        by ``exp(gamma_p' z_i)`` (CLVTools' sign; :mod:`clvmodels.models.covariates`).
    dropout_covariates : list of str, optional
        Columns that scale the dropout distribution: ``a_i = a exp(gamma_d' z_i)``,
        ``b_i = b exp(gamma_d' z_i)`` (CLVTools), which keeps the mean dropout
        probability ``a / (a + b)`` and changes how concentrated it is.
    constrain : list of str or dict, optional
        Columns whose purchase and dropout coefficients are one shared coefficient
        (CLVTools ``names.cov.constr``).
    covariate_penalty : float or dict, default 0
        L2 penalty per customer on the coefficients (CLVTools ``reg.lambdas``), one
        number or ``{"purchase": ..., "dropout": ...}``.

    Attributes
    ----------
    params_ : Series
        Estimates of ``r, alpha, a, b`` (then the coefficients, e.g.
        ``purchase:channel[web]``, with covariates).
    covariate_design_ : CovariateDesign or None
        The fitted covariates: categorical levels and their reference, coefficients.
    log_likelihood_, aic_, bic_ : float
        Fit statistics on the customers the model was fitted on.
    covariance_log_ : DataFrame
        Asymptotic covariance of the log-parameters (inverse observed information).
    time_unit_ : str or None
        The time unit recorded on the summary frame (e.g. ``"W"``).

    Examples
    --------
    >>> from clvmodels import BetaGeo, load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
    ...                       observation_end="1997-09-30")
    >>> model = BetaGeo().fit(summary)
    >>> model.params_.round(4).to_dict()
    {'r': 0.2426, 'alpha': 4.4136, 'a': 0.7929, 'b': 2.4259}
    >>> round(model.log_likelihood_, 2)
    -9582.43

    With a covariate: customers who bought more than one CD in their first order
    (a column derived from the CDNOW log) buy more often afterwards:

    >>> tx = load_cdnow()
    >>> first = tx.sort_values("date").groupby("customer_id")["quantity"].first()
    >>> summary["multi_cd"] = (first.reindex(summary.index) > 1).astype(float)
    >>> model = BetaGeo(purchase_covariates=["multi_cd"]).fit(summary)
    >>> list(model.params_.index)
    ['r', 'alpha', 'a', 'b', 'purchase:multi_cd']
    >>> bool(model.summary().loc["purchase:multi_cd", "lower 95%"] > 0)
    True
    """

    param_names = ("r", "alpha", "a", "b")
    #: alpha_i = alpha exp(-gamma_p' z), a_i = a exp(gamma_d' z), b_i = b exp(gamma_d' z)
    #: (Fader & Hardie 2007 note 019; CLVTools ``bgnbd_staticcov``).
    covariate_effects: ClassVar[CovariateEffects] = {
        "purchase": (("alpha", -1.0),),
        "dropout": (("a", 1.0), ("b", 1.0)),
    }


    @staticmethod
    def log_likelihood(params, data, ops):
        """FHL 2005 eq. (6): :func:`bgnbd_log_likelihood`."""
        return bgnbd_log_likelihood(**params, **data, ops=ops)

    @classmethod
    def from_lifetimes(cls, fitter: Any) -> BetaGeo:
        """Build a fitted :class:`BetaGeo` from a fitted ``lifetimes.BetaGeoFitter``.

        Parameters, log-likelihood and (where lifetimes kept its Hessian) the
        covariance carry over, so ``param_draws`` and CLV intervals work at once.
        lifetimes records no time unit: set ``model.time_unit_`` if CLV needs it.

        Examples
        --------
        >>> from lifetimes import BetaGeoFitter  # doctest: +SKIP
        >>> model = BetaGeo.from_lifetimes(BetaGeoFitter().fit(f, r, T))  # doctest: +SKIP
        """
        params = getattr(fitter, "params_", None)
        if params is None:
            raise ValueError("the lifetimes fitter is not fitted: call its fit() first")
        params = {k: float(params[k]) for k in cls.param_names}
        cov_log = None
        hessian = getattr(fitter, "_hessian_", None)
        fitted_data = getattr(fitter, "data", None)
        n_obs = 0
        if fitted_data is not None and "weights" in fitted_data:
            n_obs = round(float(fitted_data["weights"].sum()))
        if hessian is not None and n_obs > 0:
            # lifetimes minimises the mean negative log-likelihood over log-parameters
            cov_log = np.linalg.inv(np.asarray(hessian, dtype=float)) / n_obs
        nll = getattr(fitter, "_negative_log_likelihood_", None)
        log_lik = -float(nll) * n_obs if nll is not None and n_obs else float("nan")
        model = cls(penalizer=float(getattr(fitter, "penalizer_coef", 0.0)))
        model._set_fitted(params, covariance_log=cov_log, log_likelihood=log_lik, n_obs=n_obs)
        return model
