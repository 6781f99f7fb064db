"""Gamma-Gamma model of spend per transaction.

Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "RFM and CLV: Using Iso-Value
Curves for Customer Base Analysis", *Journal of Marketing Research* 42(4), 415-430,
with the formulation of Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary
Value". Each transaction value is ``Gamma(p, nu)``; across customers
``nu ~ Gamma(q, gamma)``. The observed mean ``m_x`` of ``x`` transactions is then
``Gamma(p x, nu x)``, and integrating ``nu`` out gives the likelihood below.

The model assumes spend is independent of purchase frequency; :class:`GammaGamma`
warns when the data say otherwise.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import digamma, gammaln

from clvmodels.data import validate_summary
from clvmodels.errors import DataValidationError, ModelFileError
from clvmodels.models._jit import njit_on_first_call
from clvmodels.models.base import SimulatedPurchases
from clvmodels.models.covariates import CovariateEffects
from clvmodels.models.mle import MaximumLikelihoodModel
from clvmodels.models.ops import NUMPY

__all__ = [
    "GammaGamma",
    "GammaGammaPredictions",
    "gamma_gamma_expected_spend",
    "gamma_gamma_log_likelihood",
    "gamma_gamma_neg_loglik_grad",
    "gamma_gamma_row_log_likelihood_grad",
    "spend_statistics",
]

_SPEND_COLUMNS = ("frequency", "monetary_value")

# |Pearson correlation| between frequency and mean spend above which we warn.
CORRELATION_WARNING = 0.3


def gamma_gamma_log_likelihood(p, q, gamma, frequency, monetary_value, ops=NUMPY):
    """Log density of a customer's mean spend ``m_x`` over ``x`` transactions.

    ``f(m_x) = Gamma(px+q) / (Gamma(px) Gamma(q)) * gamma^q * m_x^(px-1) * x^(px)
    / (gamma + m_x x)^(px+q)`` (Fader & Hardie 2013, eq. 4). Only defined for
    ``x > 0``. ``ops`` is the array namespace (:mod:`clvmodels.models.ops`).

    Examples
    --------
    >>> round(float(gamma_gamma_log_likelihood(6.25, 3.74, 15.44, 2, 25.0)), 4)
    -3.6344
    """
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    px = p * x
    return (
        ops.gammaln(px + q)
        - ops.gammaln(px)
        - ops.gammaln(q)
        + q * ops.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * ops.log(gamma + m * x)
    )


def spend_statistics(
    frequency: np.ndarray, monetary_value: np.ndarray, weights: np.ndarray
) -> dict[str, Any]:
    """Parameter-free pieces of the Gamma-Gamma likelihood, computed once per fit.

    The gamma-function terms depend on the frequency alone (few distinct values) and
    the ``log m`` and ``log x`` terms enter only through weighted sums.
    """
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    values, inverse = np.unique(x, return_inverse=True)
    return {
        "x": x,
        "mx": m * x,
        "w": weights,
        "wx": weights * x,
        "n": float(weights.sum()),
        "x_values": values,
        "x_weights": np.bincount(inverse, weights=weights, minlength=len(values)),
        "sum_wx_log_m": float(np.dot(weights * x, np.log(m))),
        "sum_w_log_m": float(np.dot(weights, np.log(m))),
        "sum_wx_log_x": float(np.dot(weights * x, np.log(x))),
    }


def gamma_gamma_neg_loglik_grad(
    log_params: np.ndarray,
    frequency: np.ndarray,
    monetary_value: np.ndarray,
    weights: np.ndarray,
    stats: dict[str, Any] | None = None,
) -> tuple[float, np.ndarray]:
    """Weighted negative log-likelihood and its gradient in log-parameters.

    ``stats`` is :func:`spend_statistics` of the data, computed once per fit.
    """
    p, q, gamma = np.exp(log_params)
    st = spend_statistics(frequency, monetary_value, weights) if stats is None else stats
    n, xv, xw = st["n"], st["x_values"], st["x_weights"]
    pxv = p * xv
    log_g_mx = np.log(gamma + st["mx"])
    inv_g_mx = 1.0 / (gamma + st["mx"])
    psi_pxq = digamma(pxv + q)
    value = (
        float(np.dot(xw, gammaln(pxv + q) - gammaln(pxv)))
        - n * gammaln(q)
        + n * q * np.log(gamma)
        + p * st["sum_wx_log_m"]
        - st["sum_w_log_m"]
        + p * st["sum_wx_log_x"]
        - p * float(np.dot(st["wx"], log_g_mx))
        - q * float(np.dot(st["w"], log_g_mx))
    )
    d_p = (
        float(np.dot(xw * xv, psi_pxq - digamma(pxv)))
        + st["sum_wx_log_m"]
        + st["sum_wx_log_x"]
        - float(np.dot(st["wx"], log_g_mx))
    )
    d_q = float(np.dot(xw, psi_pxq)) - n * digamma(q) + n * np.log(gamma) - float(
        np.dot(st["w"], log_g_mx)
    )
    d_gamma = n * q / gamma - p * float(np.dot(st["wx"], inv_g_mx)) - q * float(
        np.dot(st["w"], inv_g_mx)
    )
    return -value, -np.array([p * d_p, q * d_q, gamma * d_gamma])


def gamma_gamma_row_log_likelihood_grad(p, q, gamma, frequency, monetary_value, cache=None):
    """Per-customer log-likelihood of :func:`gamma_gamma_log_likelihood` and its
    derivatives in ``log p``, ``log q`` and ``log gamma``, for a ``gamma`` that may differ
    per customer (covariates); ``p`` and ``q`` are shared, so their digamma terms are
    taken once per distinct frequency (``cache``: ``np.unique`` of the frequencies with
    its inverse).

    ``d/d log gamma = q - (p x + q) gamma / (gamma + m x)``; ``d/d log p = p x (psi(px+q)
    - psi(px) + log m + log x - log(gamma + m x))``; ``d/d log q = q (psi(px+q) - psi(q)
    + log gamma - log(gamma + m x))``.
    """
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    values, inverse = np.unique(x, return_inverse=True) if cache is None else cache
    pxv = p * values
    log_ratio = (gammaln(pxv + q) - gammaln(pxv))[inverse]
    psi_pxq = digamma(pxv + q)[inverse]
    psi_px = digamma(pxv)[inverse]
    px = p * x
    mx = m * x
    log_g_mx = np.log(gamma + mx)
    log_gamma = np.log(gamma)
    log_m, log_x = np.log(m), np.log(x)
    value = (
        log_ratio - gammaln(q) + q * log_gamma + (px - 1.0) * log_m + px * log_x
        - (px + q) * log_g_mx
    )
    derivatives = {
        "p": px * (psi_pxq - psi_px + log_m + log_x - log_g_mx),
        "q": q * (psi_pxq - digamma(q) + log_gamma - log_g_mx),
        "gamma": q - (px + q) * gamma / (gamma + mx),
    }
    return value, derivatives


def gamma_gamma_expected_spend(p, q, gamma, frequency, monetary_value):
    """E[M | p, q, gamma, m_x, x], the customer's expected spend per transaction.

    ``p (gamma + x m_x) / (p x + q - 1)``: a weighted mean of the population mean
    ``p gamma / (q - 1)`` and the customer's observed mean. For ``x = 0`` it is the
    population mean. Needs ``q > 1`` (a finite population mean).

    A repeat buyer whose mean spend is not positive (refunds netted against
    purchases) has no spend history the model can use: like a customer without
    repeat purchases, it gets the population mean.

    Examples
    --------
    >>> round(float(gamma_gamma_expected_spend(6.25, 3.74, 15.44, 0, 0.0)), 2)
    35.22
    >>> round(float(gamma_gamma_expected_spend(6.25, 3.74, 15.44, 3, -2.0)), 2)
    35.22
    """
    x, m = usable_spend_history(frequency, monetary_value)
    per_draw = [np.asarray(v, dtype=float) for v in (p, q, gamma)]
    if x.ndim == 1 and all(v.ndim == 2 and v.shape == (per_draw[0].shape[0], 1)
                           for v in per_draw):
        # Parameter draws against customers, the case of every forecast: one compiled
        # pass over the (n_draws, n_rows) values, the same operations in the same order.
        p, q, gamma = (np.ascontiguousarray(v[:, 0]) for v in per_draw)
        return _expected_spend_per_draw(gamma, (q - 1) / p, x, x * m)
    # Written as (gamma + x m) / (x + (q - 1) / p): three passes over the values
    # instead of six.
    return (gamma + x * m) / (x + (q - 1) / p)


@njit_on_first_call(error_model="numpy")
def _expected_spend_per_draw(gamma, shrink, x, total):  # pragma: no cover
    """``(gamma[d] + total[i]) / (x[i] + shrink[d])`` as ``(n_draws, n_rows)``."""
    out = np.empty((gamma.size, x.size))
    for d in range(gamma.size):
        for i in range(x.size):
            out[d, i] = (gamma[d] + total[i]) / (x[i] + shrink[d])
    return out


def usable_spend_history(frequency: Any, monetary_value: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(x, m_x)`` with both set to 0 where there is no usable spend history: no repeat
    purchase, or a mean spend that is not positive."""
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    usable = (x > 0) & (m > 0)
    return np.where(usable, x, 0.0), np.where(usable, m, 0.0)


