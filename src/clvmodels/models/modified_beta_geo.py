"""MBG/NBD: the modified beta-geometric / negative binomial distribution model.

Batislam, E. P., Denizel, M. and Filiztekin, A. (2007), "Empirical validation and
comparison of models for customer base analysis", *International Journal of Research
in Marketing* 24(3), 201-209 (BDF 2007 below), with the correction of Wagner, U. and
Hoppe, D. (2008), "Erratum on the MBG/NBD model", *IJRM* 25(3), 225-226; the same
model is the "central variant" of the BG/NBD of Hoppe, D. and Wagner, U. (2007),
"Customer base analysis: the case for a central variant of the Betageometric/NBD
model", *Marketing ZFP* 29(2), 75-90.

As in the BG/NBD (Fader, Hardie & Lee 2005, FHL 2005 below), a customer buys at a
Poisson rate ``lambda ~ Gamma(r, alpha)`` while alive and drops out with probability
``p ~ Beta(a, b)`` after each repeat purchase; the MBG/NBD lets the customer drop out
right after the first purchase too (at time 0). So customers without repeat purchases
are not certainly alive (P(alive) < 1 for ``x = 0``), which the BG/NBD assumes.

Every formula is the BG/NBD one with one more dropout opportunity: given alive, ``p``
has the posterior ``Beta(a, b + x + 1)`` instead of ``Beta(a, b + x)``, so the robust
hypergeometric machinery of the BG/NBD serves unchanged
(:mod:`clvmodels.models._beta_geo_family`). :class:`ModifiedBetaGeo` is the
maximum-likelihood model; the pure functions take broadcastable arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from clvmodels.data import column_arrays
from clvmodels.models._beta_geo_family import (
    BetaGeoFamilyFit,
    purchases_while_alive,
    simulate_family,
    xbg_expected_purchases,
    xbg_log_likelihood,
    xbg_neg_loglik_grad,
    xbg_probability_alive,
    xbg_probability_of_purchases,
)
from clvmodels.models.beta_geo import BetaGeoPredictions
from clvmodels.models.covariates import CovariateEffects
from clvmodels.models.mle import PurchaseDropoutModel
from clvmodels.models.ops import NUMPY

__all__ = [
    "ModifiedBetaGeo",
    "mbgnbd_expected_purchases",
    "mbgnbd_expected_purchases_new_customer",
    "mbgnbd_log_likelihood",
    "mbgnbd_neg_loglik_grad",
    "mbgnbd_probability_alive",
    "mbgnbd_probability_of_purchases",
    "simulate_mbgnbd",
]


# --------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------
def mbgnbd_log_likelihood(r, alpha, a, b, frequency, recency, T, ops=NUMPY):
    """Per-customer MBG/NBD log-likelihood (BDF 2007, appendix A), in log space.

    ``L = A1 * B(a, b+x+1)/B(a, b) * ((alpha+T)^-(r+x) + a/(b+x) (alpha+t_x)^-(r+x))``
    with ``A1 = Gamma(r+x) alpha^r / Gamma(r)``: the dropout branch is present for every
    customer, also for ``x = 0`` (then ``t_x = 0``). Summed as ``log A3 + softplus(log
    A4 - log A3)``, so it is finite for any valid input.

    Parameters
    ----------
    r, alpha, a, b : float or array
        Model parameters, broadcastable against the customer arrays.
    frequency, recency, T : array
        Repeat purchases ``x``, time of last purchase ``t_x`` and age ``T``.
    ops : namespace, default NUMPY
        Array namespace (:mod:`clvmodels.models.ops`).

    Examples
    --------
    >>> round(float(mbgnbd_log_likelihood(0.525, 6.183, 0.891, 1.614, 2, 30.43, 38.86)), 4)
    -9.4856
    """
    return xbg_log_likelihood(r, alpha, a, b, frequency, recency, T, dropout_at_zero=True, ops=ops)


def mbgnbd_neg_loglik_grad(
    log_params: np.ndarray,
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    weights: np.ndarray,
    groups: tuple[np.ndarray, ...] | None = None,
) -> tuple[float, np.ndarray]:
    """Weighted negative log-likelihood and its analytic gradient in log-parameters.

    The BG/NBD gradient (FHL 2005) with the dropout term on every row and ``b + x + 1``
    in the beta functions; ``groups`` is :func:`frequency_groups` of the data.
    """
    return xbg_neg_loglik_grad(
        log_params, frequency, recency, T, weights, groups, dropout_at_zero=True
    )


def mbgnbd_probability_alive(r, alpha, a, b, frequency, recency, T):
    """P(alive | x, t_x, T) = 1 / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x)).

    BDF 2007 appendix A, eq. (5) (as cited by lifetimes); below 1 also for ``x = 0``.

    Examples
    --------
    >>> round(float(mbgnbd_probability_alive(0.525, 6.183, 0.891, 1.614, 0, 0.0, 38.86)), 4)
    0.3897
    """
    return xbg_probability_alive(r, alpha, a, b, frequency, recency, T, dropout_at_zero=True)


def mbgnbd_expected_purchases(t, r, alpha, a, b, frequency, recency, T):
    """E[Y(t) | x, t_x, T], expected purchases in the next ``t``, Wagner & Hoppe (2008).

    ``(a+b+x)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x+1; a+b+x;
    t/(alpha+T+t))] P(alive)``: the BG/NBD expectation given alive (FHL 2005 eq. 10
    numerator) with the dropout posterior ``Beta(a, b+x+1)``.

    Examples
    --------
    >>> round(float(mbgnbd_expected_purchases(39, 0.525, 6.183, 0.891, 1.614,
    ...                                        2, 30.43, 38.86)), 3)
    1.263
    """
    return xbg_expected_purchases(
        t, r, alpha, a, b, frequency, recency, T, dropout_at_zero=True
    )


def mbgnbd_expected_purchases_new_customer(t, r, alpha, a, b):
    """E[X(t)] for a customer just acquired: ``b/(a-1) [1 - (alpha/(alpha+t))^r
    2F1(r, b+1; a+b; t/(alpha+t))]`` (BDF 2007, appendix A).

    Alive after the first purchase with probability ``b/(a+b)``, and then a BG/NBD
    customer whose dropout probability has the posterior ``Beta(a, b+1)``.

    Examples
    --------
    >>> round(float(mbgnbd_expected_purchases_new_customer(39, 0.525, 6.183, 0.891,
    ...                                                     1.614)), 3)
    1.183
    """
    return b / (a + b) * purchases_while_alive(t, r, alpha, a, b + 1.0)


def mbgnbd_probability_of_purchases(n, t, r, alpha, a, b):
    """P(X(t) = n) for a new customer (BDF 2007, appendix A; Hoppe & Wagner 2007).

    ``B(a, b+n+1)/B(a, b) NB(n) + B(a+1, b+n)/B(a, b) P(N(t) >= n)``, with ``NB`` the
    negative binomial probabilities of the purchases of an immortal customer.

    Examples
    --------
    >>> round(float(mbgnbd_probability_of_purchases(0, 39, 0.525, 6.183, 0.891, 1.614)), 4)
    0.5825
    """
    return xbg_probability_of_purchases(n, t, r, alpha, a, b, dropout_at_zero=True)


def simulate_mbgnbd(
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
    """Simulate MBG/NBD summaries (and optionally a holdout period).

    Each customer draws ``lambda ~ Gamma(r, rate alpha)`` and ``p ~ Beta(a, b)``, drops
    out right after the first purchase with probability ``p`` and after each repeat
    purchase likewise, and buys at Poisson times while alive.

    Parameters
    ----------
    n_customers : int
    r, alpha, a, b : float
        MBG/NBD parameters.
    T : float or array of shape (n_customers,)
        Each customer's observation length (time since first purchase).
    holdout : float, optional
        Length of a holdout period after ``T``; adds ``frequency_holdout`` and
        ``duration_holdout``.
    random_state : int or numpy Generator, optional
    return_latent : bool
        Also return ``lambda``, ``p_dropout`` and ``alive`` (at the end of ``T``).
    time_unit : str
        Recorded in ``attrs["time_unit"]``.

    Examples
    --------
    >>> data = simulate_mbgnbd(1000, 0.525, 6.183, 0.891, 1.614, T=39, random_state=1)
    >>> list(data.columns)
    ['frequency', 'recency', 'T']
    """
    frame = simulate_family(
        n_customers, r, alpha, a, b, T, dropout_at_zero=True, holdout=holdout,
        random_state=random_state, return_latent=return_latent, time_unit=time_unit,
    )
    return frame.drop(columns="log_interpurchase_sum")


# --------------------------------------------------------------------------------------
# Maximum-likelihood model
# --------------------------------------------------------------------------------------
def _history(data: pd.DataFrame) -> dict[str, np.ndarray]:
    return column_arrays(data, ("frequency", "recency", "T"))


class ModifiedBetaGeo(BetaGeoPredictions, BetaGeoFamilyFit, PurchaseDropoutModel):
    """MBG/NBD transaction model fitted by maximum likelihood.

    Parameters
    ----------
    penalizer : float, default 0
        Optional ridge penalty (per customer) on the log-parameters around their
        natural centre; a small value (1e-3) regularises data that cannot identify
        every parameter.
    purchase_covariates : list of str, optional
        Summary columns that scale each customer's purchase rate:
        ``alpha_i = alpha exp(-gamma_p' z_i)`` (as for :class:`~clvmodels.BetaGeo`;
        :mod:`clvmodels.models.covariates`).
    dropout_covariates : list of str, optional
        Columns that scale the dropout distribution: ``a_i = a exp(gamma_d' z_i)``,
        ``b_i = b exp(gamma_d' z_i)``.
    constrain : list of str or dict, optional
        Columns whose purchase and dropout coefficients are one shared coefficient.
    covariate_penalty : float or dict, default 0
        L2 penalty per customer on the coefficients (CLVTools ``reg.lambdas``).

    Attributes
    ----------
    params_ : Series
        Estimates of ``r, alpha, a, b`` (then the coefficients, with covariates).
    covariate_design_ : CovariateDesign or None
        The fitted covariates.
    log_likelihood_, aic_, bic_ : float
        Fit statistics.
    covariance_log_ : DataFrame
        Asymptotic covariance of the log-parameters (inverse observed information).
    time_unit_ : str or None
        The time unit recorded on the summary frame.

    Examples
    --------
    The CDNOW estimates of R's BTYDplus (``mbgnbd.EstimateParameters``):

    >>> from clvmodels import ModifiedBetaGeo, load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
    ...                       observation_end="1997-09-30")
    >>> model = ModifiedBetaGeo().fit(summary)
    >>> model.params_.round(3).to_dict()
    {'r': 0.525, 'alpha': 6.183, 'a': 0.891, 'b': 1.614}
    >>> float(model.probability_alive(data=summary).loc[summary.frequency == 0].max()) < 1
    True
    """

    param_names = ("r", "alpha", "a", "b")
    #: As for the BG/NBD: alpha_i = alpha exp(-gamma_p' z), a_i, b_i = a, b exp(gamma_d' z).
    covariate_effects: ClassVar[CovariateEffects] = {
        "purchase": (("alpha", -1.0),),
        "dropout": (("a", 1.0), ("b", 1.0)),
    }


    @staticmethod
    def log_likelihood(params, data, ops):
        """BDF 2007, appendix A: :func:`mbgnbd_log_likelihood`."""
        return mbgnbd_log_likelihood(**params, **data, ops=ops)

    def _family_shape(self) -> dict[str, Any]:
        return {"k": 1, "dropout_at_zero": True}

    # -- prediction hooks (see BetaGeoPredictions) -------------------------------------
    @staticmethod
    def _expected_purchases_given(
        t: Any, params: Mapping[str, np.ndarray], data: pd.DataFrame
    ) -> np.ndarray:
        return mbgnbd_expected_purchases(t, **params, **_history(data))

    @staticmethod
    def _probability_alive_given(
        params: Mapping[str, np.ndarray], data: pd.DataFrame
    ) -> np.ndarray:
        return mbgnbd_probability_alive(**params, **_history(data))

    @staticmethod
    def _expected_purchases_new_customer_given(
        t: np.ndarray, params: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        return mbgnbd_expected_purchases_new_customer(t, **params)

    @staticmethod
    def _probability_of_purchases_given(
        n: np.ndarray, t: np.ndarray, params: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        return mbgnbd_probability_of_purchases(n, t, **params)

    @staticmethod
    def _dropout_b_shift(frequency: np.ndarray) -> np.ndarray:
        # alive: survived the dropout at time 0 and after each of the x repeat purchases
        return np.asarray(frequency, dtype=float) + 1.0
