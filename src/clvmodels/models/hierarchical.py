"""Bayesian BG/NBD and Gamma-Gamma, pooled or hierarchical: declarations on the engine.

Customers often fall into groups (acquisition cohort, channel, region) whose
purchase and spend behaviour differ. :class:`HierarchicalBetaGeo` and
:class:`HierarchicalGammaGamma` give every group its own population parameters
and let small groups borrow strength from the rest; without ``group_col`` they are
plain (pooled) Bayesian versions of :class:`~clvmodels.BetaGeo` and
:class:`~clvmodels.GammaGamma`. Fitting, priors, the parameterisation, diagnostics,
LOO and NetCDF files are the Bayesian engine's (:mod:`clvmodels.models.bayes`), as
for any model; this module declares the two speed-ups the engine lets a model add.

Coordinates
-----------
Each model describes a group by coordinates chosen so that the data inform them
nearly independently (this is what lets the sampler move freely; in the raw
parameters the posterior correlations reach 0.94 for BG/NBD and 0.97 for
Gamma-Gamma on CDNOW):

============================  ==============================  ====================
coordinate                    meaning                         prior centre ``m``
============================  ==============================  ====================
``log_rate = log(r/alpha)``   mean purchase rate ``E[lambda]`` log(repeat purchases
                                                              per unit of ``T``)
``log_r``                     shape of the rate distribution  0
``log_dropout_odds``          ``log(a/b)``: log odds of the   0
                              mean dropout probability
``log_concentration``         ``log(a+b)``                    0
``log_p``                     shape of spend per transaction  0
``log_q``                     shape of the ``nu`` prior       0
``log_typical_spend``         ``log(p gamma / q)``            log(mean spend)
============================  ==============================  ====================

Centres that depend on the data follow its units, so changing weeks to days moves
the prior with the data. ``bayesian(BetaGeo)`` samples the same likelihood in the
plain log-parameters, more slowly.

Likelihood
----------
Over sufficient statistics (:mod:`clvmodels.models._pytensor_likelihoods`): count-only
terms once per distinct ``(group, x)``; for the BG/NBD the per-row terms, nearly all
of the cost, run as one fused Op with its analytic gradient
(:mod:`clvmodels.models._fused_rows`). The tests check both against the engine's
generic graph of the declared ``log_likelihood``.

Examples
--------
CDNOW by acquisition month (January, February, March 1997):

>>> from clvmodels import load_cdnow, rfm_summary
>>> tx = load_cdnow()
>>> summary = rfm_summary(tx, "customer_id", "date", observation_end="1997-09-30")
>>> first = tx.groupby("customer_id")["date"].min()
>>> summary["cohort"] = first.dt.strftime("%b").reindex(summary.index)
>>> model = HierarchicalBetaGeo(group_col="cohort").fit(
...     summary, random_state=1, progressbar=False)  # doctest: +SKIP
>>> model.params_.round(2)  # doctest: +SKIP
           r  alpha     a     b
cohort
Feb     0.24   4.24  0.82  2.53
Jan     0.24   4.55  0.79  2.55
Mar     0.25   4.58  0.99  3.12

The three months barely differ, and PSIS-LOO says the grouping does not pay for
its extra parameters (see :func:`compare_loo`).

References
----------
Fader, Hardie & Lee (2005), "'Counting Your Customers' the Easy Way", *Marketing
Science* 24(2). Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from clvmodels.errors import SamplingWarning
from clvmodels.models._pytensor_likelihoods import (
    BetaGeoStatistics,
    GammaGammaStatistics,
    bgnbd_pointwise,
    bgnbd_total_log_likelihood,
    gamma_gamma_pointwise,
    gamma_gamma_total_log_likelihood,
)
from clvmodels.models.bayes import BayesianModel, compare_loo
from clvmodels.models.beta_geo import BetaGeo
from clvmodels.models.gamma_gamma import GammaGamma

__all__ = [
    "HierarchicalBetaGeo",
    "HierarchicalGammaGamma",
    "SamplingWarning",
    "compare_loo",
]


class HierarchicalBetaGeo(BayesianModel, BetaGeo):
    """Bayesian BG/NBD, pooled or with partially pooled group parameters.

    Parameters
    ----------
    group_col : str, optional
        Column of the summary that names each customer's group. Without it the model
        is pooled: one set of ``r, alpha, a, b``.
    priors : dict, optional
        Overrides of the default priors on the coordinates ``log_rate, log_r,
        log_dropout_odds, log_concentration`` (see :mod:`clvmodels.models.bayes`).

    Attributes
    ----------
    idata_, params_, population_params_, groups_, centering_
        See :class:`~clvmodels.models.bayes.BayesianModel`; the parameters are
        ``r, alpha, a, b``.

    Examples
    --------
    >>> from clvmodels import load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
    ...                       observation_end="1997-09-30")
    >>> model = HierarchicalBetaGeo().fit(summary, random_state=1,
    ...                                   progressbar=False)  # doctest: +SKIP
    >>> model.params_.round(2).to_dict()  # doctest: +SKIP
    {'r': 0.24, 'alpha': 4.44, 'a': 0.82, 'b': 2.56}
    """

    coordinates = ("log_rate", "log_r", "log_dropout_odds", "log_concentration")
    log_likelihood_var = "purchases"

    def _theta_from_coordinates(self, u: Sequence[Any], ops: Any) -> list[Any]:
        log_rate, log_r, log_odds, log_conc = u
        return [
            log_r,
            log_r - log_rate,
            log_conc - ops.softplus(-log_odds),
            log_conc - ops.softplus(log_odds),
        ]

    def _coordinates_from_theta(self, theta: Sequence[Any], ops: Any) -> list[Any]:
        log_r, log_alpha, log_a, log_b = theta
        return [log_r - log_alpha, log_r, log_a - log_b, ops.logaddexp(log_a, log_b)]

    def _theta_and_jacobian(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Closed form: the pooled NumPy route evaluates this at every gradient.
        log_rate, log_r, log_odds, log_conc = u
        share_a = 0.5 * (1.0 + np.tanh(0.5 * log_odds))  # a / (a + b), overflow-free
        theta = np.array(
            [
                log_r,
                log_r - log_rate,
                log_conc - np.logaddexp(0.0, -log_odds),
                log_conc - np.logaddexp(0.0, log_odds),
            ]
        )
        jacobian = np.array(
            [
                [0.0, 1.0, 0.0, 0.0],
                [-1.0, 1.0, 0.0, 0.0],
                [0.0, 0.0, 1.0 - share_a, 1.0],
                [0.0, 0.0, -share_a, 1.0],
            ]
        )
        return theta, jacobian

    def _prior_centre(self, arrays: Mapping[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
        # Repeat purchases per unit of customer age: the centre of log_rate.
        purchases = float(np.dot(arrays["frequency"], weights))
        exposure = float(np.dot(arrays["T"], weights))
        return np.array([np.log(max(purchases, 1.0) / max(exposure, 1e-9)), 0.0, 0.0, 0.0])

    def _likelihood_statistics(self, arrays, group, weights, n_groups) -> BetaGeoStatistics:
        return BetaGeoStatistics.from_rows(
            group, arrays["frequency"], arrays["recency"], arrays["T"], weights, n_groups
        )

    def _graph_terms(self, stats: BetaGeoStatistics) -> int:
        return stats.graph_terms

    def _total_log_likelihood(self, params, stats, fused=True):
        return bgnbd_total_log_likelihood(
            *(params[k] for k in self.param_names), stats, fused=fused
        )

    def _pointwise_log_likelihood(self, params, stats) -> np.ndarray:
        return bgnbd_pointwise(*(params[k] for k in self.param_names), stats)


class HierarchicalGammaGamma(BayesianModel, GammaGamma):
    """Bayesian Gamma-Gamma spend model, pooled or with partially pooled groups.

    Only repeat buyers (frequency > 0) carry spend information; the others are
    left out of the fit and counted in ``n_excluded_`` (their expected spend is the
    group mean). Parameters and attributes are as in :class:`HierarchicalBetaGeo`,
    with ``p, q, gamma`` and the coordinates ``log_p, log_q, log_typical_spend``;
    the stored log-likelihood covers the repeat buyers.

    Examples
    --------
    >>> from clvmodels import load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
    ...                       observation_end="1997-09-30")
    >>> model = HierarchicalGammaGamma().fit(summary, random_state=1,
    ...                                      progressbar=False)  # doctest: +SKIP
    >>> model.params_.round(2).to_dict()  # doctest: +SKIP
    {'p': 6.5, 'q': 3.74, 'gamma': 15.64}
    >>> model.expected_spend(data=summary).head(3).round(2)  # doctest: +SKIP
    customer_id
    1    24.91
    2    19.28
    3    37.09
    Name: expected_spend, dtype: float64
    """

    coordinates = ("log_p", "log_q", "log_typical_spend")
    log_likelihood_var = "spend"

    def _theta_from_coordinates(self, u: Sequence[Any], ops: Any) -> list[Any]:
        log_p, log_q, log_typical = u
        return [log_p, log_q, log_typical + log_q - log_p]

    def _coordinates_from_theta(self, theta: Sequence[Any], ops: Any) -> list[Any]:
        log_p, log_q, log_gamma = theta
        return [log_p, log_q, log_p + log_gamma - log_q]

    def _theta_and_jacobian(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        log_p, log_q, log_typical = u
        jacobian = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 1.0, 1.0]])
        return np.array([log_p, log_q, log_typical + log_q - log_p]), jacobian

    def _likelihood_statistics(self, arrays, group, weights, n_groups) -> GammaGammaStatistics:
        return GammaGammaStatistics.from_rows(
            group, arrays["frequency"], arrays["monetary_value"], weights, n_groups
        )

    def _graph_terms(self, stats: GammaGammaStatistics) -> int:
        return stats.graph_terms

    def _total_log_likelihood(self, params, stats, fused=True):
        return gamma_gamma_total_log_likelihood(*(params[k] for k in self.param_names), stats)

    def _pointwise_log_likelihood(self, params, stats) -> np.ndarray:
        return gamma_gamma_pointwise(*(params[k] for k in self.param_names), stats)