class GammaGammaPredictions:
    """Spend predictions on top of ``self._params_for(data, draws)``: the spend-model
    contract of :mod:`clvmodels.models.base` for any model with ``p, q, gamma``."""

    @property
    def data_columns(self) -> tuple[str, ...]:
        return (*_SPEND_COLUMNS, *getattr(self, "covariate_columns", ()))

    def expected_spend(
        self, data: pd.DataFrame, *, draws: pd.DataFrame | None = None
    ) -> pd.Series | np.ndarray:
        """Expected spend per future transaction, per customer.

        Customers without repeat purchases get the population mean. With ``draws``
        (from ``param_draws``) an array ``(n_draws, n_rows)``; a draw with
        ``p x + q <= 1`` has no finite posterior mean spend and gives ``inf``.

        Examples
        --------
        >>> from clvmodels import GammaGamma, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
        ...                       observation_end="1997-09-30")
        >>> spend = GammaGamma().fit(summary).expected_spend(data=summary)
        >>> bool((spend > 0).all())
        True
        """
        data = validate_summary(
            data, require_monetary=True, require_timing=False, context="expected_spend"
        )
        params = self._params_for(data, draws)
        if draws is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.asarray(self._expected_spend_given(params, data), dtype=float)
            if np.all(np.asarray(params["q"]) > 1):
                return values  # p x + q - 1 > 0 for every row: finite and positive
            return np.where((values > 0) & np.isfinite(values), values, np.inf)
        if np.any(np.asarray(params["q"]) <= 1):
            raise ValueError(
                f"q = {params['q']} <= 1: the fitted spend distribution has no finite mean, "
                "so expected spend is undefined"
            )
        values = self._expected_spend_given(params, data)
        return pd.Series(values, index=data.index, name="expected_spend")

    def simulate_spend(
        self,
        purchases: SimulatedPurchases,
        data: pd.DataFrame,
        *,
        draws: pd.DataFrame | None,
        random_state: Any = None,
    ) -> np.ndarray:
        """A value for every simulated purchase.

        Each (draw, customer) pair that buys gets its spend rate from the customer's
        Gamma-Gamma posterior, ``nu ~ Gamma(p x + q, rate gamma + x m_x)`` (Fader &
        Hardie 2013), and each of its purchases is worth ``Gamma(p, rate nu)``.

        Examples
        --------
        >>> from clvmodels import BetaGeo, GammaGamma, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
        ...                       observation_end="1997-09-30")
        >>> bg, gg = BetaGeo().fit(summary), GammaGamma().fit(summary)
        >>> sims = bg.simulate_purchases(39, summary, draws=None, random_state=1)
        >>> values = gg.simulate_spend(sims, summary, draws=None, random_state=2)
        >>> values.shape == sims.time.shape and bool((values > 0).all())
        True
        """
        data = validate_summary(
            data, require_monetary=True, require_timing=False, context="simulate_spend"
        )
        if purchases.shape[1] != len(data):
            raise ValueError(
                f"purchases cover {purchases.shape[1]} customers but data has {len(data)} rows"
            )
        from clvmodels.models._simulation import compact, gamma_gamma_spends, read_only

        rng = np.random.default_rng(random_state)
        params = self._params_for(data, draws)
        x, m = usable_spend_history(
            data["frequency"].to_numpy(dtype=float), data["monetary_value"].to_numpy(dtype=float)
        )
        shape = purchases.shape
        return gamma_gamma_spends(
            read_only(purchases.owner, np.int64), shape[1], shape[0] * shape[1],
            *(compact(params[k], shape) for k in ("p", "q", "gamma")),
            read_only(x), read_only(m), rng,
        )

    @staticmethod
    def _expected_spend_given(params: Mapping[str, np.ndarray], data: pd.DataFrame) -> np.ndarray:
        """Array-level hook for CLV: ``params`` from ``self._params_for(data, draws)``."""
        return gamma_gamma_expected_spend(
            **params,
            frequency=data["frequency"].to_numpy(dtype=float),
            monetary_value=data["monetary_value"].to_numpy(dtype=float),
        )


