"""Gamma-Gamma model of spend, estimated from the value of every repeat purchase.

The model of Fader, Hardie & Lee (2005, *JMR* 42(4), 415-430) in the notation of
Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value": customer ``i``'s
repeat purchases are worth ``z_ij ~ Gamma(p, rate nu_i)``, independently, with
``nu_i ~ Gamma(q, rate gamma)`` across customers. :class:`GammaGamma` fits it to each
customer's *mean* value ``m_x``; this class fits it to the values themselves, as
pymc-marketing's ``GammaGammaModelIndividual`` does with a latent ``nu`` per customer.
Here ``nu`` is integrated out in closed form (conjugacy):

``f(z_1..z_x) = Gamma(px+q) / (Gamma(p)^x Gamma(q)) * gamma^q * prod(z_j)^(p-1)
/ (gamma + x m_x)^(px+q)``,

which depends on the values through ``x``, their sum ``x m_x`` and the sum of their
logs ``x l_x``: the summary needs ``monetary_log_mean`` (``l_x``, the mean log value of
the repeat purchase periods) besides ``frequency`` and ``monetary_value``
(``rfm_summary(..., log_spend=True)``).

Relation to :class:`GammaGamma`. The mean of the values is sufficient for ``nu``, so
both models share ``nu``'s posterior, ``Gamma(px+q, rate gamma + x m_x)``, and every
prediction: at equal parameters :class:`GammaGammaTransactions` and
:class:`GammaGamma` give the same expected spend ``p (gamma + x m_x) / (px + q - 1)``
(Fader & Hardie 2013, eq. 5). Their likelihoods differ per customer by the log density
of the values given their mean (:func:`log_density_values_given_mean`),

``log f(z_1..z_x) - log f(m_x) = log Gamma(px) - x log Gamma(p) + (p-1) x l_x
- (px-1) log m_x - px log x``,

a term in ``p`` and the data only (the values divided by their sum are
``Dirichlet(p, ..., p)``, whatever ``nu``): it carries the information about ``p`` in
the spread of a customer's values around their mean, which the mean-based fit
discards, so the maximum-likelihood estimates differ (for ``x = 1`` the term is 0).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import digamma, gammaln

from clvmodels.data import LOG_SPEND_COLUMN, is_real_dtype, validate_summary
from clvmodels.errors import DataValidationError
from clvmodels.models.base import SimulatedPurchases
from clvmodels.models.gamma_gamma import (
    CORRELATION_WARNING,
    GammaGamma,
    spend_statistics,
)
from clvmodels.models.ops import NUMPY

__all__ = [
    "GammaGammaTransactions",
    "gamma_gamma_transactions_log_likelihood",
    "gamma_gamma_transactions_neg_loglik_grad",
    "log_density_values_given_mean",
]

_COLUMNS = ("frequency", "monetary_value", LOG_SPEND_COLUMN)
_EXCLUDED_VALUES = "non-positive repeat purchase value"


def gamma_gamma_transactions_log_likelihood(
    p, q, gamma, frequency, monetary_value, monetary_log_mean, ops=NUMPY
):
    """Log density of a customer's ``x`` repeat purchase values, ``nu`` integrated out.

    ``log Gamma(px+q) - log Gamma(q) - x log Gamma(p) + q log gamma + (p-1) x l_x
    - (px+q) log(gamma + x m_x)`` for ``x`` values of mean ``m_x`` and mean log ``l_x``
    (Fader & Hardie 2013, eq. 1-2 with ``nu`` integrated out as in their eq. 3). Only
    defined for ``x > 0``. ``ops`` is the array namespace
    (:mod:`clvmodels.models.ops`).

    Examples
    --------
    Two purchases of $29.73 and $14.96 at the CDNOW estimates of Fader, Hardie & Lee:

    >>> l_x = (np.log(29.73) + np.log(14.96)) / 2
    >>> round(float(gamma_gamma_transactions_log_likelihood(
    ...     6.25, 3.74, 15.44, 2, 22.345, l_x)), 4)
    -7.6343
    """
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    log_values = np.asarray(monetary_log_mean, dtype=float) * x
    px = p * x
    return (
        ops.gammaln(px + q)
        - ops.gammaln(q)
        - ops.gammaln(p) * x
        + q * ops.log(gamma)
        + (p - 1) * log_values
        - (px + q) * ops.log(gamma + m * x)
    )


def log_density_values_given_mean(p, frequency, monetary_value, monetary_log_mean, ops=NUMPY):
    """Log density of ``x`` values given their mean: the likelihood of the values minus
    that of their mean (:func:`gamma_gamma_log_likelihood`), whatever ``q`` and ``gamma``.

    Given their sum ``s = x m_x``, values ``Gamma(p, nu)`` divided by ``s`` are
    ``Dirichlet(p, ..., p)`` for every ``nu``, so ``f(z | m_x) = Gamma(px) / Gamma(p)^x
    prod(z_j)^(p-1) / (x^(px) m_x^(px-1))`` (with respect to the first ``x - 1``
    values): ``log Gamma(px) - x log Gamma(p) + (p-1) x l_x - (px-1) log m_x
    - px log x``. It is 0 for ``x = 1`` and at most 0 in ``l_x`` terms at ``p = 1``.

    Examples
    --------
    >>> float(log_density_values_given_mean(6.25, 1, 30.0, np.log(30.0)))
    0.0
    """
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    log_values = np.asarray(monetary_log_mean, dtype=float) * x
    px = p * x
    return (
        ops.gammaln(px)
        - ops.gammaln(p) * x
        + (p - 1) * log_values
        - (px - 1) * np.log(m)
        - px * np.log(x)
    )


def gamma_gamma_transactions_neg_loglik_grad(
    log_params: np.ndarray,
    frequency: np.ndarray,
    monetary_value: np.ndarray,
    monetary_log_mean: np.ndarray,
    weights: np.ndarray,
    stats: dict[str, Any] | None = None,
) -> tuple[float, np.ndarray]:
    """Weighted negative log-likelihood and its gradient in log-parameters.

    ``stats`` is :func:`clvmodels.models.gamma_gamma.spend_statistics` of the data
    (computed once per fit) with ``sum_wx_log_values`` added, ``sum w x l_x``: the
    gamma-function terms then cost one evaluation per distinct frequency and the
    log-value term none at all.
    """
    p, q, gamma = np.exp(log_params)
    st = _statistics(frequency, monetary_value, monetary_log_mean, weights) if stats is None \
        else stats
    n, xv, xw = st["n"], st["x_values"], st["x_weights"]
    sum_wx = float(xw @ xv)
    pxv = p * xv
    log_g_mx = np.log(gamma + st["mx"])
    inv_g_mx = 1.0 / (gamma + st["mx"])
    psi_pxq = digamma(pxv + q)
    wx_log = float(np.dot(st["wx"], log_g_mx))
    w_log = float(np.dot(st["w"], log_g_mx))
    value = (
        float(np.dot(xw, gammaln(pxv + q)))
        - n * gammaln(q)
        - sum_wx * gammaln(p)
        + n * q * np.log(gamma)
        + (p - 1) * st["sum_wx_log_values"]
        - p * wx_log
        - q * w_log
    )
    d_p = float(np.dot(xw * xv, psi_pxq)) - sum_wx * digamma(p) + st["sum_wx_log_values"] - wx_log
    d_q = float(np.dot(xw, psi_pxq)) - n * digamma(q) + n * np.log(gamma) - w_log
    d_gamma = n * q / gamma - p * float(np.dot(st["wx"], inv_g_mx)) - q * float(
        np.dot(st["w"], inv_g_mx)
    )
    return -value, -np.array([p * d_p, q * d_q, gamma * d_gamma])


def _statistics(
    frequency: np.ndarray, monetary_value: np.ndarray, monetary_log_mean: np.ndarray,
    weights: np.ndarray,
) -> dict[str, Any]:
    stats = spend_statistics(frequency, monetary_value, weights)
    stats["sum_wx_log_values"] = float(np.dot(stats["wx"], monetary_log_mean))
    return stats


def _log_spend_column(data: pd.DataFrame, context: str) -> np.ndarray:
    """``monetary_log_mean`` as floats: present, numeric, never infinite (NaN marks a
    customer with a repeat period that has no log)."""
    if LOG_SPEND_COLUMN not in data.columns:
        raise DataValidationError(
            f"{context}: the summary has no '{LOG_SPEND_COLUMN}' column (the mean log value "
            "of the repeat purchase periods), which GammaGammaTransactions reads: summarise "
            "with rfm_summary(..., log_spend=True) or calibration_holdout_split(..., "
            "log_spend=True)"
        )
    column = data[LOG_SPEND_COLUMN]
    if not is_real_dtype(column.dtype):
        raise DataValidationError(
            f"{context}: column '{LOG_SPEND_COLUMN}' must be numeric (real numbers), got dtype "
            f"{column.dtype}"
        )
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    if (bad := np.isinf(values)).any():
        raise DataValidationError(
            f"{context}: column '{LOG_SPEND_COLUMN}': {int(bad.sum())} of {len(values)} rows "
            f"are infinite; first customer ids {data.index[bad][:5].tolist()}"
        )
    return values


class GammaGammaTransactions(GammaGamma):
    """Gamma-Gamma spend model fitted by maximum likelihood on every repeat purchase value.

    The model and the predictions of :class:`~clvmodels.GammaGamma` (same ``p, q,
    gamma``, same expected spend and simulator), with the likelihood of the individual
    values instead of their mean: it learns ``p``, the spread of a customer's values
    around the customer's mean, also from customers with several purchases, so the
    estimates are more precise. The summary needs ``monetary_log_mean``
    (``rfm_summary(..., log_spend=True)``).

    Only customers with at least one repeat purchase carry spend information; the
    others are excluded from the fit and counted. So are repeat buyers with a repeat
    purchase period whose net value is not positive (``monetary_log_mean`` is NaN:
    refunds netted against purchases; the model describes positive values only). All
    excluded customers are still scored with the population mean spend.

    Parameters
    ----------
    penalizer : float, default 0
        Optional ridge penalty (per customer) on the log-parameters.
    strict : bool, default False
        Refuse data with a non-positive repeat purchase value instead of leaving those
        customers out of the fit (with a warning naming them).

    Attributes
    ----------
    params_ : Series
        Estimates of ``p, q, gamma``.
    n_excluded_ : int
        Customers left out of the fit.
    exclusions_ : dict
        Why: ``{"no repeat purchase": n, "non-positive repeat purchase value": n}``.
    frequency_spend_correlation_ : float
        Pearson correlation of frequency and mean spend among the customers fitted.

    Examples
    --------
    On the CDNOW calibration data (Fader, Hardie & Lee 2005) the mean-based fit gives
    ``p, q, gamma = 6.25, 3.74, 15.44``; the values themselves say that a customer's
    purchases vary more around the customer's mean (a smaller ``p``: the coefficient of
    variation of one customer's values is ``1 / sqrt(p)``), with the same population
    mean spend of about $35 (``p gamma / (q - 1)``):

    >>> from clvmodels import load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
    ...                       observation_end="1997-09-30", log_spend=True)
    >>> model = GammaGammaTransactions().fit(summary)
    >>> model.params_.round(2).to_dict()
    {'p': 3.61, 'q': 4.49, 'gamma': 34.08}
    >>> p, q, gamma = model.params_
    >>> round(p * gamma / (q - 1), 2)
    35.29
    """

    @property
    def data_columns(self) -> tuple[str, ...]:
        return _COLUMNS

    @staticmethod
    def log_likelihood(params, data, ops):
        """The individual-value likelihood: :func:`gamma_gamma_transactions_log_likelihood`."""
        return gamma_gamma_transactions_log_likelihood(**params, **data, ops=ops)

    def _check_data(self, data: pd.DataFrame) -> None:
        name = type(self).__name__
        if not isinstance(self.strict, bool):
            raise ValueError(f"strict must be True or False, got {self.strict!r}")
        x = data["frequency"].to_numpy(dtype=float)
        m = data["monetary_value"].to_numpy(dtype=float)
        log_mean = _log_spend_column(data, f"{name}.fit")
        repeat = x > 0
        no_log = repeat & np.isnan(log_mean)
        _check_consistency(data, x, m, log_mean, f"{name}.fit")
        if self.strict and no_log.any():
            raise DataValidationError(
                f"{name}.fit: column '{LOG_SPEND_COLUMN}': {int(no_log.sum())} of {len(data)} "
                "rows are NaN for customers with repeat purchases (a repeat purchase period "
                f"with a net value <= 0); first customer ids {data.index[no_log][:5].tolist()}"
            )
        self.exclusions_ = {
            "no repeat purchase": int((~repeat).sum()),
            _EXCLUDED_VALUES: int(no_log.sum()),
        }
        if no_log.any():
            warnings.warn(
                f"{name}.fit: {int(no_log.sum())} of {len(data)} customers have a repeat "
                "purchase period worth <= 0 (refunds netted against purchases; first ids "
                f"{data.index[no_log][:5].tolist()}); they are left out of the fit and get the "
                "population mean spend. Pass strict=True to refuse such data.",
                UserWarning,
                stacklevel=4,
            )
        usable = repeat & ~no_log
        if usable.sum() < 2:
            raise DataValidationError(
                f"{name} needs customers with repeat purchases (frequency > 0) of positive "
                f"value to learn spend; found {int(usable.sum())} among {len(data)} customers"
            )
        f, mu = x[usable], m[usable]
        correlation = 0.0 if f.std() == 0 or mu.std() == 0 else float(np.corrcoef(f, mu)[0, 1])
        self.frequency_spend_correlation_ = correlation
        if abs(correlation) > CORRELATION_WARNING:
            warnings.warn(
                f"{name} assumes spend is independent of purchase frequency, but their "
                f"correlation among repeat buyers is {correlation:.2f}; expected spend may be "
                "biased.",
                UserWarning,
                stacklevel=4,
            )

    def _fit_rows(self, data: pd.DataFrame) -> np.ndarray:
        # Repeat purchases of positive value are what the likelihood describes (the
        # first purchase is not part of the values).
        log_mean = data[LOG_SPEND_COLUMN].to_numpy(dtype=np.float64, na_value=np.nan)
        return (data["frequency"].to_numpy() > 0) & ~np.isnan(log_mean)

    def _with_cache(self, arrays, weights):
        stats = _statistics(
            arrays["frequency"], arrays["monetary_value"], arrays[LOG_SPEND_COLUMN], weights
        )
        return {**arrays, "_stats": stats}

    def _neg_loglik_grad(self, theta, arrays, weights):
        return gamma_gamma_transactions_neg_loglik_grad(
            theta, arrays["frequency"], arrays["monetary_value"], arrays[LOG_SPEND_COLUMN],
            weights, arrays.get("_stats"),
        )

    # -- predictions: GammaGamma's, with the customers the fit leaves out at the mean ----
    def _usable(self, data: pd.DataFrame, context: str) -> pd.DataFrame:
        """``data`` with ``monetary_value`` set to 0 where a repeat purchase period has no
        log value: :class:`GammaGamma`'s predictions then give the population mean."""
        log_mean = _log_spend_column(data, f"{type(self).__name__}.{context}")
        no_log = (data["frequency"].to_numpy() > 0) & np.isnan(log_mean)
        if not no_log.any():
            return data
        return data.assign(monetary_value=np.where(no_log, 0.0, data["monetary_value"]))

    def _expected_spend_given(self, params, data):
        return super()._expected_spend_given(params, self._usable(data, "expected_spend"))

    def simulate_spend(
        self,
        purchases: SimulatedPurchases,
        data: pd.DataFrame,
        *,
        draws: pd.DataFrame | None,
        random_state: Any = None,
    ) -> np.ndarray:
        """A value for every simulated purchase (see :meth:`GammaGamma.simulate_spend`).

        Examples
        --------
        >>> from clvmodels import BetaGeo, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
        ...                       observation_end="1997-09-30", log_spend=True)
        >>> bg, gg = BetaGeo().fit(summary), GammaGammaTransactions().fit(summary)
        >>> sims = bg.simulate_purchases(39, summary, draws=None, random_state=1)
        >>> values = gg.simulate_spend(sims, summary, draws=None, random_state=2)
        >>> values.shape == sims.time.shape and bool((values > 0).all())
        True
        """
        data = validate_summary(
            data, require_monetary=True, require_timing=False, context="simulate_spend"
        )
        return super().simulate_spend(
            purchases, self._usable(data, "simulate_spend"), draws=draws,
            random_state=random_state,
        )

    @classmethod
    def from_lifetimes(cls, fitter: Any) -> GammaGammaTransactions:
        """Not available: lifetimes fits the mean-based likelihood only. Build a
        :class:`GammaGamma` with ``GammaGamma.from_lifetimes``, or this model at given
        parameters with ``GammaGammaTransactions.from_params``."""
        raise TypeError(
            "lifetimes has no transaction-level Gamma-Gamma fitter: use "
            "GammaGamma.from_lifetimes(fitter), or GammaGammaTransactions.from_params({...})"
        )


