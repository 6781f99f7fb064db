"""The Bayesian engine: pooled and group-hierarchical fits of any declared model.

A model declared for the maximum-likelihood engine (:mod:`clvmodels.models.mle`:
``param_names``, ``real_params``, ``data_columns`` and one ``log_likelihood(params,
data, ops)``) is also a Bayesian model: the same likelihood, built as a PyTensor
graph through :func:`clvmodels.models.ops.pytensor_ops`, with priors, sampled by
NUTS (nutpie by default), with diagnostics, PSIS-LOO and NetCDF persistence.
:func:`bayesian` makes the Bayesian version of a model class::

    BayesianNBD = bayesian(NBD)
    BayesianNBD(group_col="cohort").fit(summary)

and :class:`BayesianModel` is the mixin behind it: placed before the model class,
``class HierarchicalBetaGeo(BayesianModel, BetaGeo)``, it supplies ``fit``,
``summary``, ``param_draws``, ``fit_statistics`` (ELPD-LOO), ``save``/``load`` and
each customer's group parameters, while the model class keeps its predictions and
simulators.

Model
-----
A group is described by coordinates ``u``: by default each parameter on its
transformed scale (``log_<name>`` for a positive parameter, ``<name>`` for one in
``real_params``). For each coordinate ``k`` and group ``g``::

    u_gk    ~ Normal(mu_k, sigma_k)
    mu_k    ~ Normal(m_k, 2)              # m_k: the model's natural centre for the data
    sigma_k ~ HalfNormal(group_sigma)     # group_sigma defaults to 0.5

so groups are log-normal around a population median with between-group spread
``sigma`` on the log scale. The pooled model (no ``group_col``) is ``u ~ Normal(m,
2)``. ``priors`` overrides any of it: ``{"log_r": {"mu": -1.0, "sigma": 1.0},
"group_sigma": 0.3}`` or ``{"group_sigma": {"log_alpha": 1.0}}``.

Parameterisation
----------------
The posterior above does not depend on the coordinates the sampler moves in, but
how fast NUTS mixes does, and where it meets a funnel it diverges. Whether a group's
parameters are best sampled centred (``u_g`` itself) or non-centred (the offset
``(u_g - mu) / sigma``) depends on how well its own data pin them down compared
with the spread between groups (Papaspiliopoulos, Roberts & Sköld 2007): centred
where the standard error ``s`` is small against ``sigma``, non-centred where it is
large. With few, similar groups ``sigma`` is barely identified and its posterior
reaches across both regimes, so no fixed choice suits it.

The engine therefore chooses per group and per draw (``centering="auto"``). From a
maximum-likelihood fit of each group it takes the estimate ``u_hat_g`` and its
precision ``Lambda_g`` (inverse covariance, in the coordinates; none for a group
whose fit fails or says little) and samples ``v_g`` with::

    P_g = Lambda_g + diag(1 / sigma^2),   u_g = P_g^{-1} (Lambda_g u_hat_g + mu / sigma^2)
                                                + chol(P_g)^{-T} v_g

the mean and Cholesky factor of the conditional posterior of ``u_g`` given ``mu,
sigma`` when the group's likelihood is approximated by a normal one. The map is
triangular (``v_g`` to ``u_g`` at fixed ``mu, sigma``), its log-Jacobian ``-sum
log diag chol(P_g)`` enters the density, and the posterior is unchanged. For a
normal likelihood ``v_g`` is then a posteriori standard normal and independent of
``mu`` and ``sigma``: the funnel is gone in both regimes. In one coordinate this is
the partially non-centred parameterisation with the weight ``w = s^2 / (s^2 +
sigma^2)`` (the share of ``mu`` subtracted), recomputed at every ``sigma``; with no
information (``Lambda_g = 0``) it is the non-centred form, and where the group's data
say much more than the spread allows it is the centred form whitened by the group's
covariance. ``centering_`` reports, per group and coordinate, the centred share
``1 - w`` at the posterior median of ``sigma``. ``centering="noncentered"`` and
``"centered"`` force one form for every group.

The same reasoning applies one level up. Given the spreads, the groups inform the
population median ``mu_k`` with precision ``sum_g 1 / (s_gk^2 + sigma_k^2)``, which
changes several-fold along ``sigma`` when few groups barely identify it; ``mu`` is
sampled as its conditional mean plus its conditional sd times a free variable (and
the correlation of its Laplace approximation). The spreads themselves are sampled as
``sigma = group_sigma * softplus(x)``: on the log scale the half-normal prior is a
steep wall above and a long flat slope below, and steps sized for the slope diverge
at the wall. The pooled model is whitened around its Laplace approximation (the
maximum-likelihood fit times the prior).

Nothing here raises ``target_accept``: nutpie's 0.8 applies, pooled or grouped.

Declarations a model may add
----------------------------
All optional; a model that declares none gets the generic engine.

``coordinates`` and ``_theta_from_coordinates(u, ops)`` / ``_coordinates_from_theta(
theta, ops)``
    A better coordinate map than the transformed parameters (written once with
    ``ops`` like the likelihood), e.g. the BG/NBD's ``log_rate = log(r / alpha)``,
    which makes the posterior nearly orthogonal. ``_theta_and_jacobian(u)`` may
    give the map and its Jacobian in NumPy as a measured speed-up of the pooled route.
``_prior_centre(arrays, weights)``
    Default centre ``m`` of the coordinates; by default the coordinates of the
    maximum-likelihood engine's ``_log_reference``.
``_likelihood_statistics(arrays, group, weights, n_groups)``,
``_total_log_likelihood(params, stats, fused)``, ``_pointwise_log_likelihood(params,
stats)``, ``_graph_terms(stats)``
    A faster total log-likelihood over sufficient statistics (the BG/NBD's fused Op),
    tested equal to the generic graph; the pointwise log-likelihood per row for LOO.
``log_likelihood_var``
    Name of the pointwise log-likelihood in ``idata_.log_likelihood``.

From the maximum-likelihood declaration the engine also takes ``model_settings``
(constructor arguments that define the model, e.g. the BG/CNBD-k's ``k``,
``modified`` and ``max_k``): the Bayesian version takes them, checks them
(``_check_settings``) and saves them. A setting the declaration chooses among discrete
values (``_chosen_settings``: the BG/CNBD-k's integer ``k``, by profile likelihood
unless given) is chosen by the maximum-likelihood fit on all customers that
preconditions the sampler and then held fixed: the posterior is conditional on it
(``fixed_settings_``). Log-likelihood terms that no parameter enters
(``_constant_log_likelihood``, the BG/CNBD-k's regularity term) are left out of the
sampled density and added to the pointwise log-likelihood, so that LOO sees the whole
likelihood.

Examples
--------
>>> from clvmodels import BetaGeo
>>> BayesianBetaGeo = bayesian(BetaGeo)
>>> BayesianBetaGeo.__name__, BayesianBetaGeo.coordinates
('BayesianBetaGeo', ('log_r', 'log_alpha', 'log_a', 'log_b'))
>>> bayesian(BetaGeo) is BayesianBetaGeo
True
>>> from clvmodels import load_cdnow, rfm_summary
>>> summary = rfm_summary(load_cdnow(), "customer_id", "date", observation_end="1997-09-30")
>>> model = BayesianBetaGeo().fit(summary, random_state=1, progressbar=False)  # doctest: +SKIP
>>> model.params_.round(2).to_dict()  # doctest: +SKIP
{'r': 0.24, 'alpha': 4.45, 'a': 0.82, 'b': 2.57}

References
----------
Papaspiliopoulos, Roberts & Sköld (2007), "A General Framework for the
Parametrization of Hierarchical Models", *Statistical Science* 22(1), 59-73.
Gorinova, Moore & Hoffman (2020), "Automatic Reparameterisation of Probabilistic
Programs", ICML.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import math
import numbers
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from clvmodels.data import compress, validate_summary
from clvmodels.errors import (
    ConvergenceError,
    DataValidationError,
    ModelFileError,
    SamplingWarning,
)
from clvmodels.models import ops as _ops
from clvmodels.models._pytensor_likelihoods import as_data
from clvmodels.models._sampling import run_inference, sample_density
from clvmodels.models.base import BaseModel, register_model_factory, write_model_file
from clvmodels.models.covariates import CovariateDesign
from clvmodels.models.mle import DESIGN, MaximumLikelihoodModel

__all__ = ["BayesianModel", "SamplingWarning", "bayesian", "compare_loo"]

#: Version of the configuration stored with a NetCDF model file.
FORMAT_VERSION = 2
DEFAULT_GROUP_SIGMA = 0.5
DEFAULT_PRIOR_SIGMA = 2.0
#: Default prior sd of a covariate coefficient, per standard deviation of its covariate:
#: ``gamma_j ~ Normal(0, 1 / sd(z_j))``, so a one-sd change of a covariate scales its
#: parameters by at most about ``e^2`` with 95% prior probability, in any unit.
DEFAULT_COEFFICIENT_SIGMA = 1.0
# Pointwise log-likelihood is n_draws x n_customers floats; above this many values
# (400 MB) it is left out unless asked for.
LOG_LIKELIHOOD_LIMIT = 50_000_000
# The pointwise log-likelihood is evaluated in blocks of about this many values (draws
# x rows, 128 KiB of floats): small enough that NumPy's temporaries stay in cache and
# below the allocator's threshold for fresh memory maps (each one otherwise mapped and
# faulted in anew: with 200,000 the first evaluation of a CDNOW MBG/NBD posterior took
# 0.6 to 0.9 s against 0.2 to 0.3 s, under load).
POINTWISE_BLOCK = 16_384
RHAT_LIMIT = 1.01
ESS_LIMIT = 400
# A group's maximum-likelihood fit informs the parameterisation in the coordinates
# whose standard error is below this (on the log scale: a factor e); beyond it the
# normal approximation of its likelihood says too little to lean on.
INFORMATIVE_SE = 1.0
# Parameters are loaded within exp(+-_LOG_LIMIT) on their transformed scale, as for
# maximum-likelihood files: beyond it no data could have produced them.
_LOG_LIMIT = 60.0
METHODS = ("nuts", "advi", "map")
SAMPLERS = ("nutpie", "pymc", "numpyro")
BACKENDS = ("auto", "numpy", "c", "numba")
CENTERINGS = ("auto", "noncentered", "centered")


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
    codes: np.ndarray  # group code of each distinct row
    arrays: dict[str, np.ndarray]  # data columns of the distinct rows
    weights: np.ndarray
    inverse: np.ndarray  # customer -> distinct row
    stats: Any
    n_excluded: int
    centre: np.ndarray  # the data's natural centre of the coordinates
    pooled_mle: Any  # maximum-likelihood model on all rows, or None
    time_unit: str | None
    constant: np.ndarray | None  # per customer: log-likelihood terms no parameter enters


@dataclass
class _Conditioning:
    """What the sampler's coordinates are built from (maximum-likelihood fits).

    The population coordinates (the whole model when pooled) come with the centre
    and Cholesky factor of their Laplace approximation, and the Cholesky factor of
    its correlation matrix; each group with its estimate ``u_hat``, the precision
    ``Lambda`` of the coordinates its data inform (zero elsewhere), the Cholesky
    factor of their covariance (for the centred form) and their variances (inf
    where not informed).
    """

    centre: np.ndarray
    chol: np.ndarray
    correlation_chol: np.ndarray
    u_hat: np.ndarray
    precision: np.ndarray
    scale: np.ndarray
    variance: np.ndarray
    # covariate coefficients of a grouped model (pooled across groups): the centre and
    # Cholesky factor of their Laplace approximation
    coefficient_centre: np.ndarray
    coefficient_chol: np.ndarray


@dataclass(frozen=True)
class RowTable:
    """Generic sufficient statistics: the distinct rows, their groups and weights."""

    n_groups: int
    group: np.ndarray
    columns: dict[str, np.ndarray]
    weight: np.ndarray


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


def _whole(value: Any, name: str, minimum: int) -> int:
    """An integer setting of at least ``minimum`` (not a bool, not a float)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def _check_fit_settings(
    method: Any,
    sampler: Any,
    draws: Any,
    tune: Any,
    chains: Any,
    backend: Any,
    centering: Any,
    log_likelihood: Any,
    kwargs: dict[str, Any],
) -> None:
    """Refuse impossible settings before any work, naming the setting."""
    _check_choice(method, "method", METHODS)
    _check_choice(sampler, "sampler", SAMPLERS)
    _check_choice(backend, "backend", BACKENDS)
    _check_choice(centering, "centering", CENTERINGS)
    _whole(draws, "draws", 1)
    _whole(tune, "tune", 0)
    _whole(chains, "chains", 1)
    if log_likelihood is not None and not isinstance(log_likelihood, bool):
        raise ValueError(f"log_likelihood must be True, False or None, got {log_likelihood!r}")
    if "cores" in kwargs:
        _whole(kwargs["cores"], "cores", 1)
    if "n" in kwargs:
        _whole(kwargs["n"], "n", 1)
    if "target_accept" in kwargs:
        value = kwargs["target_accept"]
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not 0 < float(value) < 1
        ):
            raise ValueError(f"target_accept must be a number in (0, 1), got {value!r}")


