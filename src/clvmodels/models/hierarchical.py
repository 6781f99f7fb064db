"""Bayesian BG/NBD and Gamma-Gamma models in PyMC, pooled or hierarchical.

Customers often fall into groups (acquisition cohort, channel, region) whose
purchase and spend behaviour differ. :class:`HierarchicalBetaGeo` and
:class:`HierarchicalGammaGamma` give every group its own population parameters
and let small groups borrow strength from the rest; without ``group_col`` they are
plain (pooled) Bayesian versions of :class:`~clvmodels.BetaGeo` and
:class:`~clvmodels.GammaGamma`.

Model
-----
Each model describes a group by a few coordinates, all on the log scale, chosen so
that the data inform them nearly independently (this is what lets the sampler move
freely; in the raw parameters the posterior correlations reach 0.94 for BG/NBD and
0.97 for Gamma-Gamma on CDNOW):

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

For a coordinate ``u`` of group ``g``::

    u_g     = mu_u + sigma_u * z_g,    z_g ~ Normal(0, 1)
    mu_u    ~ Normal(m_u, 2)
    sigma_u ~ HalfNormal(group_sigma)       # group_sigma defaults to 0.5

so groups are log-normal around a population median (``exp(mu)`` in each
coordinate) with between-group spread ``sigma`` on the log scale; 0.5 means groups
typically within a factor of about 2.7 of one another. The pooled model is
``u ~ Normal(m_u, 2)``. Centres that depend on the data (``log_rate``,
``log_typical_spend``) follow its units, so changing weeks to days moves the prior
with the data. Override any prior with ``priors``, e.g.
``{"log_r": {"mu": -1.0, "sigma": 1.0}, "group_sigma": 0.3}`` or
``{"group_sigma": {"log_dropout_odds": 1.0}}``.

Parameterisation
----------------
The *posterior* is the one above whatever ``fit(centering=...)`` says; centring
only changes the coordinates the sampler moves in, which decides how fast it
mixes. With ``centering="noncentered"`` every group uses the non-centred form shown
above, best when a group's own data say little. Where a group's own data pin a
coordinate to well within the spread between groups, the non-centred form is slow
(the offset has to move in lockstep with ``mu`` and ``sigma``), so with
``centering="auto"`` (default) that entry is sampled centred instead, as
``u_g = m_g + L_g v`` around the group's maximum-likelihood estimate ``m_g``,
whitened by the Cholesky factor ``L_g`` of its covariance (an affine change of
variables with constant Jacobian: the posterior is unchanged). An entry is
centred when its standard error is below half a cautious (low) estimate
of the between-group spread, taken from the groups' MLEs by the method of moments
(Papaspiliopoulos, Roberts & Sköld 2007 on why neither form suits every group).
The population coordinates, and the whole pooled model, are whitened around their
Laplace approximation.

With few, similar groups (CDNOW's three acquisition months) the spread ``sigma``
is barely identified and its posterior reaches from almost 0 to the prior's
scale; neither form fits both ends, and a handful of divergent transitions can
remain; so can small groups beside a weakly identified spread. Grouped fits
therefore default to ``target_accept=0.9``; 0.95 (passed to ``fit``) reduces
divergences further at the cost of longer trajectories. Only where at least six
groups each pin their own parameters (maximum-likelihood standard errors below the
between-group spread on every coordinate) is the posterior free of such regions,
and nutpie's 0.8 applies: on a million customers in ten groups that halves the
leapfrog steps per draw (7 instead of 13) with no divergence.

Likelihood
----------
Written once in PyTensor (:mod:`clvmodels.models._pytensor_likelihoods`) over
compressed rows: customers with identical group, frequency, recency and ``T`` (or
spend) become one weighted row, and count-only terms are evaluated once per
distinct purchase count. For the BG/NBD the per-row terms, nearly all of the cost,
run as one fused Op with its analytic gradient (:mod:`clvmodels.models._fused_rows`);
the plain-PyTensor terms remain the definition, tested equal, and are what NumPyro
translates to JAX. The pointwise log-likelihood stored in ``idata_`` is
expanded back to one value per customer, so ``az.loo(model.idata_)`` is exactly
the uncompressed computation.

Examples
--------
CDNOW by acquisition month (January, February, March 1997):

>>> from clvmodels import load_cdnow, rfm_summary
>>> from clvmodels.models.hierarchical import HierarchicalBetaGeo
>>> tx = load_cdnow()
>>> summary = rfm_summary(tx, "customer_id", "date", observation_end="1997-09-30")
>>> first = tx.groupby("customer_id")["date"].min()
>>> summary["cohort"] = first.dt.strftime("%b").reindex(summary.index)
>>> model = HierarchicalBetaGeo(group_col="cohort").fit(
...     summary, random_seed=1, progressbar=False)  # doctest: +SKIP
>>> model.params_.round(2)  # doctest: +SKIP
           r  alpha     a     b
cohort
Feb     0.24   4.23  0.82  2.52
Jan     0.24   4.55  0.79  2.55
Mar     0.25   4.59  1.00  3.14

The three months barely differ, and PSIS-LOO says the grouping does not pay for
its extra parameters (see :func:`compare_loo`).

References
----------
Fader, Hardie & Lee (2005), "'Counting Your Customers' the Easy Way", *Marketing
Science* 24(2). Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value".
Papaspiliopoulos, Roberts & Sköld (2007), "A General Framework for the
Parametrization of Hierarchical Models", *Statistical Science* 22(1).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from clvmodels.data import compress, validate_summary
from clvmodels.errors import ConvergenceError, DataValidationError, SamplingWarning
from clvmodels.models._pytensor_likelihoods import (
    BetaGeoStatistics,
    GammaGammaStatistics,
    as_data,
    bgnbd_pointwise,
    bgnbd_total_log_likelihood,
    gamma_gamma_pointwise,
    gamma_gamma_total_log_likelihood,
)
from clvmodels.models._sampling import run_inference, sample_density
from clvmodels.models.base import BaseModel
from clvmodels.models.beta_geo import BetaGeo, BetaGeoPredictions
from clvmodels.models.gamma_gamma import GammaGamma, GammaGammaPredictions

__all__ = [
    "HierarchicalBetaGeo",
    "HierarchicalGammaGamma",
    "SamplingWarning",
    "compare_loo",
]

FORMAT_VERSION = 1
DEFAULT_GROUP_SIGMA = 0.5
DEFAULT_PRIOR_SIGMA = 2.0
# Pointwise log-likelihood is n_draws x n_customers floats; above this many values
# (400 MB) it is left out unless asked for.
LOG_LIKELIHOOD_LIMIT = 50_000_000
RHAT_LIMIT = 1.01
ESS_LIMIT = 400
# centering="auto" samples a group's coordinate centred when its standard error is
# below this fraction of (a low estimate of) the between-group spread.
CENTRE_FRACTION = 0.5
# Unless many groups, each pinned down by its own data, pin down the spread between
# them, its posterior has a long, narrowing tail: NUTS then takes smaller steps.
FEW_GROUPS = 6
LOOSE_GROUPS_TARGET_ACCEPT = 0.9

# The coordinate maps run in the PyTensor graph and on NumPy posterior draws alike.
_PYTENSOR_OPS = SimpleNamespace(exp=pt.exp, log_sigmoid=lambda v: -pt.softplus(-v))
_NUMPY_OPS = SimpleNamespace(exp=np.exp, log_sigmoid=lambda v: -np.logaddexp(0.0, -v))


@contextlib.contextmanager
def _arviz_without_numba() -> Iterator[None]:
    """Run ArviZ diagnostics in plain NumPy, restoring the user's setting after.

    With Numba installed ArviZ JIT-compiles its R-hat helpers on first use (about
    0.4 s); for a few parameters NumPy is faster than that compilation.
    """
    from arviz.utils import Numba

    enabled = bool(Numba.numba_flag)
    if enabled:
        Numba.disable_numba()
    try:
        yield
    finally:
        if enabled:
            Numba.enable_numba()


@dataclass
class _Prepared:
    """A validated summary reduced to what the likelihood needs."""

    customers: pd.Index  # customers in the likelihood
    groups: pd.Index  # group labels (strings); one pseudo-group when pooled
    rows: pd.DataFrame  # distinct rows, with column "_group" (group code)
    weights: np.ndarray
    inverse: np.ndarray  # customer -> row
    stats: Any
    n_excluded: int
    scale: float  # data scale for the data-dependent prior centre


def _group_labels(data: pd.DataFrame, group_col: str, context: str) -> pd.Series:
    if group_col not in data.columns:
        raise DataValidationError(
            f"{context}: column '{group_col}' (group_col) is missing; columns are "
            f"{list(data.columns)}"
        )
    labels = data[group_col]
    missing = labels.isna().to_numpy()
    if missing.any():
        raise DataValidationError(
            f"{context}: column '{group_col}': {int(missing.sum())} of {len(data)} rows are "
            f"missing (NaN); first customer ids {list(data.index[missing][:5])}"
        )
    # Groups are matched by their string form, which also survives NetCDF.
    return labels.astype(str)


class _BayesianModel(BaseModel, register=False):
    """What the Bayesian transaction and spend models share."""

    _mle_class: ClassVar[type]
    _columns: ClassVar[tuple[str, ...]]
    _log_likelihood_name: ClassVar[str]
    coordinates: ClassVar[tuple[str, ...]]  # the hierarchy's log-scale coordinates

    def __init__(
        self, group_col: str | None = None, priors: Mapping[str, Any] | None = None
    ) -> None:
        self.group_col = group_col
        self.priors = priors

    # -- subclass hooks ---------------------------------------------------------------
    def _prepare(self, data: pd.DataFrame, context: str) -> _Prepared:
        raise NotImplementedError

    def _default_prior_mu(self, prep: _Prepared) -> dict[str, float]:
        raise NotImplementedError

    @staticmethod
    def _total_log_likelihood(params: list, stats: Any, fused: bool) -> pt.TensorVariable:
        raise NotImplementedError

    @staticmethod
    def _pointwise(params: list, stats: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def _to_params(ops: Any, u: Any) -> list:
        """Model parameters (in ``param_names`` order) from coordinates ``u[..., k]``."""
        raise NotImplementedError

    @staticmethod
    def _to_coordinates(log_params: np.ndarray) -> np.ndarray:
        """Coordinates from log-parameters ``(..., n_params)``."""
        raise NotImplementedError

    def _params_from_coordinates(self, u: np.ndarray) -> dict[str, np.ndarray]:
        values = self._to_params(_NUMPY_OPS, np.asarray(u, dtype=float))
        return dict(zip(self.param_names, values, strict=True))

    # -- shared preparation -----------------------------------------------------------
    def _compress(self, data: pd.DataFrame, context: str) -> tuple[pd.Index, pd.DataFrame, Any]:
        if self.group_col is None:
            labels = pd.Series("all", index=data.index)
        else:
            labels = _group_labels(data, self.group_col, context)
        groups = pd.Index(sorted(labels.unique()), dtype=object)
        codes = groups.get_indexer(labels)
        frame = data[list(self._columns)].assign(_group=codes)
        rows, weights, inverse = compress(frame, columns=self._columns, extra=("_group",))
        return groups, rows, (weights, inverse)

    def _resolve_priors(self, prep: _Prepared) -> dict[str, Any]:
        names = list(self.coordinates)
        user = dict(self.priors or {})
        unknown = set(user) - {*names, "group_sigma"}
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown prior keys {sorted(unknown)}; allowed are "
                f"{[*names, 'group_sigma']}"
            )
        mus = self._default_prior_mu(prep)
        resolved: dict[str, Any] = {}
        for name in names:
            spec = user.get(name, {})
            if not isinstance(spec, Mapping) or set(spec) - {"mu", "sigma"}:
                raise ValueError(
                    f"prior for {name!r} must be a dict with keys 'mu' and/or 'sigma' (a "
                    f"normal prior on that log-scale coordinate), got {spec!r}"
                )
            mu = float(spec.get("mu", mus[name]))
            sigma = float(spec.get("sigma", DEFAULT_PRIOR_SIGMA))
            if not np.isfinite(mu) or not np.isfinite(sigma) or sigma <= 0:
                raise ValueError(f"prior for {name!r} needs finite mu and sigma > 0, got {spec}")
            resolved[name] = {"mu": mu, "sigma": sigma}
        group_sigma = user.get("group_sigma", DEFAULT_GROUP_SIGMA)
        if not isinstance(group_sigma, Mapping):
            group_sigma = dict.fromkeys(names, group_sigma)
        elif set(group_sigma) - set(names):
            raise ValueError(f"group_sigma keys must be among {names}, got {list(group_sigma)}")
        resolved["group_sigma"] = {
            name: float(group_sigma.get(name, DEFAULT_GROUP_SIGMA)) for name in names
        }
        if any(not v > 0 for v in resolved["group_sigma"].values()):
            raise ValueError(f"group_sigma must be positive, got {resolved['group_sigma']}")
        return resolved

    def _mle(self, prep: _Prepared, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """MLE of the coordinates on the rows in ``mask`` and its covariance, or None."""
        if mask.sum() < len(self.param_names):
            return None
        rows = self._mle_frame(prep.rows.loc[mask, list(self._columns)].reset_index(drop=True))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mle = self._mle_class().fit(rows, weights=prep.weights[mask])
        except (ConvergenceError, ValueError, np.linalg.LinAlgError):
            return None
        cov = mle.covariance_log_.to_numpy()
        if not np.all(np.isfinite(cov)) or np.linalg.eigvalsh(cov).min() <= 0:
            return None
        log_params = np.log(mle.params_.to_numpy())
        # Delta method: the coordinates are smooth functions of the log-parameters.
        jac = np.empty((len(self.coordinates), len(log_params)))
        for j in range(len(log_params)):
            step = np.zeros(len(log_params))
            step[j] = 1e-6
            jac[:, j] = (
                self._to_coordinates(log_params + step) - self._to_coordinates(log_params - step)
            ) / 2e-6
        return self._to_coordinates(log_params), jac @ cov @ jac.T

    def _preconditioning(
        self, prep: _Prepared, m0: np.ndarray, s0: np.ndarray, centering: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
        """Affine coordinates for the sampler, from maximum-likelihood fits.

        Returns the centre and Cholesky factor of the population coordinates (the
        whole model when pooled), and per group and coordinate whether to sample it
        centred, with the MLE and the Cholesky factor (of the centred block of its
        covariance) to centre it on. None of this changes the posterior. The last
        item says whether the groups pin the model down: at least ``FEW_GROUPS``
        of them, each with standard errors below the between-group spread on every
        coordinate (then the posterior has no funnel-shaped region).
        """
        codes = prep.rows["_group"].to_numpy()
        G, K = len(prep.groups), len(self.coordinates)
        grouped = self.group_col is not None
        group_mles = [self._mle(prep, codes == g) for g in range(G)] if grouped else []
        # Between-group spread of each coordinate by the method of moments: the
        # variance of the group MLEs less their average sampling variance, over the
        # groups whose MLE is informative (a noisy one would swamp the difference).
        known = [m for m in group_mles if m is not None and np.all(np.diag(m[1]) < 1.0)]
        spread = np.zeros(K)
        if len(known) >= 2:
            estimates = np.stack([m[0] for m in known])
            noise = np.stack([np.diag(m[1]) for m in known]).mean(axis=0)
            spread = np.sqrt(np.maximum(estimates.var(axis=0, ddof=1) - noise, 0.0))
            # With few groups the spread is itself uncertain (relative sd about
            # 1/sqrt(2(n-1))) and its posterior reaches down towards 0, where a
            # centred group would sit in a funnel: centre against a low estimate.
            low = max(0.0, 1.0 - 1.5 / np.sqrt(2.0 * (len(known) - 1)))
            spread_low = spread * low
        else:
            spread_low = spread

        pooled = self._mle(prep, np.ones(len(codes), dtype=bool))
        if pooled is None:
            centre, chol = m0.copy(), np.diag(s0)
        else:
            # Laplace approximation of the population posterior: likelihood (widened
            # by the spread of G groups around their mean) times the prior.
            m_hat, cov = pooled
            cov = cov + np.diag(spread**2 / max(G, 1))
            post_cov = np.linalg.inv(np.linalg.inv(cov) + np.diag(1 / s0**2))
            centre = post_cov @ (np.linalg.solve(cov, m_hat) + m0 / s0**2)
            chol = np.linalg.cholesky(post_cov)

        centred = np.zeros((G, K), dtype=bool)
        loc, scale = np.zeros((G, K)), np.zeros((G, K, K))
        for g, mle in enumerate(group_mles):
            if mle is None or centering == "noncentered":
                continue
            sd = np.sqrt(np.diag(mle[1]))
            centred[g] = True if centering == "centered" else sd < CENTRE_FRACTION * spread_low
            # Whiten the centred coordinates of the group jointly: their MLE
            # covariance carries the correlations the sampler would otherwise meet.
            block = np.ix_(centred[g], centred[g])
            if centred[g].any():
                scale[g][block] = np.linalg.cholesky(mle[1][block])
            loc[g] = mle[0]
        pinned = G >= FEW_GROUPS and all(
            mle is not None and np.all(np.sqrt(np.diag(mle[1])) < spread)
            for mle in group_mles
        )
        return centre, chol, centred, loc, scale, pinned

    # -- pooled density without a graph ------------------------------------------------
    def _pooled_density(
        self, prep: _Prepared, priors: Mapping[str, Any]
    ) -> tuple[Callable, Callable, np.ndarray]:
        """The pooled model's log density and gradient in NumPy, and its expansion.

        The same density as the PyMC model of :meth:`_build_model` (tested equal):
        whitened coordinates ``v``, ``mu = centre + L v`` with a normal prior, and the
        likelihood with the analytic gradient of the maximum-likelihood fitter,
        taken through the Jacobian of the coordinate map. A pooled posterior has
        three or four dimensions; compiling a graph for it costs more than the
        sampling does.
        """
        names = list(self.coordinates)
        m0 = np.array([priors[k]["mu"] for k in names])
        s0 = np.array([priors[k]["sigma"] for k in names])
        centre, chol, *_ = self._preconditioning(prep, m0, s0, "auto")
        fitter = self._mle_class()
        weights = prep.weights
        arrays = fitter._with_cache(
            {c: prep.rows[c].to_numpy(dtype=float) for c in self._columns}, weights
        )
        log_normaliser = float(np.sum(-np.log(s0) - 0.5 * np.log(2 * np.pi)))

        def log_density(v: np.ndarray) -> tuple[float, np.ndarray]:
            mu = centre + chol @ v
            log_params, jacobian = self._log_params_and_jacobian(mu)
            # Far in the tails terms overflow to inf: that point is rejected, quietly.
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                neg_loglik, grad = fitter._neg_loglik_grad(log_params, arrays, weights)
            z = (mu - m0) / s0
            value = -float(neg_loglik) + log_normaliser - 0.5 * float(z @ z)
            if not np.isfinite(value):
                return -np.inf, np.zeros_like(v)
            return value, chol.T @ (-(jacobian.T @ grad) - z / s0)

        def expand(v: np.ndarray) -> list[np.ndarray]:
            return self._to_params(_NUMPY_OPS, centre + chol @ v)

        return log_density, expand, np.zeros(len(names))

    @staticmethod
    def _log_params_and_jacobian(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log-parameters at coordinates ``u`` and their derivative (param x coord)."""
        raise NotImplementedError

    # -- model construction -----------------------------------------------------------
    def _build_model(
        self, prep: _Prepared, priors: Mapping[str, Any], centering: str, fused: bool = True
    ) -> tuple[pm.Model, list[str], dict[str, Any], bool]:
        coords_ = list(self.coordinates)
        K = len(coords_)
        G = len(prep.groups)
        m0 = np.array([priors[k]["mu"] for k in coords_])
        s0 = np.array([priors[k]["sigma"] for k in coords_])
        tau = np.array([priors["group_sigma"][k] for k in coords_])
        grouped = self.group_col is not None
        dims = {self.group_col: list(prep.groups)} if grouped else {}
        centre, chol, centred, loc, scale, pinned = self._preconditioning(
            prep, m0, s0, centering
        )
        forms = {
            str(prep.groups[g]): [k for j, k in enumerate(coords_) if centred[g, j]]
            for g in range(G)
        }

        # Numbers that change with the data enter as shared data, so that the compiled
        # C code is reused across data sets (see as_data).
        m0_d, s0_d, tau_d = as_data(m0), as_data(s0), as_data(tau)
        centre, chol, loc, scale = as_data(centre), as_data(chol), as_data(loc), as_data(scale)
        with pm.Model(coords=dims) as model:
            # Population coordinates (the only ones when pooled), in whitened form:
            # mu = centre + L v has a constant Jacobian.
            v = pm.Flat("population_offset", shape=K)
            mu = centre + (chol * v[None, :]).sum(axis=-1)
            pm.Potential("population_prior", pm.logp(pm.Normal.dist(m0_d, s0_d), mu).sum())
            if not grouped:
                u = mu[None, :]
            else:
                for j, k in enumerate(coords_):
                    pm.Deterministic(f"mu_{k}", mu[j])
                sigma = pt.stack(
                    [pm.HalfNormal(f"sigma_{k}", sigma=tau_d[j]) for j, k in enumerate(coords_)]
                )
                w = pm.Flat("group_offset", shape=(G, K))
                u_centred = loc + (scale * w[:, None, :]).sum(axis=-1)
                u = pt.where(centred, u_centred, mu + sigma * w)
                log_prior = pt.where(
                    centred,
                    pm.logp(pm.Normal.dist(mu, sigma), u_centred),
                    pm.logp(pm.Normal.dist(0.0, 1.0), w),
                )
                pm.Potential("group_prior", log_prior.sum())
            params = []
            for name, value in zip(
                self.param_names, self._to_params(_PYTENSOR_OPS, u), strict=True
            ):
                if grouped:
                    params.append(pm.Deterministic(name, value, dims=self.group_col))
                else:
                    params.append(pm.Deterministic(name, value[0])[None])
            pm.Potential(
                "log_likelihood", self._total_log_likelihood(params, prep.stats, fused)
            )
        keep = list(self.param_names) + (
            [f"mu_{k}" for k in coords_] + [f"sigma_{k}" for k in coords_] if grouped else []
        )
        return model, keep, forms, pinned

    # -- fitting ------------------------------------------------------------------------
    def fit(
        self,
        data: pd.DataFrame,
        method: str = "nuts",
        sampler: str = "nutpie",
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        random_seed: Any = None,
        progressbar: bool = True,
        *,
        backend: str = "auto",
        centering: str = "auto",
        log_likelihood: bool | None = None,
        **kwargs: Any,
    ) -> _BayesianModel:
        """Fit the model by MCMC (default), ADVI or MAP.

        Parameters
        ----------
        data : DataFrame
            Summary frame (see :func:`clvmodels.rfm_summary`), with ``group_col``
            when the model is grouped.
        method : {"nuts", "advi", "map"}
            NUTS sampling; mean-field ADVI followed by ``draws`` draws from the
            approximation (pass ``n=`` for the number of iterations, default 30,000);
            or the posterior mode (a single "draw": no uncertainty).
        sampler : {"nutpie", "pymc", "numpyro"}
            NUTS implementation. NumPyro is optional and must be installed.
        draws, tune, chains : int
            Posterior draws and tuning steps per chain, number of chains.
        random_seed : int or numpy Generator, optional
            Seed for reproducible results.
        progressbar : bool
            Show the sampler's progress.
        backend : {"auto", "numpy", "c", "numba"}
            How nutpie evaluates the model. ``"numpy"`` (pooled models only): the
            same density in NumPy with the maximum-likelihood fitter's analytic
            gradient, nothing to compile. ``"c"``: the PyMC graph on PyTensor's C
            backend through a Python callback (compiles in a second or two). With
            both, on Linux the chains run in processes forked after set-up
            (``cores=1`` keeps them in this process). ``"numba"``: nutpie's own
            route (compiles in 5-30 s, cheaper per evaluation of generic graph
            operations). ``"auto"`` picks ``"numpy"`` for pooled models; for
            grouped ones ``"c"`` up to 5,000 terms left to generic graph
            operations and ``"numba"`` above, which means always ``"c"`` for the
            BG/NBD (its per-row terms run in one fused loop, fastest there) and by
            the number of distinct rows for the Gamma-Gamma.
        centering : {"auto", "noncentered", "centered"}
            Coordinates the sampler uses for group parameters (see the module
            notes); the posterior is the same.
        log_likelihood : bool, optional
            Store the pointwise log-likelihood per customer (needed for LOO).
            Default: when it takes at most 50 million values.
        **kwargs
            Passed to ``nutpie.sample``, ``pm.sample``, ``pm.fit`` or ``pm.find_MAP``
            (e.g. ``target_accept``, 0.9 by default for grouped models unless
            six or more groups each pin their parameters, else nutpie's 0.8; or
            ``cores``,
            by default one per chain up to the number of CPUs).

        Returns
        -------
        self
        """
        if centering not in ("auto", "noncentered", "centered"):
            raise ValueError(
                f"centering must be 'auto', 'noncentered' or 'centered', got {centering!r}"
            )
        context = f"{type(self).__name__}.fit"
        data = validate_summary(data, require_monetary=self._needs_monetary, context=context)
        prep = self._prepare(data, context)
        priors = self._resolve_priors(prep)
        pooled_numpy = (
            method == "nuts"
            and sampler == "nutpie"
            and self.group_col is None
            and backend in ("auto", "numpy")
        )
        if backend == "numpy" and not pooled_numpy:
            raise ValueError(
                "backend='numpy' samples pooled models (no group_col) with nutpie only; "
                "use 'auto', 'c' or 'numba' here"
            )
        if pooled_numpy:
            log_density, expand, start = self._pooled_density(prep, priors)
            keep, forms = list(self.param_names), {str(g): [] for g in prep.groups}
            idata = sample_density(
                lambda: log_density,
                lambda: expand,
                start,
                keep,
                draws=int(draws),
                tune=int(tune),
                chains=int(chains),
                random_seed=random_seed,
                progressbar=progressbar,
                **kwargs,
            )
        else:
            # NumPyro translates the graph to JAX, which knows no Numba-compiled Op.
            fused = not (method == "nuts" and sampler == "numpyro")
            model, keep, forms, pinned = self._build_model(prep, priors, centering, fused)
            if method == "nuts" and self.group_col is not None and not pinned:
                kwargs.setdefault("target_accept", LOOSE_GROUPS_TARGET_ACCEPT)
            idata = run_inference(
                model,
                keep,
                method=method,
                sampler=sampler,
                backend=backend,
                n_terms=prep.stats.graph_terms,
                draws=int(draws),
                tune=int(tune),
                chains=int(chains),
                random_seed=random_seed,
                progressbar=progressbar,
                **kwargs,
            )
        idata = self._finish_idata(idata, prep, log_likelihood)
        config = {
            "format_version": FORMAT_VERSION,
            "group_col": self.group_col,
            "priors": self.priors,
            "priors_resolved": priors,
            "groups": [str(g) for g in prep.groups],
            "method": method,
            "sampler": sampler if method == "nuts" else None,
            "centering": forms,
            "time_unit": data.attrs.get("time_unit"),
            "n_customers": len(prep.customers),
            "n_excluded": prep.n_excluded,
            "n_rows": len(prep.rows),
        }
        idata.posterior.attrs["clvmodels_model"] = type(self).__name__
        idata.posterior.attrs["clvmodels_config"] = json.dumps(config)
        self._set_from_idata(idata, config)
        if method == "nuts":
            self._check_convergence()
        return self

    _needs_monetary: ClassVar[bool] = False

    @staticmethod
    def _mle_frame(rows: pd.DataFrame) -> pd.DataFrame:
        return rows

    def _finish_idata(
        self, idata: az.InferenceData, prep: _Prepared, log_likelihood: bool | None
    ) -> az.InferenceData:
        posterior = idata.posterior
        n_values = posterior.sizes["chain"] * posterior.sizes["draw"] * len(prep.customers)
        if log_likelihood is None:
            log_likelihood = n_values <= LOG_LIKELIHOOD_LIMIT
            if not log_likelihood:
                warnings.warn(
                    f"{type(self).__name__}: pointwise log-likelihood not stored "
                    f"({n_values:,} values for {len(prep.customers):,} customers); pass "
                    "log_likelihood=True to keep it (needed for LOO).",
                    UserWarning,
                    stacklevel=3,
                )
        if log_likelihood:
            params = []
            for k in self.param_names:
                values = posterior[k].to_numpy()
                params.append(values if self.group_col else values[..., None])
            per_row = self._pointwise(params, prep.stats)
            per_customer = per_row[..., prep.inverse]
            dim = "customer"
            ll = az.from_dict(
                log_likelihood={self._log_likelihood_name: per_customer},
                dims={self._log_likelihood_name: [dim]},
                coords={dim: _netcdf_safe(prep.customers)},
            )
            idata.add_groups(log_likelihood=ll.log_likelihood)
        return idata

    # -- fitted state ---------------------------------------------------------------
    def _set_from_idata(self, idata: az.InferenceData, config: Mapping[str, Any]) -> None:
        self.idata_ = idata
        self.config_ = dict(config)
        self.time_unit_ = config.get("time_unit")
        self.n_obs_ = int(config.get("n_customers", 0))
        self.n_excluded_ = int(config.get("n_excluded", 0))
        self.priors_ = config.get("priors_resolved")
        self.centering_ = config.get("centering")
        post = idata.posterior
        names = list(self.param_names)
        if self.group_col is None:
            self.groups_ = None
            self.params_ = pd.Series(
                [float(post[k].mean()) for k in names], index=names, name="estimate"
            )
            self.population_params_ = self.params_.copy()
        else:
            self.groups_ = pd.Index([str(g) for g in post[self.group_col].to_numpy()], dtype=object)
            table = pd.DataFrame(
                {k: post[k].mean(("chain", "draw")).to_numpy() for k in names},
                index=pd.Index(self.groups_, name=self.group_col),
            )
            self.params_ = table
            u = np.array([float(post[f"mu_{k}"].mean()) for k in self.coordinates])
            population = self._params_from_coordinates(u)
            self.population_params_ = pd.Series(
                [float(population[k]) for k in names], index=names, name="population"
            )

    def __repr__(self) -> str:
        if not self.is_fitted:
            return f"<{type(self).__name__} (not fitted)>"
        if self.group_col is None:
            inner = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
            return f"<{type(self).__name__} fitted: {inner}>"
        return (
            f"<{type(self).__name__} fitted on {len(self.groups_)} groups of "
            f"'{self.group_col}'>"
        )

    def _check_convergence(self) -> None:
        post = self.idata_.posterior
        problems = []
        if post.sizes["chain"] > 1 and post.sizes["draw"] >= 4:
            with _arviz_without_numba():
                rhat = az.rhat(post)
                ess = az.ess(post, method="bulk")
            bad_rhat = _flagged(rhat, lambda v: v > RHAT_LIMIT)
            bad_ess = _flagged(ess, lambda v: v < ESS_LIMIT)
            if bad_rhat:
                problems.append(f"R-hat > {RHAT_LIMIT} for {', '.join(bad_rhat)}")
            if bad_ess:
                problems.append(f"bulk ESS < {ESS_LIMIT} for {', '.join(bad_ess)}")
        stats = getattr(self.idata_, "sample_stats", None)
        if stats is not None and "diverging" in stats:
            n_div = int(stats["diverging"].sum())
            if n_div:
                problems.append(f"{n_div} divergent transitions after tuning")
        if problems:
            warnings.warn(
                f"{type(self).__name__}: {'; '.join(problems)}. The posterior summaries may "
                "be unreliable: run more tune/draws, check the data for extreme customers, "
                "or tighten the priors.",
                SamplingWarning,
                stacklevel=3,
            )
        self.sampling_problems_ = problems

    # -- contract ---------------------------------------------------------------------
    def _posterior_matrix(self, name: str) -> np.ndarray:
        """Posterior draws of ``name`` stacked over chains: (n_samples, ...)."""
        values = self.idata_.posterior[name].to_numpy()
        return values.reshape((-1, *values.shape[2:]))

    def summary(self, interval: float = 0.95) -> pd.DataFrame:
        """Posterior mean, sd, equal-tailed ``interval`` and diagnostics.

        Grouped models return one row per parameter and group, then the
        hyperparameters ``mu_*`` (population median of each coordinate) and
        ``sigma_*`` (between-group sd on the log scale) with an empty group.
        """
        self._check_fitted()
        if not 0 < interval < 1:
            raise ValueError(f"interval must lie in (0, 1), got {interval}")
        post = self.idata_.posterior
        names = [v for v in post.data_vars]
        diagnostics = post.sizes["chain"] > 1 and post.sizes["draw"] >= 4
        with _arviz_without_numba():
            rhat = az.rhat(post) if diagnostics else None
            ess_bulk = az.ess(post, method="bulk") if diagnostics else None
            ess_tail = az.ess(post, method="tail") if diagnostics else None
        pct = f"{100 * interval:g}%"
        records, index = [], []
        for name in names:
            samples = self._posterior_matrix(name)
            labels = list(self.groups_) if samples.ndim == 2 else [""]
            samples = samples.reshape(samples.shape[0], -1)
            for j, label in enumerate(labels):
                col = samples[:, j]

                def diag(ds, _name=name, _j=j):
                    if ds is None:
                        return np.nan
                    return float(np.ravel(ds[_name].to_numpy())[_j])

                records.append(
                    {
                        "estimate": float(col.mean()),
                        "sd": float(col.std(ddof=1)) if len(col) > 1 else np.nan,
                        f"lower {pct}": float(np.quantile(col, (1 - interval) / 2)),
                        f"upper {pct}": float(np.quantile(col, (1 + interval) / 2)),
                        "ess_bulk": diag(ess_bulk),
                        "ess_tail": diag(ess_tail),
                        "r_hat": diag(rhat),
                    }
                )
                index.append((name, label))
        if self.group_col is None:
            idx = pd.Index([n for n, _ in index], name="parameter")
        else:
            idx = pd.MultiIndex.from_tuples(index, names=["parameter", self.group_col])
        table = pd.DataFrame(records, index=idx)
        table.attrs.update(
            {
                "n_obs": self.n_obs_,
                "n_excluded": self.n_excluded_,
                "method": self.config_.get("method"),
                "note": "; ".join(getattr(self, "sampling_problems_", []) or []),
            }
        )
        return table

    def param_draws(self, n: int, random_state: Any = None) -> pd.DataFrame:
        """``n`` draws from the posterior.

        Pooled models return one column per parameter. Grouped models return a
        long frame with columns ``draw``, ``<group_col>`` and the parameters (one row
        per draw and group); its ``attrs["population"]`` holds, per draw, the
        parameters of a new, unseen group (coordinates ``mu + sigma * eps``), which
        predictions use for customers of groups the model was not fitted on.

        Draws are taken without replacement while ``n`` does not exceed the number of
        posterior samples.
        """
        self._check_fitted()
        n = int(n)
        if n < 1:
            raise ValueError(f"n must be a positive integer, got {n}")
        rng = np.random.default_rng(random_state)
        total = self.idata_.posterior.sizes["chain"] * self.idata_.posterior.sizes["draw"]
        pick = rng.choice(total, size=n, replace=n > total)
        names = list(self.param_names)
        if self.group_col is None:
            return pd.DataFrame({k: self._posterior_matrix(k)[pick] for k in names})
        G = len(self.groups_)
        frame = pd.DataFrame(
            {
                "draw": np.repeat(np.arange(n), G),
                self.group_col: np.tile(np.asarray(self.groups_, dtype=object), n),
                **{k: self._posterior_matrix(k)[pick].ravel() for k in names},
            }
        )
        # A new group: coordinates drawn from the population distribution per draw.
        u = np.column_stack(
            [
                self._posterior_matrix(f"mu_{k}")[pick]
                + self._posterior_matrix(f"sigma_{k}")[pick] * rng.standard_normal(n)
                for k in self.coordinates
            ]
        )
        population = self._params_from_coordinates(u)
        frame.attrs["population"] = pd.DataFrame({"draw": np.arange(n), **population})
        return frame

    def _params_for(
        self, data: pd.DataFrame | None, draws: pd.DataFrame | None = None
    ) -> dict[str, np.ndarray]:
        """Each customer's group parameters: ``(n,)``, or ``(n_draws, n)`` with draws."""
        self._check_fitted()
        names = list(self.param_names)
        if self.group_col is None:
            return super()._params_for(data, draws)
        if data is None:
            # The median group: what a new customer of no known group gets.
            return {k: np.asarray(float(self.population_params_[k])) for k in names}
        labels = _group_labels(data, self.group_col, type(self).__name__)
        pos = self.groups_.get_indexer(labels)
        unseen = pos < 0
        if unseen.any():
            new = sorted(pd.unique(labels[unseen]))
            warnings.warn(
                f"{type(self).__name__}: {int(unseen.sum())} customers belong to groups not "
                f"seen in fit ({new[:5]}); they get population-level parameters.",
                UserWarning,
                stacklevel=3,
            )
        safe = np.where(unseen, 0, pos)
        out = {}
        if draws is None:
            for k in names:
                values = self.params_[k].to_numpy()[safe]
                out[k] = np.where(unseen, self.population_params_[k], values)
            return out
        if self.group_col not in draws.columns or "draw" not in draws.columns:
            raise ValueError(
                f"draws must come from {type(self).__name__}.param_draws: expected columns "
                f"'draw' and '{self.group_col}'"
            )
        population = draws.attrs.get("population")
        for k in names:
            wide = draws.pivot(index="draw", columns=self.group_col, values=k)
            wide = wide.reindex(columns=self.groups_)
            values = wide.to_numpy()[:, safe]
            if unseen.any():
                if population is not None:
                    pop = population.set_index("draw")[k].reindex(wide.index).to_numpy()
                else:
                    pop = np.exp(np.nanmean(np.log(wide.to_numpy()), axis=1))
                values = np.where(unseen[None, :], pop[:, None], values)
            out[k] = values
        return out

    def fit_statistics(self) -> dict[str, float]:
        """ELPD-LOO (PSIS, per customer) and its SE; no likelihood-based AIC/BIC."""
        self._check_fitted()
        out = {
            "log_likelihood": np.nan,
            "aic": np.nan,
            "bic": np.nan,
            "elpd_loo": np.nan,
            "elpd_loo_se": np.nan,
            "n_obs": float(self.config_.get("n_customers", np.nan)),
        }
        if "log_likelihood" in self.idata_.groups():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # high Pareto k is reported by az.loo itself
                result = self.loo()
            out["elpd_loo"], out["elpd_loo_se"] = float(result["elpd_loo"]), float(result["se"])
        return out

    def loo(self, **kwargs: Any) -> az.ELPDData:
        """PSIS-LOO expected log predictive density via ``arviz.loo`` (per customer)."""
        self._check_fitted()
        if "log_likelihood" not in self.idata_.groups():
            raise ValueError(
                "no pointwise log-likelihood stored: refit with log_likelihood=True"
            )
        return az.loo(self.idata_, **kwargs)

    # -- persistence ------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the posterior, diagnostics, log-likelihood and configuration to NetCDF."""
        self._check_fitted()
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        self.idata_.to_netcdf(str(tmp))
        tmp.replace(path)
        return path

    @classmethod
    def from_idata(cls, idata: az.InferenceData, source: str = "model file") -> _BayesianModel:
        config = json.loads(idata.posterior.attrs["clvmodels_config"])
        model = cls(group_col=config.get("group_col"), priors=config.get("priors"))
        model._set_from_idata(idata, config)
        return model