def _check_consistency(
    data: pd.DataFrame, x: np.ndarray, m: np.ndarray, log_mean: np.ndarray, context: str
) -> None:
    """A finite mean log value needs positive values: ``m_x > 0``, ``l_x <= log m_x``
    (the mean of logs is at most the log of the mean), with equality for one value."""
    finite = (x > 0) & np.isfinite(log_mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_m = np.log(np.where(finite & (m > 0), m, 1.0))
    # The summaries compute m_x as (all periods - the first), which rounds relative to the
    # first period's value: the slack lets a first purchase a million times a repeat
    # purchase through, and still catches logs of totals, of means or in base 10.
    slack = 1e-6 * (1.0 + np.abs(log_m))
    bad = finite & (
        (m <= 0) | (log_mean > log_m + slack) | ((x == 1) & (log_mean < log_m - slack))
    )
    if bad.any():
        raise DataValidationError(
            f"{context}: column '{LOG_SPEND_COLUMN}' does not fit 'monetary_value' for "
            f"{int(bad.sum())} of {len(data)} customers (first ids {data.index[bad][:5].tolist()}):"
            " the mean of the logs of positive values is at most the log of their mean, and "
            "equals it for one value; is it the mean natural log of the same repeat purchase "
            "periods (rfm_summary(..., log_spend=True))?"
        )