class BayesianModel(BaseModel, register=False):
    """Bayesian fitting for a declared model, pooled or with partially pooled groups.

    Subclass it before a :class:`~clvmodels.models.mle.MaximumLikelihoodModel`
    declaration (``class HierarchicalBetaGeo(BayesianModel, BetaGeo)``), or let
    :func:`bayesian` do it.

    Parameters
    ----------
    group_col : str, optional
        Column of the summary that names each customer's group. Without it the model
        is pooled: one set of parameters.
    priors : dict, optional
        Overrides of the default priors (see the module notes).
    **settings
        The declaration's ``model_settings`` (e.g. ``k``, ``modified`` and ``max_k``
        of the BG/CNBD-k) and covariate arguments, as its constructor takes them.

    Attributes
    ----------
    idata_ : arviz.InferenceData
        Posterior (the parameters with dims ``(chain, draw[, group_col])`` and, for
        grouped models, the hyperparameters ``mu_<coordinate>`` and
        ``sigma_<coordinate>``), sample stats and the pointwise log-likelihood per
        customer.
    params_ : Series or DataFrame
        Posterior means: a Series for the pooled model, a DataFrame indexed by group
        for a grouped one.
    population_params_ : Series
        Parameters at the posterior mean of the ``mu_*``: the median group, used for
        new customers and unseen groups.
    groups_ : Index or None
        Group labels (as strings).
    fixed_settings_ : dict
        Settings the posterior is conditional on, chosen by the maximum-likelihood fit
        where not given (the BG/CNBD-k's ``{"k": ...}``; each also as ``<name>_``).
    centering_ : dict
        Per group and coordinate, the centred share of the parameterisation the
        sampler used (1: centred, 0: non-centred).
    """

    is_bayesian: ClassVar[bool] = True
    #: Coordinates of a group, in order (default: each parameter's transformed scale).
    coordinates: ClassVar[tuple[str, ...]] = ()
    #: Name of the pointwise log-likelihood in ``idata_.log_likelihood``.
    log_likelihood_var: ClassVar[str] = "observed"
    #: The maximum-likelihood declaration this model is built on (set per class).
    _mle_class: ClassVar[type]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        base = next(
            (
                c
                for c in cls.__mro__
                if issubclass(c, MaximumLikelihoodModel) and not issubclass(c, BayesianModel)
            ),
            None,
        )
        if base is None:
            return
        cls._mle_class = base
        if not cls.coordinates:
            cls.coordinates = tuple(
                name if name in base.real_params else f"log_{name}"
                for name in base.param_names
            )

    def __init__(
        self,
        group_col: str | None = None,
        priors: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        self.group_col = group_col
        self.priors = priors
        # The declaration's own settings (its model_settings, e.g. the BG/CNBD-k's k),
        # then its covariate arguments; all kept unchanged and checked at fit.
        for name, default in self._declared_settings().items():
            setattr(self, name, settings.pop(name, default))
        self._store_covariate_settings(settings)

    @classmethod
    def _declared_settings(cls) -> dict[str, Any]:
        """The declaration's ``model_settings`` and their defaults."""
        names = getattr(cls, "_mle_class", MaximumLikelihoodModel).model_settings
        parameters = inspect.signature(cls._mle_class).parameters if names else {}
        return {name: parameters[name].default for name in names}

    def _model_settings(self) -> dict[str, Any]:
        """The declaration's settings as given to this model."""
        return {name: getattr(self, name) for name in self._declared_settings()}

    def _hold_settings(self, fixed: Mapping[str, Any]) -> None:
        """Hold the settings a maximum-likelihood fit chose (``_chosen_settings``): the
        posterior is conditional on them; each is kept as ``<name>_`` too, as the
        declaration's predictions read it."""
        self.fixed_settings_ = dict(fixed)
        for name, value in fixed.items():
            setattr(self, f"{name}_", value)

    def _checked_fixed_settings(self, fixed: Mapping[str, Any]) -> dict[str, Any]:
        """``fixed`` if the declaration's settings with them held make a valid model
        that needs no other choice, else ValueError naming the setting."""
        declared = self._model_settings()
        unknown = sorted(set(fixed) - set(declared))
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}; {type(self).__name__} has "
                             f"{sorted(declared)}")
        for name, value in fixed.items():
            if declared[name] is not None and declared[name] != value:
                raise ValueError(f"{name} is {value!r} but the settings give {declared[name]!r}")
        model = self._mle_class(**{**declared, **fixed})
        model._check_settings()
        chosen = model._chosen_settings()
        if chosen != dict(fixed):
            raise ValueError(f"the posterior is conditional on {chosen}, got {dict(fixed)}")
        return dict(fixed)

    # -- covariates (pooled coefficients; see the module notes) ------------------------
    def _coefficient_names(self) -> list[str]:
        design = self.covariate_design_
        return [] if design is None else list(design.coefficients)

    def _mle_settings(self, fixed: bool = True) -> dict[str, Any]:
        """Settings for the maximum-likelihood fits that precondition the sampler: the
        declaration's settings (with those the pooled fit chose held, unless ``fixed``
        is False) and the covariates (the penalty is the maximum-likelihood engine's;
        priors replace it)."""
        settings = self._model_settings()
        if fixed:
            settings.update(getattr(self, "fixed_settings_", {}))
        covariates = self._covariate_settings()
        covariates.pop("covariate_penalty", None)
        return {**settings, **covariates}

    def _new_mle(self) -> Any:
        mle = self._mle_class(**self._mle_settings())
        mle._set_covariate_design(self.covariate_design_)
        return mle

    def _full_coordinates_from_theta(self, theta: Sequence[Any], ops: Any) -> list[Any]:
        k = len(self.coordinates)
        return [*self._coordinates_from_theta(list(theta[:k]), ops), *theta[k:]]

    def _full_theta_from_coordinates(self, u: Sequence[Any], ops: Any) -> list[Any]:
        k = len(self.coordinates)
        return [*self._theta_from_coordinates(list(u[:k]), ops), *u[k:]]

    def _full_theta_and_jacobian(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = len(self.coordinates)
        theta, jac = self._theta_and_jacobian(np.asarray(u[:k], dtype=float))
        if len(u) == k:
            return theta, jac
        c = len(u) - k
        full = np.zeros((k + c, k + c))
        full[:k, :k] = jac
        full[k:, k:] = np.eye(c)
        return np.concatenate([theta, u[k:]]), full

    # -- declarations a model may override (see the module notes) ---------------------
    def _theta_from_coordinates(self, u: Sequence[Any], ops: Any) -> list[Any]:
        """Transformed parameters (in ``param_names`` order) from coordinates."""
        return list(u)

    def _coordinates_from_theta(self, theta: Sequence[Any], ops: Any) -> list[Any]:
        """Coordinates from transformed parameters: the inverse map."""
        return list(theta)

    def _theta_and_jacobian(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Transformed parameters at ``u`` and their derivative (parameter x coordinate).

        By forward-mode differentiation of ``_theta_from_coordinates``.
        """
        if type(self)._theta_from_coordinates is BayesianModel._theta_from_coordinates:
            return np.asarray(u, dtype=float), np.eye(len(u))
        return _value_and_jacobian(self._theta_from_coordinates, u)

    def _prior_centre(self, arrays: Mapping[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
        """Default prior centre of the coordinates for these data."""
        reference = self._mle_class(**self._mle_settings())._log_reference(arrays, weights)
        return np.asarray(
            self._coordinates_from_theta(list(reference), _ops.NUMPY), dtype=float
        )

    def _likelihood_statistics(
        self, arrays: Mapping[str, np.ndarray], group: np.ndarray, weights: np.ndarray,
        n_groups: int,
    ) -> Any:
        """What the total and pointwise log-likelihood read (distinct rows here)."""
        return RowTable(int(n_groups), np.asarray(group, dtype=np.int64), dict(arrays), weights)

    def _graph_terms(self, stats: Any) -> int:
        """Terms left to generic graph operations (chooses nutpie's backend)."""
        return len(stats.weight)

    def _total_log_likelihood(
        self, params: Mapping[str, Any], stats: Any, fused: bool = True
    ) -> Any:
        """Weighted total log-likelihood as a PyTensor scalar; ``params`` per group."""
        ops = _ops.pytensor_ops()
        names = type(self).param_names
        if stats.n_groups == 1:
            per_row = {k: params[k][0] for k in names}
        else:
            per_row = {k: params[k][stats.group] for k in names}
        design = self.covariate_design_
        if design is not None:
            gamma = pt.stack([params[name] for name in design.coefficients])
            matrix = stats.columns[DESIGN]
            for role, effects in self.covariate_effects.items():
                if role not in design.role_design:
                    continue
                eta = pt.dot(
                    as_data(matrix[:, design.role_design[role]]),
                    gamma[design.role_coefficients[role]],
                )
                for name, sign in effects:
                    per_row[name] = per_row[name] * pt.exp(sign * eta)
        values = self.log_likelihood(per_row, self._data(stats.columns), ops)
        return pt.sum(pt.as_tensor(stats.weight) * values)

    def _pointwise_log_likelihood(self, params: Mapping[str, np.ndarray], stats: Any) -> np.ndarray:
        """Log-likelihood of each distinct row under each draw, in NumPy.

        ``params`` have shape ``(..., n_groups)``; the result ``(..., n_rows)``.
        Without covariates the rows of each group are evaluated together with the
        group's parameters as a column ``(draws, 1)``, so that the terms of the
        parameters alone (``gammaln(r)``, ``log(alpha)``, ...) are computed once per
        draw rather than once per draw and row.
        """
        names = list(type(self).param_names)
        lead = params[names[0]].shape[:-1]
        flat = {
            k: np.asarray(params[k], dtype=float).reshape(-1, params[k].shape[-1]) for k in names
        }
        n_draws, n_rows = flat[names[0]].shape[0], len(stats.weight)
        data = self._data(stats.columns)
        design = self.covariate_design_
        gamma = None
        if design is not None:
            gamma = np.stack(
                [np.asarray(params[c], dtype=float).reshape(-1) for c in design.coefficients],
                axis=-1,
            )
            parts = [(slice(None), None)]
        elif stats.n_groups == 1:
            parts = [(slice(None), 0)]
        else:
            parts = [(np.flatnonzero(stats.group == g), g) for g in range(stats.n_groups)]
        out = np.empty((n_draws, n_rows))
        step = max(1, POINTWISE_BLOCK // max(n_rows, 1))
        with np.errstate(all="ignore"):
            for rows, g in parts:
                part = data if isinstance(rows, slice) else {c: v[rows] for c, v in data.items()}
                for start in range(0, n_draws, step):
                    block = slice(start, start + step)
                    if gamma is None:
                        per_row = {k: v[block, g, None] for k, v in flat.items()}
                    else:
                        theta = {k: (v[block][:, stats.group] if k in self.real_params
                                     else np.log(v[block][:, stats.group]))
                                 for k, v in flat.items()}
                        per_row = self._natural(
                            self._row_theta(theta, gamma[block], stats.columns[DESIGN])
                        )
                    out[block, rows] = self.log_likelihood(per_row, part, _ops.NUMPY)
        return out.reshape(*lead, n_rows)

    # The engine's routes to the likelihood: a model's own sufficient statistics where
    # it has them, the generic rows (RowTable) otherwise and always with covariates.
    def _statistics(self, arrays, group, weights, n_groups) -> Any:
        if self.covariate_design_ is not None:
            return BayesianModel._likelihood_statistics(self, arrays, group, weights, n_groups)
        return self._likelihood_statistics(arrays, group, weights, n_groups)

    def _route(self, stats: Any, name: str) -> Any:
        method = getattr(BayesianModel, name)
        if isinstance(stats, RowTable) and type(self)._likelihood_statistics is not (
            BayesianModel._likelihood_statistics
        ):
            return functools.partial(method, self)
        return getattr(self, name)

    # -- contract members a Bayesian model does not have ------------------------------
    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], source: str = "model file") -> Any:
        """Bayesian models are saved as NetCDF: a JSON file naming one is refused."""
        raise ModelFileError(
            f"{source} names {cls.__name__}, a Bayesian model, but is a JSON file; "
            "Bayesian models are saved (and loaded) as NetCDF"
        )

    @classmethod
    def from_params(cls, params: Mapping[str, float], **kwargs: Any) -> Any:
        """Not available: a Bayesian model is fitted, or loaded from NetCDF."""
        raise TypeError(
            f"{cls.__name__} has a posterior, not point estimates: fit it, or load a saved "
            f"one; {cls._mle_class.__name__}.from_params builds a model at given values"
        )

    # -- preparation --------------------------------------------------------------------
    def _prepare(self, data: Any, context: str) -> _Prepared:
        try:
            spec = self._covariate_spec()
        except ValueError as err:
            raise ValueError(f"{type(self).__name__}: {err}") from None
        if spec is not None and any(spec.penalty.values()):
            raise ValueError(
                f"{type(self).__name__}: covariate_penalty belongs to maximum likelihood; a "
                "Bayesian model puts priors on the coefficients (priors={'<coefficient>': "
                "{'sigma': ...}})"
            )
        columns = self._likelihood_columns()
        frame = validate_summary(
            data,
            require_monetary="monetary_value" in columns,
            require_timing="T" in columns or "recency" in columns,
            context=context,
        )
        if self.group_col is None:
            labels = pd.Series("all", index=frame.index)
        else:
            labels = _group_labels(frame, self.group_col, context)
        # Every group of the data gets parameters, even one whose customers the
        # likelihood leaves out (e.g. a group without repeat buyers).
        groups = pd.Index(sorted(labels.unique()), dtype=object)
        design = None if spec is None else CovariateDesign.learn(spec, frame, context)
        self._set_covariate_design(design)
        pooled_mle = self._pooled_mle(frame, context)
        # Settings the declaration chooses (an integer k) are held at the pooled
        # maximum-likelihood choice, or as given where that fit failed.
        chooser = pooled_mle if pooled_mle is not None else (
            self._mle_class(**self._mle_settings(fixed=False))
        )
        try:
            self._hold_settings(chooser._chosen_settings())
        except ValueError as err:
            raise ConvergenceError(
                f"{context}: the maximum-likelihood fit that chooses the model's settings "
                f"failed ({err})"
            ) from None
        use = np.asarray(self._fit_rows(frame), dtype=bool)
        rows = frame.loc[use]
        codes = groups.get_indexer(labels[use])
        table = rows[list(columns)].assign(_group=codes)
        extra: tuple[str, ...] = ("_group",)
        if design is not None:
            matrix = design.matrix(rows, context)
            names = [f"_z{j}" for j in range(matrix.shape[1])]
            table = table.assign(**dict(zip(names, matrix.T, strict=True)))
            extra = (*extra, *names)
        distinct, weights, inverse = compress(table, columns=columns, extra=extra)
        arrays = {c: distinct[c].to_numpy(dtype=float) for c in columns}
        if design is not None:
            arrays[DESIGN] = distinct[list(extra[1:])].to_numpy(dtype=float)
            design.check_identifiable(arrays[DESIGN], weights, context)
        row_codes = distinct["_group"].to_numpy(dtype=np.int64)
        stats = self._statistics(arrays, row_codes, weights, len(groups))
        return _Prepared(
            customers=rows.index,
            groups=groups,
            codes=row_codes,
            arrays=arrays,
            weights=weights,
            inverse=inverse,
            stats=stats,
            n_excluded=int((~use).sum()),
            centre=self._prior_centre(arrays, weights),
            pooled_mle=pooled_mle,
            time_unit=frame.attrs.get("time_unit"),
            constant=self._constant_log_likelihood(rows),
        )

    def _pooled_mle(self, frame: pd.DataFrame, context: str) -> Any:
        """The maximum-likelihood fit of all customers, which also checks that the data
        suit the model; None where it does not converge (the priors may still do)."""
        mle = self._mle_class(**self._mle_settings(fixed=False))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return mle.fit(frame)
        except DataValidationError as err:
            raise DataValidationError(f"{context}: {err}") from err
        except (ConvergenceError, np.linalg.LinAlgError, FloatingPointError):
            return None

    def _fit_mle_rows(self, prep: _Prepared, mask: np.ndarray) -> Any:
        """The maximum-likelihood fit on the distinct rows in ``mask``, or None."""
        if mask.sum() < len(self.param_names):
            return None
        mle = self._new_mle()
        weights = prep.weights[mask]
        arrays = {k: v[mask] for k, v in prep.arrays.items()}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mle._fit_arrays(
                    mle._fit_cache(arrays, weights), weights, round(float(weights.sum())), 0.0
                )
        except (ConvergenceError, ValueError, np.linalg.LinAlgError, FloatingPointError):
            return None
        return mle

    def _mle_coordinates(self, mle: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """A maximum-likelihood fit in coordinates: the estimate and its covariance."""
        if mle is None:
            return None
        cov = mle.covariance_.to_numpy()
        if not np.all(np.isfinite(cov)) or np.linalg.eigvalsh(cov).min() <= 0:
            return None
        # Delta method: the coordinates are smooth functions of the transformed parameters.
        u, jac = _value_and_jacobian(self._full_coordinates_from_theta, mle._theta)
        return u, jac @ cov @ jac.T

    def _resolve_priors(
        self, centre: np.ndarray | None, coefficient_scale: np.ndarray | None = None
    ) -> dict[str, Any]:
        """The priors in force; ``centre`` None only checks the user's overrides.

        Coefficients get ``Normal(0, DEFAULT_COEFFICIENT_SIGMA / sd(z_j))`` unless the
        user says otherwise (``coefficient_scale``: the sd of each coefficient's
        covariate among the fitted customers).
        """
        names = list(self.coordinates)
        coefficients = self._coefficient_names()
        user = dict(self.priors or {})
        unknown = set(user) - {*names, *coefficients, "group_sigma"}
        if centre is None and self.covariate_design_ is None:
            # coefficient names are known once the data have been seen
            unknown = {k for k in unknown if ":" not in str(k)}
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown prior keys {sorted(map(str, unknown))}; allowed "
                f"are {[*names, *coefficients, 'group_sigma']}"
            )
        resolved: dict[str, Any] = {}
        for j, name in enumerate([*names, *coefficients]):
            spec = user.get(name, {})
            if not isinstance(spec, Mapping) or set(spec) - {"mu", "sigma"}:
                raise ValueError(
                    f"prior for {name!r} must be a dict with keys 'mu' and/or 'sigma' (a "
                    f"normal prior on that coordinate), got {spec!r}"
                )
            if j >= len(names):
                default_mu, default_sigma = 0.0, DEFAULT_COEFFICIENT_SIGMA
                if coefficient_scale is not None:
                    default_sigma = DEFAULT_COEFFICIENT_SIGMA / coefficient_scale[j - len(names)]
            else:
                default_mu = 0.0 if centre is None else centre[j]
                default_sigma = DEFAULT_PRIOR_SIGMA
            try:
                mu = float(spec.get("mu", default_mu))
                sigma = float(spec.get("sigma", default_sigma))
            except (TypeError, ValueError, OverflowError) as err:
                raise ValueError(f"prior for {name!r} needs numbers, got {spec!r}") from err
            if not np.isfinite(mu) or not np.isfinite(sigma) or sigma <= 0:
                raise ValueError(f"prior for {name!r} needs finite mu and sigma > 0, got {spec}")
            resolved[name] = {"mu": mu, "sigma": sigma}
        for name, spec in user.items():
            if name not in resolved and name != "group_sigma" and (
                not isinstance(spec, Mapping) or set(spec) - {"mu", "sigma"}
            ):
                raise ValueError(
                    f"prior for {name!r} must be a dict with keys 'mu' and/or 'sigma', got "
                    f"{spec!r}"
                )
        group_sigma = user.get("group_sigma", DEFAULT_GROUP_SIGMA)
        if not isinstance(group_sigma, Mapping):
            group_sigma = dict.fromkeys(names, group_sigma)
        elif set(group_sigma) - set(names):
            raise ValueError(f"group_sigma keys must be among {names}, got {list(group_sigma)}")
        try:
            resolved["group_sigma"] = {
                name: float(group_sigma.get(name, DEFAULT_GROUP_SIGMA)) for name in names
            }
        except (TypeError, ValueError, OverflowError) as err:
            raise ValueError(f"group_sigma must be numbers, got {group_sigma!r}") from err
        if any(not (v > 0 and math.isfinite(v)) for v in resolved["group_sigma"].values()):
            raise ValueError(f"group_sigma must be positive, got {resolved['group_sigma']}")
        return resolved

    def _coefficient_scales(self, prep: _Prepared) -> np.ndarray | None:
        """The sd of each coefficient's covariate among the fitted customers."""
        design = self.covariate_design_
        if design is None:
            return None
        matrix, weights = prep.arrays[DESIGN], prep.weights
        mean = weights @ matrix / weights.sum()
        sd = np.sqrt(weights @ (matrix - mean) ** 2 / weights.sum())
        column = np.empty(len(design.coefficients), dtype=np.intp)
        for role, coef in design.role_coefficients.items():
            column[coef] = design.role_design[role]
        return sd[column]

    def _preconditioning(self, prep: _Prepared, m0: np.ndarray, s0: np.ndarray) -> _Conditioning:
        """Coordinates for the sampler, from maximum-likelihood fits of the groups and
        of all customers (see :class:`_Conditioning`). None of this changes the
        posterior. ``m0`` and ``s0`` hold the prior of the coordinates and then of the
        covariate coefficients; a group's fit informs its coordinates only (its
        coefficients, pooled across groups, are integrated out of its covariance)."""
        G, K = len(prep.groups), len(self.coordinates)
        grouped = self.group_col is not None
        fits = []
        for g in range(G) if grouped else ():
            fit = self._mle_coordinates(self._fit_mle_rows(prep, prep.codes == g))
            fits.append(None if fit is None else (fit[0][:K], fit[1][:K, :K]))
        u_hat, precision, scale = np.zeros((G, K)), np.zeros((G, K, K)), np.zeros((G, K, K))
        variance = np.full((G, K), np.inf)
        for g, fit in enumerate(fits):
            if fit is None:
                continue
            informed = np.sqrt(np.diag(fit[1])) < INFORMATIVE_SE
            block = np.ix_(informed, informed)
            if informed.any():
                precision[g][block] = np.linalg.inv(fit[1][block])
                scale[g][block] = np.linalg.cholesky(fit[1][block])
                variance[g][informed] = np.diag(fit[1])[informed]
            u_hat[g] = fit[0]
        # Between-group spread of each coordinate by the method of moments: the
        # variance of the group estimates less their average sampling variance, over
        # the groups whose estimate is informative.
        known = [f for f in fits if f is not None and np.all(np.diag(f[1]) < INFORMATIVE_SE**2)]
        spread = np.zeros(K)
        if len(known) >= 2:
            estimates = np.stack([f[0] for f in known])
            noise = np.stack([np.diag(f[1]) for f in known]).mean(axis=0)
            spread = np.sqrt(np.maximum(estimates.var(axis=0, ddof=1) - noise, 0.0))
        pooled = self._mle_coordinates(prep.pooled_mle)
        widen = np.zeros(len(m0))
        widen[:K] = spread**2 / max(G, 1)
        # Laplace approximation of the population posterior: likelihood (widened by the
        # spread of G groups around their mean) times the prior; for a grouped model the
        # coordinates and the coefficients are approximated apart.
        parts = [slice(0, K), slice(K, len(m0))] if grouped else [slice(0, len(m0))]
        laplace = []
        for part in parts:
            if pooled is None:
                centre, post_cov = m0[part].copy(), np.diag(s0[part] ** 2)
            else:
                m_hat, cov = pooled[0][part], pooled[1][part, part] + np.diag(widen[part])
                post_cov = np.linalg.inv(np.linalg.inv(cov) + np.diag(1 / s0[part] ** 2))
                centre = post_cov @ (np.linalg.solve(cov, m_hat) + m0[part] / s0[part] ** 2)
            laplace.append((centre, post_cov))
        centre, post_cov = laplace[0]
        sd = np.sqrt(np.diag(post_cov))
        coefficients = laplace[1] if grouped else (np.zeros(0), np.zeros((0, 0)))
        return _Conditioning(
            centre=centre,
            chol=np.linalg.cholesky(post_cov),
            correlation_chol=np.linalg.cholesky(post_cov / np.outer(sd, sd)),
            u_hat=u_hat,
            precision=precision,
            scale=scale,
            variance=variance,
            coefficient_centre=coefficients[0],
            coefficient_chol=np.linalg.cholesky(coefficients[1]) if len(coefficients[0]) else (
                np.zeros((0, 0))
            ),
        )

    # -- pooled density without a graph ------------------------------------------------
    def _pooled_density(self, prep: _Prepared, priors: Mapping[str, Any]):
        """The pooled model's log density and gradient in NumPy, and its expansion.

        The same density as the PyMC model of :meth:`_build_model` (tested equal):
        whitened coordinates ``v``, ``mu = centre + L v`` with a normal prior, and the
        likelihood with the maximum-likelihood engine's gradient (analytic where the
        model has one, else forward-mode automatic), taken through the Jacobian of the
        coordinate map. A pooled posterior has a handful of dimensions; compiling a
        graph for it costs more than the sampling does.
        """
        names = [*self.coordinates, *self._coefficient_names()]
        m0 = np.array([priors[k]["mu"] for k in names])
        s0 = np.array([priors[k]["sigma"] for k in names])
        conditioning = self._preconditioning(prep, m0, s0)
        centre, chol = conditioning.centre, conditioning.chol
        fitter = self._new_mle()
        weights = prep.weights
        arrays = fitter._fit_cache(dict(prep.arrays), weights)
        log_normaliser = float(np.sum(-np.log(s0) - 0.5 * np.log(2 * np.pi)))

        def log_density(v: np.ndarray) -> tuple[float, np.ndarray]:
            mu = centre + chol @ v
            theta, jacobian = self._full_theta_and_jacobian(mu)
            # Far in the tails terms overflow to inf: that point is rejected, quietly.
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                neg_loglik, grad = fitter._nll_and_grad(theta, arrays, weights)
            z = (mu - m0) / s0
            value = -float(neg_loglik) + log_normaliser - 0.5 * float(z @ z)
            if not (np.isfinite(value) and np.all(np.isfinite(grad))):
                return -np.inf, np.zeros_like(v)
            return value, chol.T @ (-(jacobian.T @ grad) - z / s0)

        def expand(v: np.ndarray) -> list[np.ndarray]:
            theta = self._full_theta_from_coordinates(list(centre + chol @ v), _ops.NUMPY)
            values = self._to_params(theta, _ops.NUMPY)
            return [np.asarray(values[k], dtype=float) for k in self.param_names]

        return log_density, expand, np.zeros(len(names))

    # -- model construction -----------------------------------------------------------
    def _build_model(
        self, prep: _Prepared, priors: Mapping[str, Any], centering: str, fused: bool = True
    ) -> tuple[pm.Model, list[str]]:
        coords_ = list(self.coordinates)
        coefficients = self._coefficient_names()
        K, C = len(coords_), len(coefficients)
        G = len(prep.groups)
        m0 = np.array([priors[k]["mu"] for k in [*coords_, *coefficients]])
        s0 = np.array([priors[k]["sigma"] for k in [*coords_, *coefficients]])
        tau = np.array([priors["group_sigma"][k] for k in coords_])
        grouped = self.group_col is not None
        dims = {self.group_col: list(prep.groups)} if grouped else {}
        cond = self._preconditioning(prep, m0, s0)
        if centering == "noncentered":
            cond.precision = np.zeros_like(cond.precision)
            cond.variance = np.full_like(cond.variance, np.inf)
        self._precision = cond.precision  # for the report of the centring, after sampling

        # Numbers that change with the data enter as shared data, so that the compiled
        # C code is reused across data sets (see as_data).
        tau_d = as_data(tau)
        with pm.Model(coords=dims) as model:
            if not grouped:
                # The coordinates (and coefficients) whitened around their Laplace
                # approximation: mu = centre + L v has a constant Jacobian.
                v = pm.Flat("population_offset", shape=K + C)
                full = as_data(cond.centre) + (as_data(cond.chol) * v[None, :]).sum(axis=-1)
                pm.Potential(
                    "population_prior",
                    pm.logp(pm.Normal.dist(as_data(m0), as_data(s0)), full).sum(),
                )
                mu, gamma = full[:K], full[K:]
            else:
                v = pm.Flat("population_offset", shape=K)
                sigma = _spreads(coords_, tau_d)
                mu, log_jacobian = _conditional_population(v, sigma, m0[:K], s0[:K], cond)
                pm.Potential(
                    "population_prior",
                    pm.logp(pm.Normal.dist(as_data(m0[:K]), as_data(s0[:K])), mu).sum()
                    + log_jacobian,
                )
                gamma = None
                if C:
                    # coefficients pooled across groups, whitened likewise
                    w_c = pm.Flat("coefficient_offset", shape=C)
                    gamma = as_data(cond.coefficient_centre) + (
                        as_data(cond.coefficient_chol) * w_c[None, :]
                    ).sum(axis=-1)
                    pm.Potential(
                        "coefficient_prior",
                        pm.logp(pm.Normal.dist(as_data(m0[K:]), as_data(s0[K:])), gamma).sum(),
                    )
            if not grouped:
                u = mu[None, :]
            else:
                for j, k in enumerate(coords_):
                    pm.Deterministic(f"mu_{k}", mu[j])
                w = pm.Flat("group_offset", shape=(G, K))
                groups = _centred_groups if centering == "centered" else _conditional_groups
                u, log_prior = groups(
                    w, mu, sigma, cond.u_hat,
                    cond.scale if centering == "centered" else cond.precision,
                )
                pm.Potential("group_prior", log_prior)
            ops = _ops.pytensor_ops()
            theta = self._theta_from_coordinates([u[:, j] for j in range(K)], ops)
            values = {
                name: value if name in self.real_params else ops.exp(value)
                for name, value in zip(type(self).param_names, theta, strict=True)
            }
            params = {}
            for name in type(self).param_names:
                if grouped:
                    params[name] = pm.Deterministic(name, values[name], dims=self.group_col)
                else:
                    params[name] = pm.Deterministic(name, values[name][0])[None]
            for j, name in enumerate(coefficients):
                # NetCDF-safe names in the graph; renamed after sampling
                params[name] = pm.Deterministic(f"coefficient_{j}", gamma[j])
            total = self._route(prep.stats, "_total_log_likelihood")
            pm.Potential("log_likelihood", total(params, prep.stats, fused))
        keep = list(type(self).param_names) + [f"coefficient_{j}" for j in range(C)] + (
            [f"mu_{k}" for k in coords_] + [f"sigma_{k}" for k in coords_] if grouped else []
        )
        return model, keep

    # -- fitting ------------------------------------------------------------------------
    def fit(
        self,
        data: pd.DataFrame,
        method: str = "nuts",
        sampler: str = "nutpie",
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        random_state: Any = None,
        progressbar: bool = True,
        *,
        backend: str = "auto",
        centering: str = "auto",
        log_likelihood: bool | None = None,
        **kwargs: Any,
    ) -> Any:
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
            Posterior draws (at least 1) and tuning steps (at least 0) per chain,
            number of chains (at least 1).
        random_state : int or numpy Generator, optional
            Seed for reproducible results.
        progressbar : bool
            Show the sampler's progress.
        backend : {"auto", "numpy", "c", "numba"}
            How nutpie evaluates the model. ``"numpy"`` (pooled models only): the
            same density in NumPy with the maximum-likelihood engine's gradient,
            nothing to compile. ``"c"``: the PyMC graph on PyTensor's C backend
            through a Python callback (compiles in a second or two). With both, on
            Linux the chains run in processes forked after set-up (``cores=1``
            keeps them in this process). ``"numba"``: nutpie's own route (compiles
            in 5-30 s, cheaper per evaluation of generic graph operations).
            ``"auto"`` picks ``"numpy"`` for pooled models; for grouped ones ``"c"``
            up to 5,000 terms left to generic graph operations and ``"numba"`` above.
        centering : {"auto", "noncentered", "centered"}
            Coordinates the sampler uses for group parameters (see the module
            notes); the posterior is the same.
        log_likelihood : bool, optional
            Store the pointwise log-likelihood per customer (needed for LOO).
            Default: when it takes at most 50 million values.
        **kwargs
            Passed to ``nutpie.sample``, ``pm.sample``, ``pm.fit`` or ``pm.find_MAP``
            (e.g. ``target_accept``, nutpie's default 0.8; ``cores``, by default one
            per chain up to the number of CPUs).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For an impossible setting, before any work is done.
        ConvergenceError
            If the sampler returns parameters that are not finite (the model then
            stays unfitted).
        """
        if "random_seed" in kwargs:
            warnings.warn(
                "fit(random_seed=...) is now fit(random_state=...)",
                DeprecationWarning,
                stacklevel=2,
            )
            random_state = kwargs.pop("random_seed")
        _check_fit_settings(
            method, sampler, draws, tune, chains, backend, centering, log_likelihood, kwargs
        )
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
        self._resolve_priors(None)  # bad keys fail before any work
        self._mle_class(**self._mle_settings(fixed=False))._check_settings()
        self.fixed_settings_ = {}
        context = f"{type(self).__name__}.fit"
        prep = self._prepare(data, context)
        priors = self._resolve_priors(prep.centre, self._coefficient_scales(prep))
        safe = {f"coefficient_{j}": name for j, name in enumerate(self._coefficient_names())}
        if pooled_numpy:
            log_density, expand, start = self._pooled_density(prep, priors)
            keep = [*type(self).param_names, *safe]
            idata = sample_density(
                lambda: log_density,
                lambda: expand,
                start,
                keep,
                draws=int(draws),
                tune=int(tune),
                chains=int(chains),
                random_state=random_state,
                progressbar=progressbar,
                **kwargs,
            )
        else:
            # NumPyro translates the graph to JAX, which knows no Numba-compiled Op.
            fused = not (method == "nuts" and sampler == "numpyro")
            model, keep = self._build_model(prep, priors, centering, fused)
            idata = run_inference(
                model,
                keep,
                method=method,
                sampler=sampler,
                backend=backend,
                n_terms=self._route(prep.stats, "_graph_terms")(prep.stats),
                draws=int(draws),
                tune=int(tune),
                chains=int(chains),
                random_state=random_state,
                progressbar=progressbar,
                **kwargs,
            )
        if safe:
            idata.posterior = idata.posterior.rename(safe)
        bad = _non_finite(idata.posterior, list(self.param_names))
        if bad:
            raise ConvergenceError(
                f"{type(self).__name__}: the {method} fit gave parameters that are not "
                f"finite ({', '.join(bad[:5])}); the model is left unfitted. Check the data "
                "for extreme customers, or tighten the priors."
            )
        idata = self._finish_idata(idata, prep, log_likelihood)
        config = {
            "format_version": FORMAT_VERSION,
            "group_col": self.group_col,
            "priors": _json_ready(self.priors),
            "priors_resolved": priors,
            "groups": [str(g) for g in prep.groups],
            "method": method,
            "sampler": sampler if method == "nuts" else None,
            "centering": self._centring_report(idata, prep, centering),
            "time_unit": prep.time_unit,
            "n_customers": len(prep.customers),
            "n_excluded": prep.n_excluded,
            "n_rows": len(prep.weights),
        }
        if self._declared_settings():
            mle = self._mle_class(**self._mle_settings(fixed=False))
            config["settings"] = {
                k: v for k, v in mle._settings().items() if k in self._declared_settings()
            }
            config["fixed_settings"] = dict(self.fixed_settings_)
        if self.covariate_design_ is not None:
            config["covariate_settings"] = self.covariate_design_.spec.settings()
            config["covariates"] = self.covariate_design_.to_json()
        idata.posterior.attrs["clvmodels_model"] = type(self).__name__
        idata.posterior.attrs["clvmodels_config"] = json.dumps(config)
        self._set_from_idata(idata, config)
        if method == "nuts":
            self._check_convergence()
        return self

    def _centring_report(
        self, idata: az.InferenceData, prep: _Prepared, centering: str
    ) -> dict[str, dict[str, float]]:
        """Per group and coordinate, the centred share ``sigma^2 / (sigma^2 + s^2)`` at
        the posterior median of ``sigma`` (``s``: the group's conditional standard
        error; 0 where its data were not used)."""
        if self.group_col is None:
            return {}
        names = list(self.coordinates)
        if centering == "centered":
            return {str(g): dict.fromkeys(names, 1.0) for g in prep.groups}
        sigma = np.array([float(idata.posterior[f"sigma_{k}"].median()) for k in names])
        info = np.array([np.diag(p) for p in self._precision])  # 1 / s^2
        share = sigma**2 * info / (1.0 + sigma**2 * info)
        return {
            str(g): {k: round(float(share[i, j]), 3) for j, k in enumerate(names)}
            for i, g in enumerate(prep.groups)
        }

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
            params = {}
            for k in self.param_names:
                values = posterior[k].to_numpy()
                params[k] = values if self.group_col else values[..., None]
            pointwise = self._route(prep.stats, "_pointwise_log_likelihood")
            per_row = pointwise(params, prep.stats)
            per_customer = np.take(per_row, prep.inverse, axis=-1)  # faster than [..., i]
            if prep.constant is not None:
                per_customer += prep.constant
            dim = "customer"
            name = self.log_likelihood_var
            ll = az.from_dict(
                log_likelihood={name: per_customer},
                dims={name: [dim]},
                coords={dim: _netcdf_safe(prep.customers)},
            )
            idata.add_groups(log_likelihood=ll.log_likelihood)
        return idata

    # -- fitted state ---------------------------------------------------------------
    def _params_from_coordinates(self, u: np.ndarray) -> dict[str, np.ndarray]:
        """The model's parameters (not the coefficients) at coordinates ``u``."""
        u = np.asarray(u, dtype=float)
        theta = self._theta_from_coordinates([u[..., j] for j in range(u.shape[-1])], _ops.NUMPY)
        names = type(self).param_names
        return {
            k: np.asarray(v if k in self.real_params else np.exp(v), dtype=float)
            for k, v in zip(names, theta, strict=True)
        }

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
            # coefficients are shared by every group
            self.params_ = pd.DataFrame(
                {
                    k: np.broadcast_to(post[k].mean(("chain", "draw")).to_numpy(),
                                       (len(self.groups_),))
                    for k in names
                },
                index=pd.Index(self.groups_, name=self.group_col),
            )
            u = np.array([float(post[f"mu_{k}"].mean()) for k in self.coordinates])
            population = self._params_from_coordinates(u)
            population.update({k: post[k].mean() for k in self._coefficient_names()})
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
        ``sigma_*`` (between-group sd) with an empty group.
        """
        self._check_fitted()
        if isinstance(interval, bool) or not isinstance(interval, numbers.Real) or not (
            0 < interval < 1
        ):
            raise ValueError(f"interval must lie in (0, 1), got {interval!r}")
        post = self.idata_.posterior
        diagnostics = post.sizes["chain"] > 1 and post.sizes["draw"] >= 4
        with _arviz_without_numba():
            rhat = az.rhat(post) if diagnostics else None
            ess_bulk = az.ess(post, method="bulk") if diagnostics else None
            ess_tail = az.ess(post, method="tail") if diagnostics else None
        pct = f"{100 * interval:g}%"
        records, index = [], []
        for name in post.data_vars:
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
                # settings the posterior is conditional on (the BG/CNBD-k's k)
                **getattr(self, "fixed_settings_", {}),
            }
        )
        return table

    def maximum_likelihood_model(self) -> MaximumLikelihoodModel:
        """An unfitted maximum-likelihood model of the same declaration, settings (those
        the fit held, e.g. BG/CNBD-k's ``k``) and covariates, of the whole population
        (no groups).

        It stands in for this model where a step refits a model many times, which MCMC
        would make hours long: :func:`clvmodels.shocks.estimate_common_shocks` estimates
        the shocks common to all customers against it.

        Examples
        --------
        >>> from clvmodels import HierarchicalBetaGeo
        >>> type(HierarchicalBetaGeo(group_col="cohort").maximum_likelihood_model()).__name__
        'BetaGeo'
        """
        return self._mle_class(**self._mle_settings())

    def param_draws(self, n: int, random_state: Any = None) -> pd.DataFrame:
        """``n`` draws from the posterior.

        Pooled models return one column per parameter. Grouped models return a long
        frame with columns ``draw``, ``<group_col>`` and the parameters (one row per
        draw and group); its ``attrs["population"]`` holds, per draw, the parameters
        of a new, unseen group (coordinates ``mu + sigma * eps``), which predictions
        use for customers of groups the model was not fitted on.

        Draws are taken without replacement while ``n`` does not exceed the number of
        posterior samples.
        """
        self._check_fitted()
        n = _whole(n, "n", 1)
        rng = np.random.default_rng(random_state)
        total = self.idata_.posterior.sizes["chain"] * self.idata_.posterior.sizes["draw"]
        pick = rng.choice(total, size=n, replace=n > total)
        names = list(self.param_names)
        if self.group_col is None:
            return pd.DataFrame({k: self._posterior_matrix(k)[pick] for k in names})
        G = len(self.groups_)
        coefficients = self._coefficient_names()
        frame = pd.DataFrame(
            {
                "draw": np.repeat(np.arange(n), G),
                self.group_col: np.tile(np.asarray(self.groups_, dtype=object), n),
                **{k: self._posterior_matrix(k)[pick].ravel() for k in type(self).param_names},
                # coefficients are shared by the groups: the same value on each row of a draw
                **{k: np.repeat(self._posterior_matrix(k)[pick], G) for k in coefficients},
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
        population.update({k: self._posterior_matrix(k)[pick] for k in coefficients})
        frame.attrs["population"] = pd.DataFrame({"draw": np.arange(n), **population})
        return frame

    def _params_for(
        self, data: pd.DataFrame | None, draws: pd.DataFrame | None = None
    ) -> dict[str, np.ndarray]:
        """Each customer's group parameters: ``(n,)``, or ``(n_draws, n)`` with draws;
        with covariates, scaled by each row's covariates (the base parameters without
        ``data``)."""
        base = self._group_params_for(data, draws)
        return self._apply_covariates(base, data, draws)

    def _group_params_for(
        self, data: pd.DataFrame | None, draws: pd.DataFrame | None = None
    ) -> dict[str, np.ndarray]:
        self._check_fitted()
        names = list(type(self).param_names)
        if self.group_col is None:
            if draws is None:
                return {k: np.asarray(float(self.params_[k])) for k in names}
            return {k: draws[k].to_numpy(dtype=float)[:, None] for k in names}
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
        """Write the posterior, diagnostics, log-likelihood and configuration to NetCDF,
        atomically."""
        self._check_fitted()
        idata = self.idata_

        def write(tmp: Path) -> None:
            idata.to_netcdf(str(tmp))

        return write_model_file(path, write)

    @classmethod
    def from_idata(cls, idata: az.InferenceData, source: str = "model file") -> Any:
        """A fitted model from its InferenceData (as saved), every field checked first.

        Raises :class:`~clvmodels.errors.ModelFileError` naming ``source`` and the field
        for anything that would not make a valid model: a missing or malformed
        configuration, unknown keys or wrong types, an unsupported format version, or
        posterior parameters that are missing, not finite or out of range in any draw.
        """
        config = _checked_config(idata, source)
        settings = config.get("covariate_settings") or {}
        declared = config.get("settings") or {}
        unknown = sorted(set(declared) - set(cls._declared_settings()))
        if unknown:
            raise ModelFileError(
                f"{source}: field 'clvmodels_config.settings' names unknown settings "
                f"{unknown!r} of {cls.__name__}"
            )
        try:
            model = cls(group_col=config["group_col"], priors=config.get("priors"), **settings,
                        **declared)
            spec = model._covariate_spec()
        except (TypeError, ValueError) as err:
            raise ModelFileError(
                f"{source}: field 'clvmodels_config.covariate_settings' is invalid ({err})"
            ) from err
        try:
            model._mle_class(**model._mle_settings(fixed=False))._check_settings()
            model._hold_settings(
                model._checked_fixed_settings(config.get("fixed_settings") or {})
            )
        except (TypeError, ValueError) as err:
            raise ModelFileError(
                f"{source}: fields 'clvmodels_config.settings' and 'fixed_settings' are "
                f"invalid ({err})"
            ) from err
        field = "clvmodels_config.covariates"
        if (spec is None) != (config.get("covariates") is None):
            raise ModelFileError(
                f"{source}: fields 'clvmodels_config.covariate_settings' and '{field}' must "
                "be given together"
            )
        if spec is not None:
            model._set_covariate_design(
                CovariateDesign.from_json(spec, config["covariates"], source, field=field)
            )
        try:
            model._resolve_priors(None)
        except ValueError as err:
            raise ModelFileError(f"{source}: field 'clvmodels_config.priors': {err}") from err
        try:
            model._check_posterior(idata, config, source)
        except (OSError, RuntimeError, KeyError) as err:  # lazily read data that fails
            raise ModelFileError(
                f"{source}: field 'posterior' cannot be read ({type(err).__name__}: {err})"
            ) from err
        model._set_from_idata(idata, config)
        return model

    def _check_posterior(
        self, idata: az.InferenceData, config: Mapping[str, Any], source: str
    ) -> None:
        post = idata.posterior
        group_col = self.group_col
        want = ("chain", "draw") + ((group_col,) if group_col else ())
        if post.sizes.get("chain", 0) < 1 or post.sizes.get("draw", 0) < 1:
            raise ModelFileError(f"{source}: field 'posterior' holds no draws")
        if group_col:
            if group_col not in post.coords:
                raise ModelFileError(
                    f"{source}: field 'posterior' has no coordinate '{group_col}' (group_col)"
                )
            groups = [str(g) for g in post[group_col].to_numpy()]
            if "groups" in config and list(config["groups"]) != groups:
                raise ModelFileError(
                    f"{source}: field 'clvmodels_config.groups' does not match the "
                    f"posterior's '{group_col}' coordinate"
                )
        positive = self._positive()
        names = list(self.param_names)
        base = set(type(self).param_names)
        hyper = [f"mu_{k}" for k in self.coordinates] + [f"sigma_{k}" for k in self.coordinates]
        for name in names + (hyper if group_col else []):
            if name not in post.data_vars:
                raise ModelFileError(f"{source}: field 'posterior.{name}' is missing")
            var = post[name]
            dims = want if name in base else ("chain", "draw")
            if tuple(var.dims) != dims:
                raise ModelFileError(
                    f"{source}: field 'posterior.{name}' has dims {tuple(var.dims)}, "
                    f"expected {dims}"
                )
            try:
                values = np.asarray(var.to_numpy(), dtype=float)
            except (TypeError, ValueError, OverflowError) as err:
                raise ModelFileError(f"{source}: field 'posterior.{name}' is not numeric") from err
            if not np.all(np.isfinite(values)):
                raise ModelFileError(
                    f"{source}: field 'posterior.{name}' has values that are not finite"
                )
            if name in names:
                if positive[names.index(name)]:
                    if not np.all(values > 0):
                        raise ModelFileError(
                            f"{source}: field 'posterior.{name}' must be positive in every "
                            f"draw (smallest {values.min()!r})"
                        )
                    values = np.log(values)
                # a coefficient's scale is that of its covariate's units: not bounded
                if name in base and np.any(np.abs(values) > _LOG_LIMIT):
                    raise ModelFileError(
                        f"{source}: field 'posterior.{name}' is outside the supported range "
                        f"(transformed values within +-{_LOG_LIMIT:g})"
                    )
            elif name.startswith("sigma_") and not np.all(values >= 0):
                raise ModelFileError(f"{source}: field 'posterior.{name}' must be >= 0")


def _checked_config(idata: Any, source: str) -> dict[str, Any]:
    """The configuration stored with a posterior, checked key by key."""
    if "posterior" not in idata.groups():
        raise ModelFileError(f"{source}: field 'posterior' is missing")
    raw = idata.posterior.attrs.get("clvmodels_config")
    if raw is None:
        raise ModelFileError(f"{source}: field 'clvmodels_config' is missing")
    try:
        config = json.loads(raw)
    except (TypeError, ValueError, RecursionError) as err:
        raise ModelFileError(f"{source}: field 'clvmodels_config' is not valid JSON") from err
    if not isinstance(config, dict):
        raise ModelFileError(f"{source}: field 'clvmodels_config' must be a JSON object")
    field = "clvmodels_config"
    required = {"format_version", "group_col"}
    kinds: dict[str, tuple[type, ...]] = {
        "format_version": (int,),
        "group_col": (str, type(None)),
        "priors": (dict, type(None)),
        "priors_resolved": (dict, type(None)),
        "groups": (list,),
        "method": (str,),
        "sampler": (str, type(None)),
        "centering": (dict, type(None)),
        "time_unit": (str, type(None)),
        "n_customers": (int,),
        "n_excluded": (int,),
        "n_rows": (int,),
        "covariate_settings": (dict, type(None)),
        "covariates": (dict, type(None)),
        "settings": (dict, type(None)),
        "fixed_settings": (dict, type(None)),
    }
    missing = sorted(required - set(config))
    if missing:
        raise ModelFileError(f"{source}: field(s) {[f'{field}.{k}' for k in missing]} missing")
    unknown = sorted(set(config) - set(kinds))
    if unknown:
        raise ModelFileError(f"{source}: unknown field(s) {[f'{field}.{k}' for k in unknown]}")
    for key, value in config.items():
        if isinstance(value, bool) or not isinstance(value, kinds[key]):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in kinds[key])
            raise ModelFileError(f"{source}: field '{field}.{key}' must be {names}, got {value!r}")
    if config["format_version"] not in (1, FORMAT_VERSION):
        raise ModelFileError(
            f"{source}: field '{field}.format_version' is {config['format_version']!r}; this "
            f"version of clvmodels reads 1 and {FORMAT_VERSION}"
        )
    for key in ("n_customers", "n_excluded", "n_rows"):
        if config.get(key, 0) < 0:
            raise ModelFileError(f"{source}: field '{field}.{key}' must be >= 0")
    if config.get("method", "nuts") not in METHODS:
        raise ModelFileError(f"{source}: field '{field}.method' must be one of {list(METHODS)}")
    if config.get("time_unit") is not None:
        from clvmodels.units import TIME_UNIT_DAYS

        if config["time_unit"] not in TIME_UNIT_DAYS:
            raise ModelFileError(
                f"{source}: field '{field}.time_unit' is {config['time_unit']!r}; expected one "
                f"of {list(TIME_UNIT_DAYS)} or null"
            )
    if not all(isinstance(g, str) for g in config.get("groups", [])):
        raise ModelFileError(f"{source}: field '{field}.groups' must be a list of strings")
    return config


def _value_and_jacobian(func: Any, x: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """``func(x, ops)`` (a list of scalars) and its Jacobian, by forward-mode
    differentiation."""
    out = func(_ops.seed(x), _ops.DUAL)
    k = len(x)
    values = np.array([float(o.value) if isinstance(o, _ops.Dual) else float(o) for o in out])
    jac = np.array(
        [np.asarray(o.grad, dtype=float) if isinstance(o, _ops.Dual) else np.zeros(k) for o in out]
    )
    return values, jac


def _cholesky(matrix: list[list[Any]]) -> list[list[Any]]:
    """Lower Cholesky factor of a small symmetric matrix given entry by entry.

    Each entry may be a vector (one matrix per group): the factorisation is a
    handful of elementwise operations, differentiable by PyTensor and fused by its C
    backend, instead of one LAPACK call per group.
    """
    k = len(matrix)
    low: list[list[Any]] = [[None] * k for _ in range(k)]
    for j in range(k):
        diag = matrix[j][j]
        for m in range(j):
            diag = diag - low[j][m] ** 2
        low[j][j] = pt.sqrt(diag)
        for i in range(j + 1, k):
            entry = matrix[i][j]
            for m in range(j):
                entry = entry - low[i][m] * low[j][m]
            low[i][j] = entry / low[j][j]
    return low


def _conditional_groups(
    w: Any, mu: Any, sigma: Any, u_hat: np.ndarray, precision: np.ndarray
) -> tuple[Any, Any]:
    """Group coordinates ``u`` from free ``w`` (groups x coordinates), and their log
    prior density including the log-Jacobian of the map (see the module notes).

    ``u_g = mu + d_g`` with ``d_g = L_g^{-T} (L_g^{-1} Lambda_g (u_hat_g - mu) + w_g)``,
    ``L_g L_g^T = P_g = Lambda_g + diag(sigma^-2)``: forward then back substitution,
    entry by entry over groups. The prior ``Normal(mu, sigma)`` is evaluated on
    ``d_g`` itself: ``u_g - mu`` would lose every digit when ``sigma`` is tiny.
    """
    K = precision.shape[-1]
    # One shared vector per matrix entry and coordinate: no indexing in the graph.
    prec = [[as_data(precision[:, i, j]) for j in range(K)] for i in range(K)]
    inv_var = [sigma[i] ** -2 for i in range(K)]
    matrix = [[prec[i][j] + inv_var[i] if i == j else prec[i][j] for j in range(K)]
              for i in range(K)]
    low = _cholesky(matrix)
    gap = [as_data(u_hat[:, j]) - mu[j] for j in range(K)]
    # y = L^{-1} Lambda (u_hat - mu) + w
    y: list[Any] = []
    for i in range(K):
        entry = sum(prec[i][j] * gap[j] for j in range(K))
        for m in range(i):
            entry = entry - low[i][m] * y[m]
        y.append(entry / low[i][i])
    y = [y[i] + w[:, i] for i in range(K)]
    # d = L^{-T} y
    d: list[Any] = [None] * K
    for i in reversed(range(K)):
        entry = y[i]
        for m in range(i + 1, K):
            entry = entry - low[m][i] * d[m]
        d[i] = entry / low[i][i]
    deviation = pt.stack(d, axis=-1)
    z = deviation / sigma[None, :]
    log_normal = -0.5 * pt.sum(z**2) - w.shape[0] * (
        pt.sum(pt.log(sigma)) + 0.5 * K * np.log(2 * np.pi)
    )
    log_jacobian = -sum(pt.log(low[i][i]).sum() for i in range(K))
    return mu[None, :] + deviation, log_normal + log_jacobian


def _spreads(names: Sequence[str], tau: Any) -> Any:
    """The between-group spreads ``sigma_k ~ HalfNormal(tau_k)``, as ``sigma = tau
    softplus(x)`` of free ``x``.

    On the log scale (PyMC's default for a positive variable) the prior's upper tail
    is a wall whose curvature grows like ``sigma^2 / tau^2``, while its lower tail is
    long and flat; where the data barely identify the spread (a few similar groups)
    the posterior spans both, and leapfrog steps sized for the flat part diverge at
    the wall. Through softplus the upper tail stays normal (curvature about 1) and the
    lower one logarithmic.
    """
    x = pm.Flat("spread_offset", shape=len(names))
    sigma = tau * pt.softplus(x)
    for j, name in enumerate(names):
        pm.Deterministic(f"sigma_{name}", sigma[j])
    # log N(sigma | 0, tau) + log 2, plus log d sigma / dx = log tau + log sigmoid(x).
    log_prior = pm.logp(pm.HalfNormal.dist(sigma=tau), sigma).sum()
    pm.Potential("spread_prior", log_prior + pt.sum(pt.log(tau) - pt.softplus(-x)))
    return sigma


def _conditional_population(
    v: Any, sigma: Any, m0: np.ndarray, s0: np.ndarray, cond: _Conditioning
) -> tuple[Any, Any]:
    """Population coordinates ``mu`` from free ``v``, and the log-Jacobian of the map.

    Given the spreads ``sigma``, the groups' estimates inform ``mu_k`` with precision
    ``sum_g 1 / (s_gk^2 + sigma_k^2)``: with few groups and a spread that reaches
    from far below to far above the groups' standard errors, the scale of ``mu``
    changes several-fold along ``sigma`` (a funnel). ``mu = m(sigma) + r(sigma) *
    (R v)`` follows it: ``m`` and ``r`` are the mean and sd of ``mu_k`` given
    ``sigma`` under the normal approximation (prior included), ``R`` the Cholesky
    factor of the correlation of the Laplace approximation. A coordinate that no
    group informs keeps the Laplace centre and scale.
    """
    info = 1.0 / cond.variance  # 0 where not informed
    informed = info.sum(axis=0) > 0
    info_d, u_hat_d = as_data(info), as_data(cond.u_hat)
    weight = info_d / (1.0 + info_d * sigma[None, :] ** 2)  # 1 / (s^2 + sigma^2)
    precision = weight.sum(axis=0) + 1.0 / s0**2
    mean = ((weight * u_hat_d).sum(axis=0) + m0 / s0**2) / precision
    scale = precision**-0.5
    laplace_sd = np.sqrt(np.diag(cond.chol @ cond.chol.T))
    mean = pt.where(informed, mean, cond.centre)
    scale = pt.where(informed, scale, laplace_sd)
    mu = mean + scale * (as_data(cond.correlation_chol) * v[None, :]).sum(axis=-1)
    return mu, pt.log(scale).sum()


def _centred_groups(
    w: Any, mu: Any, sigma: Any, u_hat: np.ndarray, scale: np.ndarray
) -> tuple[Any, Any]:
    """Centred form: ``u_g = u_hat_g + C_g w_g`` (``C_g`` the Cholesky factor of the
    group's covariance, a constant Jacobian); coordinates the group's data do not
    inform stay non-centred. Returns ``u`` and its log prior density."""
    informed = np.diagonal(scale, axis1=1, axis2=2) > 0
    u_centred = as_data(u_hat) + (as_data(scale) * w[:, None, :]).sum(axis=-1)
    u = pt.where(informed, u_centred, mu + sigma * w)
    # Non-centred entries: log N(u | mu, sigma) + log sigma = log N(w | 0, 1) + const.
    log_jacobian = pt.sum(pt.where(informed, 0.0, pt.log(sigma) + 0.0 * w))
    return u, pm.logp(pm.Normal.dist(mu, sigma), u).sum() + log_jacobian


def _non_finite(posterior: Any, names: list[str]) -> list[str]:
    return [
        name
        for name in names
        if name in posterior.data_vars and not np.all(np.isfinite(posterior[name].to_numpy()))
    ]


def _json_ready(value: Any) -> Any:
    """User priors as plain JSON (NumPy numbers become floats)."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=float))


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


@functools.cache
def bayesian(model_class: type) -> type:
    """The Bayesian version of a maximum-likelihood model declaration.

    Builds (once per class) and registers ``Bayesian<Name>``, a
    :class:`BayesianModel` on ``model_class``: the same parameters, likelihood,
    predictions and simulators, fitted pooled or by group with NUTS, and saved as
    NetCDF (:func:`clvmodels.load` finds it by name).

    Parameters
    ----------
    model_class : type
        A subclass of :class:`~clvmodels.models.mle.MaximumLikelihoodModel`.

    Examples
    --------
    >>> from clvmodels import GammaGamma
    >>> spend = bayesian(GammaGamma)(group_col="cohort")
    >>> spend.coordinates, spend.group_col
    (('log_p', 'log_q', 'log_gamma'), 'cohort')

    The declaration's own settings (its ``model_settings``) carry over; the MBG/CNBD-k
    here gets its ``k`` from the maximum-likelihood profile at fit, then holds it:

    >>> from clvmodels import BetaGeoCNBD
    >>> cnbd = bayesian(BetaGeoCNBD)(modified=True)
    >>> cnbd.k, cnbd.modified, cnbd.max_k
    (None, True, 12)
    """
    if (
        not isinstance(model_class, type)
        or not issubclass(model_class, MaximumLikelihoodModel)
        or issubclass(model_class, BayesianModel)
    ):
        raise TypeError(
            "bayesian() takes a maximum-likelihood model class (a MaximumLikelihoodModel "
            f"subclass), got {model_class!r}"
        )
    name = f"Bayesian{model_class.__name__}"
    doc = (
        f"Bayesian {model_class.__name__}, pooled or with partially pooled groups "
        f"(made by :func:`clvmodels.models.bayes.bayesian`; see :class:`BayesianModel`)."
    )
    return type(name, (BayesianModel, model_class), {"__doc__": doc, "__module__": __name__})


def _factory_for(name: str) -> type | None:
    """The class ``Bayesian<Name>`` for a registered maximum-likelihood model, for load."""
    from clvmodels.models.base import registered_models

    prefix = "Bayesian"
    if not name.startswith(prefix):
        return None
    base = registered_models().get(name[len(prefix):])
    if base is None or not issubclass(base, MaximumLikelihoodModel):
        return None
    return bayesian(base)


register_model_factory(_factory_for)


def compare_loo(models: Mapping[str, BayesianModel], **kwargs: Any) -> pd.DataFrame:
    """Rank fitted Bayesian models by PSIS-LOO (``arviz.compare``).

    The models must have been fitted on the same customers (e.g. a pooled and a
    hierarchical model of one summary) with the pointwise log-likelihood stored.

    Examples
    --------
    With ``pooled`` and ``grouped`` the CDNOW models of the module example of
    :mod:`clvmodels.models.hierarchical` (default draws, ``random_state=1``):

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