def _netcdf_safe(index: pd.Index) -> np.ndarray:
    values = index.to_numpy()
    if values.dtype == object or not (
        np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.str_)
    ):
        return index.astype(str).to_numpy()
    return values


def _flagged(dataset: Any, bad: Any) -> list[str]:
    """Names like ``r[Jan]`` of the entries of ``dataset`` where ``bad`` holds."""
    out = []
    for name, arr in dataset.data_vars.items():
        values = np.atleast_1d(arr.to_numpy())
        labels = (
            [f"{name}[{c}]" for c in arr[arr.dims[0]].to_numpy()] if arr.dims else [name]
        )
        out.extend(label for label, v in zip(labels, values, strict=True) if bad(v))
    return out


class HierarchicalBetaGeo(BetaGeoPredictions, _BayesianModel):
    """Bayesian BG/NBD, pooled or with partially pooled group parameters.

    Parameters
    ----------
    group_col : str, optional
        Column of the summary that names each customer's group. Without it the model
        is pooled: one set of ``r, alpha, a, b``.
    priors : dict, optional
        Overrides of the default priors (see the module notes).

    Attributes
    ----------
    idata_ : arviz.InferenceData
        Posterior (``r, alpha, a, b`` with dims ``(chain, draw[, group_col])`` and,
        for grouped models, the hyperparameters ``mu_<coordinate>`` and
        ``sigma_<coordinate>``), sample stats and the pointwise log-likelihood per
        customer.
    params_ : Series or DataFrame
        Posterior means: a Series for the pooled model, a DataFrame indexed by
        group (columns ``r, alpha, a, b``) for a grouped one.
    population_params_ : Series
        Parameters at the posterior mean of the ``mu_*``: the median group, used
        for new customers and unseen groups.
    groups_ : Index or None
        Group labels (as strings).
    centering_ : dict
        Per group, the coordinates the sampler took in centred form (the others
        were non-centred).

    Examples
    --------
    >>> from clvmodels import load_cdnow, rfm_summary
    >>> from clvmodels.models.hierarchical import HierarchicalBetaGeo
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
    ...                       observation_end="1997-09-30")
    >>> model = HierarchicalBetaGeo().fit(summary, random_seed=1,
    ...                                   progressbar=False)  # doctest: +SKIP
    >>> model.params_.round(2).to_dict()  # doctest: +SKIP
    {'r': 0.24, 'alpha': 4.44, 'a': 0.82, 'b': 2.56}
    """

    param_names = ("r", "alpha", "a", "b")
    coordinates = ("log_rate", "log_r", "log_dropout_odds", "log_concentration")
    _mle_class = BetaGeo
    _columns = ("frequency", "recency", "T")
    _log_likelihood_name = "purchases"

    def _prepare(self, data: pd.DataFrame, context: str) -> _Prepared:
        groups, rows, (weights, inverse) = self._compress(data, context)
        stats = BetaGeoStatistics.from_rows(
            rows["_group"].to_numpy(),
            rows["frequency"].to_numpy(dtype=float),
            rows["recency"].to_numpy(dtype=float),
            rows["T"].to_numpy(dtype=float),
            weights,
            len(groups),
        )
        # Repeat purchases per unit of customer age: the default centre of log_rate.
        purchases = float(np.dot(rows["frequency"].to_numpy(dtype=float), weights))
        exposure = float(np.dot(rows["T"].to_numpy(dtype=float), weights))
        scale = max(purchases, 1.0) / max(exposure, 1e-9)
        return _Prepared(data.index, groups, rows, weights, inverse, stats, 0, scale)

    def _default_prior_mu(self, prep: _Prepared) -> dict[str, float]:
        return {
            "log_rate": float(np.log(prep.scale)),
            "log_r": 0.0,
            "log_dropout_odds": 0.0,
            "log_concentration": 0.0,
        }

    @staticmethod
    def _to_params(ops: Any, u: Any) -> list:
        log_rate, log_r, log_odds, log_conc = (u[..., j] for j in range(4))
        return [
            ops.exp(log_r),
            ops.exp(log_r - log_rate),
            ops.exp(log_conc + ops.log_sigmoid(log_odds)),
            ops.exp(log_conc + ops.log_sigmoid(-log_odds)),
        ]

    @staticmethod
    def _log_params_and_jacobian(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        log_rate, log_r, log_odds, log_conc = u
        share_a = 0.5 * (1.0 + np.tanh(0.5 * log_odds))  # a / (a + b), overflow-free
        log_params = np.array(
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
        return log_params, jacobian

    @staticmethod
    def _to_coordinates(log_params: np.ndarray) -> np.ndarray:
        log_r, log_alpha, log_a, log_b = np.moveaxis(np.asarray(log_params, float), -1, 0)
        return np.stack(
            [log_r - log_alpha, log_r, log_a - log_b, np.logaddexp(log_a, log_b)], axis=-1
        )

    @staticmethod
    def _total_log_likelihood(params: list, stats: Any, fused: bool) -> pt.TensorVariable:
        return bgnbd_total_log_likelihood(*params, stats, fused=fused)

    @staticmethod
    def _pointwise(params: list, stats: Any) -> np.ndarray:
        return bgnbd_pointwise(*params, stats)


class HierarchicalGammaGamma(GammaGammaPredictions, _BayesianModel):
    """Bayesian Gamma-Gamma spend model, pooled or with partially pooled groups.

    Only repeat buyers (frequency > 0) carry spend information; the others are
    left out of the fit and counted in ``n_excluded_`` (their expected spend is the
    group mean). Parameters and attributes are as in :class:`HierarchicalBetaGeo`,
    with ``p, q, gamma``; the stored log-likelihood covers the repeat buyers.

    Examples
    --------
    >>> from clvmodels import load_cdnow, rfm_summary
    >>> from clvmodels.models.hierarchical import HierarchicalGammaGamma
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
    ...                       observation_end="1997-09-30")
    >>> model = HierarchicalGammaGamma().fit(summary, random_seed=1,
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

    param_names = ("p", "q", "gamma")
    coordinates = ("log_p", "log_q", "log_typical_spend")
    _mle_class = GammaGamma
    _columns = ("frequency", "monetary_value")
    _log_likelihood_name = "spend"
    _needs_monetary = True

    def _prepare(self, data: pd.DataFrame, context: str) -> _Prepared:
        repeat = data["frequency"].to_numpy() > 0
        if repeat.sum() < 2:
            raise DataValidationError(
                f"{context}: the Gamma-Gamma model learns spend from repeat buyers "
                f"(frequency > 0); found {int(repeat.sum())} among {len(data)} customers"
            )
        buyers = data.loc[repeat]
        groups_all = None
        if self.group_col is not None:
            # Every group of the data gets parameters, even one without repeat buyers.
            groups_all = pd.Index(
                sorted(_group_labels(data, self.group_col, context).unique()), dtype=object
            )
        groups, rows, (weights, inverse) = self._compress(buyers, context)
        if groups_all is not None:
            rows["_group"] = groups_all.get_indexer(groups[rows["_group"].to_numpy()])
            groups = groups_all
        stats = GammaGammaStatistics.from_rows(
            rows["_group"].to_numpy(),
            rows["frequency"].to_numpy(dtype=float),
            rows["monetary_value"].to_numpy(dtype=float),
            weights,
            len(groups),
        )
        scale = float(np.average(rows["monetary_value"].to_numpy(dtype=float), weights=weights))
        return _Prepared(
            buyers.index, groups, rows, weights, inverse, stats, int((~repeat).sum()), scale
        )

    @staticmethod
    def _mle_frame(rows: pd.DataFrame) -> pd.DataFrame:
        # GammaGamma.fit validates a whole summary but reads only frequency and
        # monetary_value: neutral recency and T let the distinct rows through.
        return rows.assign(recency=0.0, T=1.0)

    def _default_prior_mu(self, prep: _Prepared) -> dict[str, float]:
        return {"log_p": 0.0, "log_q": 0.0, "log_typical_spend": float(np.log(prep.scale))}

    @staticmethod
    def _to_params(ops: Any, u: Any) -> list:
        log_p, log_q, log_typical = (u[..., j] for j in range(3))
        return [ops.exp(log_p), ops.exp(log_q), ops.exp(log_typical + log_q - log_p)]

    @staticmethod
    def _log_params_and_jacobian(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        log_p, log_q, log_typical = u
        jacobian = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 1.0, 1.0]])
        return np.array([log_p, log_q, log_typical + log_q - log_p]), jacobian

    @staticmethod
    def _to_coordinates(log_params: np.ndarray) -> np.ndarray:
        log_p, log_q, log_gamma = np.moveaxis(np.asarray(log_params, float), -1, 0)
        return np.stack([log_p, log_q, log_p + log_gamma - log_q], axis=-1)

    @staticmethod
    def _total_log_likelihood(params: list, stats: Any, fused: bool) -> pt.TensorVariable:
        return gamma_gamma_total_log_likelihood(*params, stats)

    @staticmethod
    def _pointwise(params: list, stats: Any) -> np.ndarray:
        return gamma_gamma_pointwise(*params, stats)


def compare_loo(models: Mapping[str, _BayesianModel], **kwargs: Any) -> pd.DataFrame:
    """Rank fitted Bayesian models by PSIS-LOO (``arviz.compare``).

    The models must have been fitted on the same customers (e.g. a pooled and a
    hierarchical model of one summary) with the pointwise log-likelihood stored.

    Examples
    --------
    With ``pooled`` and ``grouped`` the CDNOW models of the module example (default
    draws, ``random_seed=1``):

    >>> table = compare_loo({"pooled": pooled, "by cohort": grouped})  # doctest: +SKIP
    >>> table[["rank", "elpd_loo", "p_loo", "elpd_diff", "dse"]].round(1)  # doctest: +SKIP
               rank  elpd_loo  p_loo  elpd_diff  dse
    pooled        0   -9586.7    4.5        0.0  0.0
    by cohort     1   -9589.7    8.4        3.0  1.0
    """
    idatas = {}
    for name, model in models.items():
        model._check_fitted()
        if "log_likelihood" not in model.idata_.groups():
            raise ValueError(f"model {name!r} has no pointwise log-likelihood stored")
        idatas[name] = model.idata_
    return az.compare(idatas, **kwargs)