class GammaGamma(GammaGammaPredictions, MaximumLikelihoodModel):
    """Gamma-Gamma spend model fitted by maximum likelihood.

    Only customers with at least one repeat purchase carry spend information; the
    others are excluded from the fit and counted. So are repeat buyers whose mean spend
    is not positive (refunds netted against purchases): the model describes positive
    spends only. Excluded customers are still scored: their expected spend is the
    population mean, as for a customer without repeat purchases.

    Parameters
    ----------
    penalizer : float, default 0
        Optional ridge penalty (per customer) on the log-parameters.
    strict : bool, default False
        Refuse data with non-positive mean spend for a repeat buyer instead of
        leaving those customers out of the fit (with a warning naming them).
    spend_covariates : list of str, optional
        Summary columns that scale each customer's spend: ``gamma_i = gamma
        exp(gamma_s' z_i)``, so the mean spend per transaction ``p gamma_i / (q - 1)``
        grows by ``exp(gamma_s' z_i)`` (:mod:`clvmodels.models.covariates`).
    covariate_penalty : float, default 0
        L2 penalty per customer on the coefficients.

    Attributes
    ----------
    params_ : Series
        Estimates of ``p, q, gamma`` (then ``spend:<column>`` coefficients).
    n_excluded_ : int
        Customers left out of the fit.
    exclusions_ : dict
        Why: ``{"no repeat purchase": n, "non-positive mean spend": n}``.
    frequency_spend_correlation_ : float
        Pearson correlation of frequency and mean spend among repeat buyers.

    Examples
    --------
    >>> from clvmodels import GammaGamma, load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
    ...                       observation_end="1997-09-30")
    >>> GammaGamma().fit(summary).params_.round(2).to_dict()
    {'p': 6.25, 'q': 3.74, 'gamma': 15.44}
    """

    param_names = ("p", "q", "gamma")
    #: gamma_i = gamma exp(gamma_s' z): the scale of the spend rate's prior, and with it
    #: the mean spend, moves with the covariates.
    covariate_effects: ClassVar[CovariateEffects] = {
        "spend": (("gamma", 1.0),),
    }
    # Mean spend is continuous, so rows hardly ever repeat: no compression.
    compress_rows = False
    EXTRA_FIELDS = MaximumLikelihoodModel.EXTRA_FIELDS | {"exclusions"}
    model_settings = ("strict",)

    def __init__(
        self,
        penalizer: float = 0.0,
        strict: bool = False,
        *,
        spend_covariates: Sequence[str] | None = None,
        covariate_penalty: float | Mapping[str, float] = 0.0,
    ) -> None:
        super().__init__(
            penalizer=penalizer,
            spend_covariates=spend_covariates,
            covariate_penalty=covariate_penalty,
        )
        self.strict = strict

    @classmethod
    def _covariate_arguments(cls) -> dict[str, Any]:
        # one role: nothing to constrain
        return {"spend_covariates": None, "covariate_penalty": 0.0}

    @staticmethod
    def log_likelihood(params, data, ops):
        """Fader & Hardie (2013) eq. (4): :func:`gamma_gamma_log_likelihood`."""
        return gamma_gamma_log_likelihood(**params, **data, ops=ops)

    def _check_settings(self) -> None:
        if not isinstance(self.strict, bool):
            raise ValueError(f"strict must be True or False, got {self.strict!r}")

    def _check_data(self, data: pd.DataFrame) -> None:
        self._check_settings()
        x = data["frequency"].to_numpy()
        m = data["monetary_value"].to_numpy(dtype=float)
        if self.strict:
            validate_summary(
                data, positive_monetary=True, require_timing=False, context="GammaGamma.fit"
            )
        nonpositive = (x > 0) & (m <= 0)
        self.exclusions_ = {
            "no repeat purchase": int((x == 0).sum()),
            "non-positive mean spend": int(nonpositive.sum()),
        }
        if nonpositive.any():
            warnings.warn(
                f"GammaGamma.fit: {int(nonpositive.sum())} of {len(data)} customers have repeat "
                "purchases but a mean spend <= 0 (refunds netted against purchases; first ids "
                f"{list(data.index[nonpositive][:5])}); they are left out of the fit and get "
                "the population mean spend. Pass strict=True to refuse such data.",
                UserWarning,
                stacklevel=4,
            )
        repeat = (x > 0) & (m > 0)
        if repeat.sum() < 2:
            raise DataValidationError(
                "GammaGamma needs customers with repeat purchases (frequency > 0) and positive "
                f"mean spend to learn spend; found {int(repeat.sum())} among {len(data)} "
                "customers"
            )
        self.frequency_spend_correlation_ = _correlation(x[repeat], m[repeat])
        if abs(self.frequency_spend_correlation_) > CORRELATION_WARNING:
            warnings.warn(
                "GammaGamma assumes spend is independent of purchase frequency, but their "
                f"correlation among repeat buyers is {self.frequency_spend_correlation_:.2f}; "
                "expected spend may be biased.",
                UserWarning,
                stacklevel=4,
            )

    def _fit_rows(self, data: pd.DataFrame) -> np.ndarray:
        # Only repeat purchases carry spend information (the first is not in m_x), and
        # the model describes positive spends.
        return (data["frequency"].to_numpy() > 0) & (data["monetary_value"].to_numpy() > 0)

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "strict": bool(self.strict)}

    def _fitted_extra(self) -> dict[str, Any]:
        return {**super()._fitted_extra(), "exclusions": dict(getattr(self, "exclusions_", {}))}

    def _restore_extra(self, extra: Mapping[str, Any], source: str) -> None:
        super()._restore_extra(extra, source)
        exclusions = extra.get("exclusions", {})
        if not isinstance(exclusions, Mapping) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for k, v in exclusions.items()
        ):
            raise ModelFileError(
                f"{source}: field 'extra.exclusions' must map reasons to counts >= 0"
            )
        self.exclusions_ = dict(exclusions)

    def _with_cache(self, arrays, weights):
        stats = spend_statistics(arrays["frequency"], arrays["monetary_value"], weights)
        return {**arrays, "_stats": stats}

    # With covariates: analytic per-customer derivatives (benchmarks/bench_mle.py).
    def _with_row_cache(self, arrays, weights):
        return {**arrays, "_unique": np.unique(arrays["frequency"], return_inverse=True)}

    def _row_log_likelihood_grad(self, params, arrays):
        return gamma_gamma_row_log_likelihood_grad(
            **params, frequency=arrays["frequency"], monetary_value=arrays["monetary_value"],
            cache=arrays.get("_unique"),
        )

    def _neg_loglik_grad(self, theta, arrays, weights):
        return gamma_gamma_neg_loglik_grad(
            theta, arrays["frequency"], arrays["monetary_value"], weights, arrays.get("_stats"),
        )

    def _log_reference(self, arrays, weights):
        return np.log([1.0, 1.0, _typical_spend(arrays, weights)])

    def _initial_values(self, arrays, weights):
        # Method-of-moments flavoured start: spend per transaction has mean p/nu.
        mean_spend = _typical_spend(arrays, weights)
        starts = [
            (1.0, 2.0, mean_spend),
            (5.0, 4.0, 2.0 * mean_spend),
            (0.5, 1.5, 0.5 * mean_spend),
            (20.0, 10.0, 5.0 * mean_spend),
        ]
        return [np.log(s) for s in starts]

    @classmethod
    def from_lifetimes(cls, fitter: Any) -> GammaGamma:
        """Build a fitted :class:`GammaGamma` from a fitted ``lifetimes.GammaGammaFitter``."""
        params = getattr(fitter, "params_", None)
        if params is None:
            raise ValueError("the lifetimes fitter is not fitted: call its fit() first")
        mapping = {"p": params["p"], "q": params["q"], "gamma": params["v"]}
        model = cls(penalizer=float(getattr(fitter, "penalizer_coef", 0.0)))
        model._set_fitted(mapping)
        return model


def _typical_spend(arrays: Mapping[str, np.ndarray], weights: np.ndarray) -> float:
    """The geometric mean of mean spend: the data's spend scale, which one extreme
    spender cannot move (one customer at 1e12 among a thousand shifts it by 3%, but
    the arithmetic mean a billionfold)."""
    return float(np.exp(np.average(np.log(arrays["monetary_value"]), weights=weights)))


def _correlation(frequency: np.ndarray, monetary_value: np.ndarray) -> float:
    f = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    if f.std() == 0 or m.std() == 0:
        return 0.0
    return float(np.corrcoef(f, m)[0, 1])
