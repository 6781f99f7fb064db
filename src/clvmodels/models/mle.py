"""The maximum-likelihood engine: a model declares, the engine does the rest.

A model subclasses :class:`MaximumLikelihoodModel` and declares

* ``param_names``: its parameters (all positive unless listed in ``real_params``);
* ``data_columns``: the summary columns its likelihood reads;
* ``log_likelihood(params, data, ops)``: the per-customer log-likelihood, written
  once against an ``ops`` namespace (:mod:`clvmodels.models.ops`);
* optionally ``_log_reference`` (the natural centre of the parameters on the
  optimiser's scale, e.g. the data's time scale for a rate), ``_initial_values``
  (starting points), ``_fit_rows`` (which customers inform the fit) and, as a
  measured speed-up, an analytic ``_neg_loglik_grad``;
* optionally ``covariate_effects``: how customer covariates enter, a mapping from a
  role to the parameters it scales and the sign, e.g. ``{"purchase": (("alpha",
  -1.0),)}`` (:mod:`clvmodels.models.covariates`). The model then takes
  ``purchase_covariates=[...]`` (one argument per role), ``constrain=`` and
  ``covariate_penalty=``, and may supply ``_row_log_likelihood_grad`` (per-customer
  derivatives in its transformed parameters) as a measured speed-up.

The engine owns ``fit(data, weights=None)``: validation, compression of identical
rows into weights, optimisation on the transformed scale (log for positive
parameters, so the optimiser is unconstrained and the asymptotic normal
approximation respects the parameter space), the gradient (forward-mode automatic
differentiation of ``log_likelihood`` unless the model supplies one), convergence
checks with a checklist of causes, the covariance from the observed information,
``summary``, ``param_draws``, AIC/BIC, and JSON persistence with validation on load.

Covariates
----------
With covariates the engine expands the covariate columns into a design matrix ``Z``
(numeric columns as they are, categorical ones as indicators of every level but the
reference), adds one real coefficient per design column and role (``purchase:age``,
``dropout:channel[web]``), and gives every customer its own parameters,
``theta_i = theta_0 exp(sign * gamma' z_i)``. Identical ``(frequency, recency, T,
covariates)`` rows are still fitted once. The gradient is the chain rule through the
per-customer parameters: the model's per-customer derivatives in its (log-)parameters
(analytic where it has them, else forward-mode automatic differentiation with one
direction per model parameter, not per coefficient) times ``Z``. The optimiser works
on centred and scaled covariates (a linear change of coordinates, undone exactly for
the estimates and their covariance), so covariates in any unit converge alike.
Predictions take each row's covariates through ``_params_for``; without ``data`` (a
new customer of no known covariates) they use the base parameters, i.e. numeric
covariates at 0 and categorical ones at their reference level.

Examples
--------
A model with no dropout (the NBD of Ehrenberg 1959) in a few lines:

>>> import numpy as np
>>> from clvmodels import load_cdnow, rfm_summary
>>> class NBD(MaximumLikelihoodModel):
...     param_names = ("r", "alpha")
...     data_columns = ("frequency", "recency", "T")
...     @staticmethod
...     def log_likelihood(params, data, ops):
...         r, alpha, x = params["r"], params["alpha"], data["frequency"]
...         return (ops.gammaln(r + x) - ops.gammaln(r) + r * ops.log(alpha)
...                 - (r + x) * ops.log(alpha + data["T"]))
>>> summary = rfm_summary(load_cdnow(), "customer_id", "date", observation_end="1997-09-30")
>>> NBD().fit(summary).params_.round(3).to_dict()
{'r': 0.385, 'alpha': 12.072}
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import optimize, stats
from threadpoolctl import ThreadpoolController

from clvmodels._validation import float_or_nan
from clvmodels.data import count_distinct, validate_summary, without_attrs
from clvmodels.errors import ConvergenceError, DataValidationError, ModelFileError
from clvmodels.models import ops as _ops
from clvmodels.models.base import BaseModel, check_payload_keys, write_model_file
from clvmodels.models.covariates import SUFFIX, CovariateDesign, CovariateEffects, CovariateSpec

__all__ = ["FORMAT_VERSION", "MaximumLikelihoodModel", "PurchaseDropoutModel"]

#: Version of the JSON layout written by :meth:`MaximumLikelihoodModel.save`.
FORMAT_VERSION = 2

# Multi-threaded BLAS makes L-BFGS-B's tiny vector updates an order of magnitude slower
# (thread hand-offs dominate); the optimiser runs with BLAS pinned to one thread.
_THREADPOOLS: ThreadpoolController | None = None

# Parameters are stored and loaded within exp(+-_LOG_LIMIT) (about 1e-26 .. 1e26) of
# their natural centre: beyond it no data could have produced them, and predictions
# would overflow or crawl.
_LOG_LIMIT = 60.0
# Key of the covariate design matrix among a fit's arrays (rows x design columns).
DESIGN = "_design"
#: Largest standard error on the transformed scale that a covariance may imply: beyond
#: it the data do not identify the parameter (one standard error multiplies it by e^10)
#: and draws would overflow.
MAX_STANDARD_ERROR = 10.0


def _single_threaded_blas() -> Any:
    global _THREADPOOLS
    if _THREADPOOLS is None:
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api="blas")


@functools.lru_cache(maxsize=256)
def _parameter_index(names: tuple[str, ...]) -> pd.Index:
    """One immutable index per parameter list; callers take a ``view()`` (its own name)
    so that results never share a mutable attribute. Building an Index from strings
    costs more than the rest of installing a fit."""
    return pd.Index(names, dtype=object)


def _normal_quantile(interval: float) -> float:
    if not 0 < interval < 1:
        raise ValueError(f"interval must lie in (0, 1), got {interval}")
    return float(stats.norm.ppf(0.5 + interval / 2))


def numerical_hessian(grad: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Forward differences of an exact gradient, symmetrised.

    The gradient is exact, so one extra evaluation per parameter gives the Hessian to
    about 1e-5 relative: ample for standard errors, at half the cost of central
    differences.
    """
    k = x.size
    g0 = grad(x)
    hess = np.empty((k, k))
    for j in range(k):
        h = 1e-5 * max(1.0, abs(x[j]))
        step = np.zeros(k)
        step[j] = h
        hess[:, j] = (grad(x + step) - g0) / h
    return (hess + hess.T) / 2


def checked_weights(weights: Any, data: pd.DataFrame) -> np.ndarray:
    """User weights as floats, one per row, finite and non-negative, not all zero."""
    try:
        w = np.asarray(weights, dtype=float)
    except (TypeError, ValueError) as err:
        raise DataValidationError(f"weights must be numbers, one per row ({err})") from err
    if w.shape != (len(data),):
        raise DataValidationError(
            f"weights must have one entry per row ({len(data)}), got shape {w.shape}"
        )
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        ids = list(data.index[bad][:5])
        raise DataValidationError(
            f"weights: {int(bad.sum())} of {len(w)} rows are negative or not finite "
            f"(first ids {ids})"
        )
    if not (w > 0).any():
        raise DataValidationError(f"weights: all {len(w)} weights are zero; nothing to fit")
    return w


def check_penalizer(penalizer: Any) -> float:
    """A finite, non-negative ridge penalty."""
    value = float_or_nan(penalizer)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"penalizer must be a finite number >= 0, got {penalizer!r}")
    return value


class MaximumLikelihoodModel(BaseModel, register=False):
    """Declarative maximum-likelihood fitter (see the module docstring).

    Parameters
    ----------
    penalizer : float, default 0
        Optional ridge penalty per customer on the transformed parameters around
        their natural centre. Not needed on well-behaved data; a small value (1e-3)
        regularises data that cannot identify every parameter. With covariates it
        applies to the model's own parameters (at the mean covariates), not to the
        coefficients.
    **covariates
        For a model that declares ``covariate_effects``: ``<role>_covariates`` (a
        list of columns per role), ``constrain`` and ``covariate_penalty``
        (:mod:`clvmodels.models.covariates`).
    """

    #: Parameters that may take any real value (no log transform).
    real_params: ClassVar[tuple[str, ...]] = ()
    #: How covariates enter: role -> ((parameter, sign), ...); each parameter of a
    #: role is scaled by ``exp(sign * gamma' z)``. Empty: the model takes none.
    covariate_effects: ClassVar[CovariateEffects] = {}
    #: The fitted covariate design (levels, coefficients), or None.
    covariate_design_: CovariateDesign | None = None
    #: Collapse identical rows into weights before fitting (off where rows are
    #: continuous and hardly ever repeat).
    compress_rows: ClassVar[bool] = True
    # A transformed parameter more than this from its natural centre (exp(12) ~ 1.6e5)
    # means the likelihood is still rising towards the edge of the parameter space.
    DRIFT_LIMIT: ClassVar[float] = 12.0
    # Above this many distinct rows a first pass on a random subset finds the
    # neighbourhood of the optimum cheaply; the full data then only polish it.
    WARM_START_ROWS: ClassVar[int] = 40_000
    #: Keys a saved file may hold under "extra" (fitted state beyond the parameters);
    #: a model that saves more extends this set.
    EXTRA_FIELDS: ClassVar[frozenset[str]] = frozenset({"n_excluded", "covariates"})
    #: Constructor arguments, besides ``penalizer`` and the covariates, that define the
    #: model itself rather than how it is fitted (the BG/CNBD-k's ``k``, ``modified``
    #: and ``max_k``): its Bayesian version takes and saves them too.
    model_settings: ClassVar[tuple[str, ...]] = ()

    def __init__(self, penalizer: float = 0.0, **covariates: Any) -> None:
        self.penalizer = penalizer
        self._store_covariate_settings(covariates)

    def _store_covariate_settings(self, covariates: Mapping[str, Any]) -> None:
        """Keep the covariate arguments unchanged (they are checked at fit)."""
        allowed = self._covariate_arguments()
        unknown = sorted(set(covariates) - set(allowed))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got unexpected keyword argument(s) {unknown}"
                + (f"; its covariate arguments are {list(allowed)}" if allowed else
                   "; it takes no covariates")
            )
        for name, default in allowed.items():
            setattr(self, name, covariates.get(name, default))

    @classmethod
    def _covariate_arguments(cls) -> dict[str, Any]:
        """The covariate constructor arguments of this model and their defaults."""
        if not cls.covariate_effects:
            return {}
        out: dict[str, Any] = {f"{role}{SUFFIX}": None for role in cls.covariate_effects}
        out.update(constrain=None, covariate_penalty=0.0)
        return out

    def _covariate_settings(self) -> dict[str, Any]:
        """The covariate arguments as given (to build a sibling model)."""
        return {name: getattr(self, name, default)
                for name, default in self._covariate_arguments().items()}

    def _covariate_spec(self) -> CovariateSpec | None:
        """The checked covariate settings, or None without covariates (ValueError for
        settings that cannot work)."""
        if not self.covariate_effects:
            return None
        roles = tuple(self.covariate_effects)
        return CovariateSpec.from_settings(
            roles,
            {role: getattr(self, f"{role}{SUFFIX}", None) for role in roles},
            constrain=getattr(self, "constrain", None),
            covariate_penalty=getattr(self, "covariate_penalty", 0.0),
        )

    @property
    def covariate_columns(self) -> tuple[str, ...]:
        """The summary columns the model takes covariates from (empty without any)."""
        spec = self._covariate_spec()
        return () if spec is None else spec.columns

    def _set_covariate_design(self, design: CovariateDesign | None) -> None:
        """Install a fitted design: the coefficients join ``param_names``."""
        self.covariate_design_ = design
        declared = type(self).param_names
        if design is None:
            self.__dict__.pop("param_names", None)
        else:
            self.param_names = (*declared, *design.coefficients)

    # -- declarations ---------------------------------------------------------------
    @property
    def data_columns(self) -> tuple[str, ...]:  # pragma: no cover - every model declares
        raise NotImplementedError

    def _likelihood_columns(self) -> tuple[str, ...]:
        """The data columns the likelihood reads (``data_columns`` less covariates)."""
        covariates = set(self.covariate_columns)
        return tuple(c for c in self.data_columns if c not in covariates)

    @staticmethod
    def log_likelihood(params: Mapping[str, Any], data: Mapping[str, np.ndarray], ops: Any) -> Any:
        """Per-customer log-likelihood (an array over rows), written with ``ops``."""
        raise NotImplementedError

    def _fit_rows(self, data: pd.DataFrame) -> np.ndarray:
        """Which rows inform the fit (all by default); the others are counted."""
        return np.ones(len(data), dtype=bool)

    def _check_data(self, data: pd.DataFrame) -> None:
        """Model-specific checks of a validated summary before fitting (raise or warn)."""

    def _check_settings(self) -> None:
        """Refuse ``model_settings`` that cannot work (ValueError naming the setting)."""

    def _chosen_settings(self) -> dict[str, Any]:
        """The ``model_settings`` a fit chose among discrete values, as constructor
        arguments that hold them fixed (none by default).

        A model that estimates a discrete setting (the BG/CNBD-k its regularity ``k``,
        by profile likelihood) returns it here once fitted, or as given when it is
        given, and keeps it as the fitted attribute ``<name>_``; ValueError where it is
        neither fitted nor given. The Bayesian engine samples the posterior
        conditional on these values.
        """
        return {}

    def _constant_log_likelihood(self, data: pd.DataFrame) -> np.ndarray | None:
        """Each row's log-likelihood terms that no parameter enters and that
        ``log_likelihood`` leaves out (None: there are none).

        The Bayesian engine adds them to the pointwise log-likelihood, so that PSIS-LOO
        compares models on the likelihood of the same data.
        """
        return None

    def _log_reference(self, arrays: Mapping[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
        """Natural centre of the transformed parameters: 0 unless the model says so."""
        return np.zeros(len(self.param_names))

    def _initial_values(
        self, arrays: Mapping[str, np.ndarray], weights: np.ndarray
    ) -> list[np.ndarray]:
        """Starting points on the transformed scale."""
        return [self._log_reference(arrays, weights)]

    def _with_cache(self, arrays: dict[str, Any], weights: np.ndarray) -> dict[str, Any]:
        """Add parameter-free pieces of an analytic gradient (keys starting with ``_``)."""
        return arrays

    def _neg_loglik_grad(
        self, theta: np.ndarray, arrays: Mapping[str, Any], weights: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Weighted negative log-likelihood and its gradient on the transformed scale.

        By default by forward-mode automatic differentiation of ``log_likelihood``;
        a model may override it with an analytic gradient where a benchmark shows
        that it pays (a test then checks it against this one).
        """
        return self.automatic_neg_loglik_grad(theta, arrays, weights)

    def _row_log_likelihood_grad(
        self, params: Mapping[str, Any], arrays: Mapping[str, Any]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Per-customer log-likelihood and its derivatives in each model parameter's
        transformed value (log for a positive one), for per-customer parameters.

        By default by forward-mode differentiation of ``log_likelihood`` with one
        direction per model parameter; a model may supply an analytic version where a
        benchmark shows that it pays (a test then checks it against this one).
        """
        return self.automatic_row_log_likelihood_grad(params, arrays)

    def automatic_row_log_likelihood_grad(
        self, params: Mapping[str, Any], arrays: Mapping[str, Any]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """:meth:`_row_log_likelihood_grad` by forward-mode differentiation."""
        names = type(self).param_names
        k = len(names)
        seeded = {}
        for j, name in enumerate(names):
            value = np.asarray(params[name], dtype=float)
            grad = np.zeros((k, *value.shape))
            # d theta / d log(theta) = theta for a positive parameter
            grad[j] = value if name not in self.real_params else 1.0
            seeded[name] = _ops.Dual(value, grad)
        with np.errstate(all="ignore"):
            out = self.log_likelihood(seeded, self._data(arrays), _ops.DUAL)
        return out.value, {name: out.grad[j] for j, name in enumerate(names)}

    def _with_row_cache(self, arrays: dict[str, Any], weights: np.ndarray) -> dict[str, Any]:
        """Parameter-free pieces of ``_row_log_likelihood_grad`` (keys starting with ``_``)."""
        return arrays

    # -- transforms -------------------------------------------------------------------
    def _positive(self) -> np.ndarray:
        design = self.covariate_design_
        coefficients = set(design.coefficients) if design is not None else set()
        return np.array(
            [name not in self.real_params and name not in coefficients
             for name in self.param_names]
        )

    def _to_params(self, theta: Any, ops: Any) -> dict[str, Any]:
        positive = self._positive()
        return {
            name: ops.exp(value) if positive[i] else value
            for i, (name, value) in enumerate(zip(self.param_names, theta, strict=True))
        }

    def _to_theta(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        return np.where(self._positive(), np.log(np.where(self._positive(), values, 1.0)), values)

    def _data(self, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {c: arrays[c] for c in self._likelihood_columns()}

    # -- per-customer parameters (covariates) ----------------------------------------
    def _row_theta(
        self, base: Mapping[str, Any], coefficients: np.ndarray, design: np.ndarray,
        roles: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, Any]:
        """Transformed parameters of every row: ``theta + sign * Z_role @ gamma_role``.

        ``base`` holds one value per model parameter (scalars, or ``(n_draws, 1)``),
        ``coefficients`` is ``(n_coefficients,)`` or ``(n_draws, n_coefficients)`` and
        ``design`` ``(n_rows, n_design)``; parameters without covariates keep their
        value, the others become ``(n_rows,)`` or ``(n_draws, n_rows)``.
        """
        spec = self.covariate_design_
        out = dict(base)
        for role, effects in self.covariate_effects.items():
            if role not in spec.role_design:
                continue
            coef = spec.role_coefficients[role]
            matrix = roles[role] if roles is not None else design[:, spec.role_design[role]]
            eta = coefficients[..., coef] @ matrix.T
            for name, sign in effects:
                out[name] = out[name] + sign * eta
        return out

    def _natural(self, theta: Mapping[str, Any]) -> dict[str, Any]:
        return {
            name: value if name in self.real_params else np.exp(value)
            for name, value in theta.items()
        }

    def _split_theta(self, theta: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
        names = type(self).param_names
        k = len(names)
        return dict(zip(names, theta[:k], strict=True)), np.asarray(theta[k:], dtype=float)

    def _covariate_neg_loglik_grad(
        self, theta: np.ndarray, arrays: Mapping[str, Any], weights: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Weighted negative log-likelihood and gradient with covariates: the chain rule
        from the per-row derivatives of the model to its coefficients."""
        base, gamma = self._split_theta(np.asarray(theta, dtype=float))
        design = arrays[DESIGN]
        roles = arrays.get("_role_design")
        params = self._natural(self._row_theta(base, gamma, design, roles))
        with np.errstate(all="ignore"):
            ll, derivs = self._row_log_likelihood_grad(params, arrays)
        names = type(self).param_names
        n = len(weights)
        grad_base = np.array(
            [-float(np.sum(weights * np.broadcast_to(derivs[k], (n,)))) for k in names]
        )
        grad_gamma = np.zeros(gamma.size)
        spec = self.covariate_design_
        for role, effects in self.covariate_effects.items():
            if role not in spec.role_design:
                continue
            slope = 0.0
            for name, sign in effects:
                slope = slope + sign * np.broadcast_to(derivs[name], (n,))
            coef = spec.role_coefficients[role]
            matrix = roles[role] if roles is not None else design[:, spec.role_design[role]]
            grad_gamma[coef] -= (weights * slope) @ matrix
        return -float(np.dot(weights, ll)), np.concatenate([grad_base, grad_gamma])

    def _params_for(
        self, data: pd.DataFrame | None, draws: pd.DataFrame | None = None
    ) -> dict[str, np.ndarray]:
        """Parameters ready to broadcast against the rows of ``data`` (see
        :meth:`BaseModel._params_for`); with covariates, each row's own parameters,
        ``(n,)`` or ``(n_draws, n)`` (the base parameters without ``data``)."""
        if self.covariate_design_ is None:
            return super()._params_for(data, draws)
        self._check_fitted()
        names = type(self).param_names
        if draws is None:
            base = {k: np.asarray(float(self.params_[k])) for k in names}
        else:
            base = {k: draws[k].to_numpy(dtype=float)[:, None] for k in names}
        return self._apply_covariates(base, data, draws)

    def _apply_covariates(
        self, base: dict[str, np.ndarray], data: pd.DataFrame | None, draws: pd.DataFrame | None
    ) -> dict[str, np.ndarray]:
        """Base parameters (scalars, per row, or per draw and row) turned into each
        row's parameters with its covariates; unchanged without ``data``."""
        design = self.covariate_design_
        if design is None or data is None:
            return base
        coefficients = list(design.coefficients)
        if draws is None:
            point = self.params_[coefficients]
            if isinstance(point, pd.DataFrame):  # grouped models: shared by every group
                point = point.iloc[0]
            gamma = point.to_numpy(dtype=float)
        else:
            frame = draws
            if "draw" in draws.columns:  # long frames of grouped models: one row per group
                frame = draws.drop_duplicates("draw").sort_values("draw")
            gamma = frame[coefficients].to_numpy(dtype=float)
        matrix = design.matrix(data, type(self).__name__)
        out = {k: v for k, v in base.items() if k in type(self).param_names}
        for role, effects in self.covariate_effects.items():
            if role not in design.role_design:
                continue
            cols, coef = design.role_design[role], design.role_coefficients[role]
            eta = gamma[..., coef] @ matrix[:, cols].T
            for name, sign in effects:
                if name in self.real_params:
                    out[name] = out[name] + sign * eta
                else:
                    out[name] = out[name] * np.exp(sign * eta)
        return {k: np.asarray(v, dtype=float) for k, v in out.items()}

    def automatic_neg_loglik_grad(
        self, theta: np.ndarray, arrays: Mapping[str, Any], weights: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """The weighted negative log-likelihood and its exact gradient, by forward-mode
        differentiation of the declared ``log_likelihood`` (with covariates, in every
        parameter and coefficient at once: slow, and independent of the chain rule of
        the fitting path, which the tests check against it)."""
        data = self._data(arrays)
        design = self.covariate_design_

        def total(theta_duals: list) -> Any:
            if design is None:
                params = self._to_params(theta_duals, _ops.DUAL)
            else:
                k = len(type(self).param_names)
                base = dict(zip(type(self).param_names, theta_duals[:k], strict=True))
                matrix = arrays[DESIGN]
                for role, effects in self.covariate_effects.items():
                    if role not in design.role_design:
                        continue
                    cols, coef = design.role_design[role], design.role_coefficients[role]
                    eta = 0.0
                    for col, j in zip(cols, coef, strict=True):
                        eta = theta_duals[k + j] * matrix[:, col] + eta
                    for name, sign in effects:
                        base[name] = base[name] + sign * eta
                params = {
                    name: value if name in self.real_params else _ops.DUAL.exp(value)
                    for name, value in base.items()
                }
            return -_ops.dual_sum(self.log_likelihood(params, data, _ops.DUAL) * weights)

        with np.errstate(all="ignore"):
            return _ops.value_and_grad(total, theta)

    def _neg_loglik(
        self, theta: np.ndarray, arrays: Mapping[str, Any], weights: np.ndarray
    ) -> float:
        params = self._to_params(theta, _ops.NUMPY)
        with np.errstate(all="ignore"):
            per_row = self.log_likelihood(params, self._data(arrays), _ops.NUMPY)
            return -float(np.dot(weights, per_row))

    # -- fitting ------------------------------------------------------------------
    def fit(self, data: Any, weights: Any = None) -> MaximumLikelihoodModel:
        """Fit by maximum likelihood.

        Identical rows are collapsed into weighted rows first, so the cost follows the
        number of distinct rows, not of customers.

        Parameters
        ----------
        data : DataFrame
            Summary frame (:func:`clvmodels.rfm_summary`) with the model's
            ``data_columns``.
        weights : array-like, optional
            Number of customers each row stands for (for pre-aggregated data).

        Returns
        -------
        self
        """
        name = type(self).__name__
        penalizer = check_penalizer(self.penalizer)
        try:
            spec = self._covariate_spec()
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
        columns = self._likelihood_columns()
        frame = validate_summary(
            data,
            require_monetary="monetary_value" in columns,
            require_timing="T" in columns or "recency" in columns,
            context=f"{name}.fit",
        )
        time_unit = frame.attrs.get("time_unit")
        frame = without_attrs(frame)  # the checks below read many columns
        w_all = None if weights is None else checked_weights(weights, frame)
        self._check_data(frame)
        use = np.asarray(self._fit_rows(frame), dtype=bool)
        self.n_excluded_ = int((~use).sum())
        rows = frame.loc[use] if self.n_excluded_ else frame
        arrays = {c: rows[c].to_numpy(dtype=float) for c in columns}
        design = None
        if spec is not None:
            # Levels are learnt on every customer (all are scored), the design on those
            # the likelihood reads.
            design = CovariateDesign.learn(spec, frame, f"{name}.fit")
            matrix = design.matrix(rows, f"{name}.fit")
            arrays.update({f"{DESIGN}{j}": matrix[:, j] for j in range(matrix.shape[1])})
        if w_all is None:
            n_obs = len(rows)
            if self.compress_rows:
                uniques, w = count_distinct(list(arrays.values()))
                arrays = dict(zip(arrays, uniques, strict=True))
            else:
                w = np.ones(n_obs)
        else:
            w = w_all[use]
            keep = w > 0
            if not keep.any():
                raise DataValidationError(f"{name}.fit: every row the model can use has weight 0")
            arrays, w = {c: v[keep] for c, v in arrays.items()}, w[keep]
            n_obs = round(float(w.sum()))
        if design is not None:
            width = len(design.design_columns)
            matrix = np.column_stack([arrays.pop(f"{DESIGN}{j}") for j in range(width)])
            design.check_identifiable(matrix, w, f"{name}.fit")
            arrays[DESIGN] = matrix
        self._set_covariate_design(design)
        self.time_unit_ = time_unit
        self._fit_arrays(self._fit_cache(arrays, w), w, n_obs, penalizer)
        return self

    # -- the objective: with or without covariates ------------------------------------
    def _fit_cache(self, arrays: dict[str, Any], weights: np.ndarray) -> dict[str, Any]:
        """Parameter-free pieces of the gradient, for the path in use."""
        design = self.covariate_design_
        if design is None:
            return self._with_cache(arrays, weights)
        matrix = arrays[DESIGN]
        roles = {
            role: np.ascontiguousarray(matrix[:, cols]) for role, cols in design.role_design.items()
        }
        return self._with_row_cache({**arrays, "_role_design": roles}, weights)

    def _nll_and_grad(
        self, theta: np.ndarray, arrays: Mapping[str, Any], weights: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Weighted negative log-likelihood and gradient at transformed ``theta``."""
        if self.covariate_design_ is None:
            return self._neg_loglik_grad(theta, arrays, weights)
        return self._covariate_neg_loglik_grad(theta, arrays, weights)

    def _nll(self, theta: np.ndarray, arrays: Mapping[str, Any], weights: np.ndarray) -> float:
        """Weighted negative log-likelihood at transformed ``theta`` (the declared one)."""
        if self.covariate_design_ is None:
            return self._neg_loglik(theta, arrays, weights)
        base, gamma = self._split_theta(np.asarray(theta, dtype=float))
        params = self._natural(self._row_theta(base, gamma, arrays[DESIGN]))
        with np.errstate(all="ignore"):
            per_row = self.log_likelihood(params, self._data(arrays), _ops.NUMPY)
        return -float(np.dot(weights, per_row))

    def _reference(self, arrays: Mapping[str, Any], weights: np.ndarray) -> np.ndarray:
        """Natural centre on the optimiser's scale (coefficients: 0)."""
        reference = np.asarray(self._log_reference(arrays, weights), dtype=float)
        design = self.covariate_design_
        if design is None:
            return reference
        return np.concatenate([reference, np.zeros(len(design.coefficients))])

    def _coordinate_map(self, matrix: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``M`` with ``theta = M phi``: the optimiser's coordinates ``phi`` are the model's
        parameters at the mean covariates and the coefficients of standardised
        covariates, so that covariates in any unit are equally well conditioned."""
        design = self.covariate_design_
        total = float(weights.sum())
        mean = weights @ matrix / total
        sd = np.sqrt(np.maximum(weights @ (matrix - mean) ** 2 / total, 1e-300))
        names = list(type(self).param_names)
        k, c = len(names), len(design.coefficients)
        column = np.empty(c, dtype=np.intp)
        for role, coef in design.role_coefficients.items():
            column[coef] = design.role_design[role]
        M = np.eye(k + c)
        M[k:, k:] = np.diag(1.0 / sd[column])
        for role, effects in self.covariate_effects.items():
            if role not in design.role_design:
                continue
            cols, coef = design.role_design[role], design.role_coefficients[role]
            for name, sign in effects:
                M[names.index(name), k + coef] -= sign * mean[cols] / sd[cols]
        return M

    def _objective(
        self, arrays: Mapping[str, Any], weights: np.ndarray, penalizer: float,
        reference: np.ndarray | None = None,
    ) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
        """Penalised negative log-likelihood per customer, with its gradient."""
        total = float(weights.sum())
        if reference is None:
            reference = self._reference(arrays, weights)
        if self.covariate_design_ is not None:
            return self._covariate_objective(arrays, weights, penalizer, reference)

        # Scaled per customer so that tolerances mean the same thing for a thousand
        # customers and for ten million.
        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = self._neg_loglik_grad(theta, arrays, weights)
            if penalizer:
                # Ridge around the natural centre: it keeps estimates away from both 0
                # and infinity on degenerate data.
                dev = theta - reference
                value = value + penalizer * total * float(np.sum(dev**2))
                grad = grad + penalizer * total * 2 * dev
            # One sum is finite exactly when every entry is (short of overflow, which is
            # as unusable); cheaper than a reduction over isfinite on every evaluation.
            if not (math.isfinite(value) and math.isfinite(grad.sum())):
                return np.inf, np.zeros_like(theta)
            return value / total, grad / total

        return objective

    def _coefficient_penalties(self) -> np.ndarray:
        """L2 penalty per customer of every coefficient: the sum of its roles' lambdas."""
        design = self.covariate_design_
        return np.array(
            [sum(design.spec.penalty.get(r, 0.0) for r in roles)
             for roles in design.coefficient_roles()]
        )

    def _covariate_objective(
        self, arrays: Mapping[str, Any], weights: np.ndarray, penalizer: float,
        reference: np.ndarray,
    ) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
        """The objective in the optimiser's coordinates ``phi`` (see _coordinate_map):
        ridge on the model's parameters, L2 penalty on the raw coefficients."""
        total = float(weights.sum())
        M = self._map
        k = len(type(self).param_names)
        lam = self._coefficient_penalties()

        def objective(phi: np.ndarray) -> tuple[float, np.ndarray]:
            theta = M @ phi
            value, grad = self._covariate_neg_loglik_grad(theta, arrays, weights)
            if lam.any():
                gamma = theta[k:]
                value = value + total * float(np.sum(lam * gamma**2))
                grad = grad.copy()
                grad[k:] += total * 2 * lam * gamma
            grad = M.T @ grad
            if penalizer:
                dev = phi[:k] - reference[:k]
                value = value + penalizer * total * float(np.sum(dev**2))
                grad[:k] += penalizer * total * 2 * dev
            if not (np.isfinite(value) and np.all(np.isfinite(grad))):
                return np.inf, np.zeros_like(phi)
            return value / total, grad / total

        return objective

    def _initial_points(self, arrays: Mapping[str, Any], weights: np.ndarray) -> list[np.ndarray]:
        """Starting points on the optimiser's scale (coefficients at 0)."""
        starts = [np.asarray(s, dtype=float) for s in self._initial_values(arrays, weights)]
        design = self.covariate_design_
        if design is None:
            return starts
        zeros = np.zeros(len(design.coefficients))
        return [np.concatenate([s, zeros]) for s in starts]

    def _starts(
        self, arrays: Mapping[str, Any], weights: np.ndarray, penalizer: float
    ) -> list[np.ndarray]:
        starts = self._initial_points(arrays, weights)
        n_rows = len(weights)
        if n_rows <= self.WARM_START_ROWS:
            return starts
        # A uniform subset of the distinct rows, weights scaled up: an unbiased
        # estimate of the full likelihood whose optimum lies close to the full one.
        rng = np.random.default_rng(0)
        keep = np.sort(rng.choice(n_rows, size=self.WARM_START_ROWS // 2, replace=False))
        sub_weights = weights[keep] * (weights.sum() / weights[keep].sum())
        sub_arrays = self._fit_cache(
            {k: v[keep] for k, v in arrays.items() if not k.startswith("_") or k == DESIGN},
            sub_weights,
        )
        try:
            warm = self._minimise(sub_arrays, sub_weights, starts, penalizer)
        except ConvergenceError:
            return starts
        if self.covariate_design_ is not None:
            # The subset's curvature whitens the full problem (see _polish).
            sub_objective = self._objective(sub_arrays, sub_weights, penalizer)
            self._warm_curvature = numerical_hessian(lambda x: sub_objective(x)[1], warm.x)
        return [warm.x, *starts]

    def _polish(
        self, arrays: Mapping[str, Any], weights: np.ndarray, penalizer: float,
        start: np.ndarray, curvature: np.ndarray,
    ) -> optimize.OptimizeResult | None:
        """Minimise from a warm start in coordinates whitened by the warm start's
        curvature, ``x = start + L^-T u`` with ``L L' = H``: there the Hessian is close to
        the identity, so L-BFGS needs a handful of full-data gradients where it would
        need dozens (with covariates the rows rarely collapse, and each gradient costs
        a pass over every customer). None where the curvature is unusable or the
        polish does not converge; the caller then minimises as usual."""
        try:
            chol = np.linalg.cholesky((curvature + curvature.T) / 2)
            inv_t = np.linalg.inv(chol).T
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(inv_t)):
            return None
        objective = self._objective(arrays, weights, penalizer)

        def whitened(u: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = objective(start + inv_t @ u)
            return value, inv_t.T @ grad

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = optimize.minimize(
                whitened, np.zeros(start.size), jac=True, method="L-BFGS-B",
                options={"maxiter": 500, "ftol": 1e-14, "gtol": 1e-9},
            )
        if not np.isfinite(res.fun):
            return None
        res.x = start + inv_t @ res.x
        res.jac = chol @ res.jac
        if float(np.max(np.abs(res.jac))) > 1e-5:
            return None
        res.total_weight = float(weights.sum())
        return res

    def _minimise(
        self,
        arrays: Mapping[str, Any],
        weights: np.ndarray,
        starts: list[np.ndarray],
        penalizer: float,
    ) -> optimize.OptimizeResult:
        reference = self._reference(arrays, weights)
        objective = self._objective(arrays, weights, penalizer, reference)
        best: optimize.OptimizeResult | None = None
        messages = []
        for start in starts:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                res = optimize.minimize(
                    objective,
                    np.asarray(start, dtype=float),
                    jac=True,
                    method="L-BFGS-B",
                    bounds=[(c - 30.0, c + 30.0) for c in reference],
                    options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9},
                )
            messages.append(str(res.message))
            if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
                best = res
            finite = np.all(np.isfinite(res.jac))
            grad_norm = float(np.max(np.abs(res.jac))) if finite else 1.0
            if res.success and grad_norm < 1e-5:
                break
        if best is None or not np.isfinite(best.fun):
            raise ConvergenceError(
                f"{type(self).__name__} could not evaluate a finite likelihood from any "
                f"starting point (optimiser said: {'; '.join(messages)}). Check that the "
                "summary is in consistent time units and that its columns are valid; a "
                "small `penalizer` (e.g. 1e-3) can help on degenerate data."
            )
        best.total_weight = float(weights.sum())
        best.reference = reference
        return best

    def _fit_arrays(
        self, arrays: Mapping[str, Any], weights: np.ndarray, n_obs: int, penalizer: float
    ) -> None:
        design = self.covariate_design_
        self._map = None if design is None else self._coordinate_map(arrays[DESIGN], weights)
        try:
            self._fit_mapped(arrays, weights, n_obs, penalizer)
        finally:
            del self._map

    def _fit_mapped(
        self, arrays: Mapping[str, Any], weights: np.ndarray, n_obs: int, penalizer: float
    ) -> None:
        with _single_threaded_blas():
            starts = self._starts(arrays, weights, penalizer)
            curvature = self.__dict__.pop("_warm_curvature", None)
            res = None
            if curvature is not None:
                res = self._polish(arrays, weights, penalizer, starts[0], curvature)
            if res is None:
                res = self._minimise(arrays, weights, starts, penalizer)
        theta = np.asarray(res.x, dtype=float)
        grad_norm = float(np.max(np.abs(res.jac)))
        reference = getattr(res, "reference", None)
        if reference is None:  # polished from a warm start
            reference = self._reference(arrays, weights)
        drift = np.abs(theta - reference)
        names = list(self.param_names)
        runaway = [i for i in range(len(names)) if drift[i] > self.DRIFT_LIMIT]
        if runaway:
            values = self._to_params(self._from_optimiser(theta), _ops.NUMPY)
            edge = {names[i]: float(values[names[i]]) for i in runaway}
            raise ConvergenceError(
                f"{type(self).__name__} did not converge to a finite optimum: the likelihood "
                f"keeps improving towards the edge of the parameter space ({edge}), so "
                "the data do not identify every parameter (e.g. nobody repeats, or nobody "
                "shows signs of dropping out). What to try: (1) check that recency <= T and "
                "that times are in one unit; (2) use more customers or a longer observation "
                "period; (3) pass a small `penalizer` (e.g. 1e-3) to regularise the fit."
            )
        if grad_norm > 1e-3:
            raise ConvergenceError(
                f"{type(self).__name__} did not converge: optimiser said {res.message!r}, "
                f"largest gradient {grad_norm:.2g}, transformed parameters "
                f"{dict(zip(names, np.round(theta, 3), strict=True))}. What to try: "
                "(1) check that recency <= T and that times are in one unit; "
                "(2) look for a handful of customers with implausible frequency; "
                "(3) pass a small `penalizer` (e.g. 1e-3) to regularise a flat likelihood."
            )
        if penalizer or self._map is not None:
            log_likelihood = -self._nll(self._from_optimiser(theta), arrays, weights)
        else:
            # Unpenalised, the objective is the negative log-likelihood per customer.
            log_likelihood = -float(res.fun) * res.total_weight
        if not math.isfinite(log_likelihood):
            raise ConvergenceError(
                f"{type(self).__name__}: the log-likelihood at the optimum is not finite"
            )
        with _single_threaded_blas():
            if self._map is None:
                covariance = self._covariance(arrays, weights, theta, penalizer, reference)
            else:
                covariance = self._covariate_covariance(
                    arrays, weights, self._from_optimiser(theta), penalizer
                )
        self._install(self._from_optimiser(theta), covariance, log_likelihood, n_obs)

    def _from_optimiser(self, x: np.ndarray) -> np.ndarray:
        """Transformed parameters from the optimiser's coordinates."""
        mapping = getattr(self, "_map", None)
        return x if mapping is None else mapping @ x

    def _covariance(
        self,
        arrays: Mapping[str, Any],
        weights: np.ndarray,
        theta: np.ndarray,
        penalizer: float,
        reference: np.ndarray,
    ) -> np.ndarray:
        # With a penalizer the curvature of the penalised objective is the honest one:
        # the estimate is then a posterior mode under a normal prior.
        ridge = 2.0 * penalizer * float(weights.sum())

        def grad(x: np.ndarray) -> np.ndarray:
            return self._neg_loglik_grad(x, arrays, weights)[1] + ridge * (x - reference)

        return self._inverse_information(numerical_hessian(grad, theta), len(theta))

    def _covariate_covariance(
        self, arrays: Mapping[str, Any], weights: np.ndarray, theta: np.ndarray, penalizer: float
    ) -> np.ndarray:
        """Inverse observed information (of the penalised objective) with covariates.

        Every row's transformed parameters are linear in ``(theta, gamma)``, so the
        Hessian is ``sum_i w_i J_i' h_i J_i`` with ``h_i`` the row's Hessian in its own
        few parameters: forward differences of the exact per-row derivatives in each
        model parameter (one pass over the rows per model parameter, not per
        coefficient), assembled with the design matrix. Inverted in the optimiser's
        coordinates, where it is well conditioned, and mapped back.
        """
        hess = self._covariate_hessian(theta, arrays, weights)
        total = float(weights.sum())
        k = len(type(self).param_names)
        idx = np.arange(k, len(theta))
        hess[idx, idx] += 2.0 * total * self._coefficient_penalties()
        M = self._map
        hess_phi = M.T @ hess @ M
        if penalizer:
            hess_phi[np.arange(k), np.arange(k)] += 2.0 * penalizer * total
        return M @ self._inverse_information(hess_phi, len(theta)) @ M.T

    def _covariate_hessian(
        self, theta: np.ndarray, arrays: Mapping[str, Any], weights: np.ndarray
    ) -> np.ndarray:
        """Hessian of the weighted negative log-likelihood in ``(theta, gamma)``."""
        names = list(type(self).param_names)
        k = len(names)
        base, gamma = self._split_theta(np.asarray(theta, dtype=float))
        design = arrays[DESIGN]
        rows = self._row_theta(base, gamma, design, arrays.get("_role_design"))
        n = len(weights)
        # columns of every row's Hessian, by forward differences of exact derivatives
        with np.errstate(all="ignore"):
            _, d0 = self._row_log_likelihood_grad(self._natural(rows), arrays)
            columns = []
            for name in names:
                step = 1e-5 * max(1.0, abs(float(base[name])))
                shifted = {**rows, name: rows[name] + step}
                _, d1 = self._row_log_likelihood_grad(self._natural(shifted), arrays)
                columns.append({o: (d1[o] - d0[o]) / step for o in names})
        # weighted and symmetrised, of the negative log-likelihood
        wh = [[None] * k for _ in range(k)]
        for p in range(k):
            for q in range(p, k):
                both = columns[q][names[p]] + columns[p][names[q]]
                wh[p][q] = wh[q][p] = np.broadcast_to(-0.5 * both, (n,)) * weights
        spec = self.covariate_design_
        c = gamma.size
        # (parameter, coefficient positions, sign * role design) of every effect
        effects = [
            (names.index(name), spec.role_coefficients[role], sign,
             np.ascontiguousarray(design[:, spec.role_design[role]]))
            for role, pairs in self.covariate_effects.items() if role in spec.role_design
            for name, sign in pairs
        ]
        out = np.zeros((k + c, k + c))
        out[:k, :k] = [[float(wh[p][q].sum()) for q in range(k)] for p in range(k)]
        for p in range(k):
            for q, coef, sign, matrix in effects:
                out[p, k + coef] += sign * (wh[p][q] @ matrix)
        out[k:, :k] = out[:k, k:].T
        for i, (p, coef_p, sign_p, matrix_p) in enumerate(effects):
            for j in range(i, len(effects)):
                q, coef_q, sign_q, matrix_q = effects[j]
                block = sign_p * sign_q * ((matrix_p * wh[p][q][:, None]).T @ matrix_q)
                out[np.ix_(k + coef_p, k + coef_q)] += block
                if j != i:
                    out[np.ix_(k + coef_q, k + coef_p)] += block.T
        return (out + out.T) / 2

    def _inverse_information(self, hess: np.ndarray, size: int) -> np.ndarray:
        """The inverse of an observed information matrix, or NaN with a warning."""
        self.hessian_warning_ = None
        try:
            cov = np.linalg.inv(hess)
            eig = np.linalg.eigvalsh(hess)
            if not np.all(np.isfinite(cov)) or eig.min() <= 0:
                raise np.linalg.LinAlgError("Hessian is not positive definite")
            if np.sqrt(np.diag(cov)).max() > MAX_STANDARD_ERROR:
                raise np.linalg.LinAlgError(
                    f"standard errors above {MAX_STANDARD_ERROR:g} on the transformed scale"
                )
        except np.linalg.LinAlgError as err:
            self.hessian_warning_ = (
                f"standard errors unavailable: the observed information matrix is singular "
                f"or not positive definite ({err}); the optimum is flat in some direction, "
                "typically because the data cannot identify every parameter."
            )
            warnings.warn(self.hessian_warning_, RuntimeWarning, stacklevel=6)
            cov = np.full((size, size), np.nan)
        return (cov + cov.T) / 2

    def _install(
        self, theta: np.ndarray, covariance: np.ndarray, log_likelihood: float, n_obs: int
    ) -> None:
        names = list(self.param_names)
        index = _parameter_index(tuple(names))
        values = self._to_params(theta, _ops.NUMPY)
        self.params_ = pd.Series(
            np.array([values[k] for k in names], dtype=float), index=index.view(), name="estimate",
            copy=False,
        )
        self._theta = np.asarray(theta, dtype=float)
        self.covariance_ = pd.DataFrame(
            covariance, index=index.view(), columns=index.view(), copy=False
        )
        self.log_likelihood_ = float(log_likelihood)
        self.n_obs_ = int(n_obs)
        k = len(names)
        self.aic_ = 2 * k - 2 * self.log_likelihood_
        self.bic_ = k * math.log(max(self.n_obs_, 1)) - 2 * self.log_likelihood_
        if not hasattr(self, "hessian_warning_") or self.hessian_warning_ is None:
            self.hessian_warning_ = (
                None if np.all(np.isfinite(covariance)) else "no covariance available"
            )

    # -- results ------------------------------------------------------------------
    @property
    def covariance_log_(self) -> pd.DataFrame:
        """Covariance of the estimates on the optimiser's scale (log for positive
        parameters): the inverse observed information."""
        self._check_fitted()
        return self.covariance_

    @property
    def standard_errors_(self) -> pd.Series:
        """Delta-method standard errors on the natural parameter scale."""
        self._check_fitted()
        se = np.sqrt(np.diag(self.covariance_.to_numpy()))
        est = self.params_.to_numpy()
        se = np.where(self._positive(), est * se, se)
        return pd.Series(se, index=self.params_.index, name="se")

    def summary(self, interval: float = 0.95) -> pd.DataFrame:
        """Estimates, standard errors and ``interval`` confidence intervals.

        Intervals are symmetric on the optimiser's scale and mapped back: for a
        positive parameter ``exp(log(theta) +- z se_log)``, so they never leave the
        positive half-line. ``attrs`` holds the log-likelihood, AIC, BIC and the
        number of customers.
        """
        self._check_fitted()
        z = _normal_quantile(interval)
        se = np.sqrt(np.diag(self.covariance_.to_numpy()))
        est = self.params_.to_numpy()
        positive = self._positive()
        pct = f"{100 * interval:g}%"
        table = pd.DataFrame(
            {
                "estimate": est,
                "se": np.where(positive, est * se, se),
                f"lower {pct}": np.where(positive, est * np.exp(-z * se), est - z * se),
                f"upper {pct}": np.where(positive, est * np.exp(z * se), est + z * se),
            },
            index=self.params_.index,
        )
        table.attrs.update(
            {
                "log_likelihood": self.log_likelihood_,
                "aic": self.aic_,
                "bic": self.bic_,
                "n_obs": self.n_obs_,
                "note": self.hessian_warning_ or "",
            }
        )
        return table

    def param_draws(self, n: int, random_state: Any = None) -> pd.DataFrame:
        """Draws from the estimator's asymptotic sampling distribution.

        The estimate on the optimiser's scale is approximately normal with the inverse
        observed information as covariance; draws are taken there and mapped back.

        Parameters
        ----------
        n : int
            Number of draws.
        random_state : int, numpy Generator or None
            Seed for reproducible draws.
        """
        self._check_fitted()
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or int(n) < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        cov = self.covariance_.to_numpy()
        if not np.all(np.isfinite(cov)):
            raise ValueError(
                f"{type(self).__name__} has no finite covariance, so no parameter draws: "
                f"{self.hessian_warning_}"
            )
        rng = np.random.default_rng(random_state)
        theta = rng.multivariate_normal(self._theta, cov, size=int(n), method="eigh")
        # One contiguous row per parameter: NumPy 2.0 maps a strided row through np.exp
        # by one of two loops that differ in the last bit, and which one it takes varied
        # within a process, so the same seed could give draws an ulp apart.
        values = self._to_params(np.ascontiguousarray(theta.T), _ops.NUMPY)
        return pd.DataFrame({k: np.asarray(values[k], dtype=float) for k in self.param_names})

    # -- persistence ----------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        """Constructor arguments, JSON-ready."""
        out: dict[str, Any] = {"penalizer": float(self.penalizer)}
        spec = self._covariate_spec()
        if spec is not None:
            out.update(spec.settings())
        return out

    def _fitted_extra(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n_excluded": int(getattr(self, "n_excluded_", 0))}
        if self.covariate_design_ is not None:
            out["covariates"] = self.covariate_design_.to_json()
        return out

    def _restore_covariates(self, extra: Mapping[str, Any], source: str) -> None:
        """The fitted covariate design of a saved model (before its parameters)."""
        try:
            spec = self._covariate_spec()
        except ValueError as err:
            raise ModelFileError(f"{source}: field 'settings' is invalid ({err})") from err
        if spec is None:
            if "covariates" in extra:
                raise ModelFileError(
                    f"{source}: field 'extra.covariates' is present, but the settings name no "
                    "covariates"
                )
            self._set_covariate_design(None)
            return
        if "covariates" not in extra:
            raise ModelFileError(
                f"{source}: field 'extra.covariates' is missing (the settings name covariates "
                f"{list(spec.columns)})"
            )
        self._set_covariate_design(CovariateDesign.from_json(spec, extra["covariates"], source))

    def _restore_extra(self, extra: Mapping[str, Any], source: str) -> None:
        unknown = sorted(set(extra) - self.EXTRA_FIELDS)
        if unknown:
            raise ModelFileError(f"{source}: unknown field(s) {unknown} in 'extra'")
        value = extra.get("n_excluded", 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ModelFileError(f"{source}: field 'extra.n_excluded' must be an integer >= 0")
        self.n_excluded_ = value

    def save(self, path: str | Path) -> Path:
        """Write parameters, covariance and settings as JSON (never the data).

        Examples
        --------
        >>> import tempfile
        >>> from clvmodels import BetaGeo, load, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
        ...                       observation_end="1997-09-30")
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = BetaGeo().fit(summary).save(Path(folder) / "bgnbd.json")
        ...     load(path).params_.round(4).to_dict()
        {'r': 0.2426, 'alpha': 4.4136, 'a': 0.7929, 'b': 2.4259}
        """
        self._check_fitted()
        payload = {
            "model": type(self).__name__,
            "format_version": FORMAT_VERSION,
            "settings": self._settings(),
            "params": {k: float(v) for k, v in self.params_.items()},
            "covariance": _json_matrix(self.covariance_.to_numpy()),
            "log_likelihood": _json_float(self.log_likelihood_),
            "n_obs": int(self.n_obs_),
            "time_unit": self.time_unit_,
            "extra": self._fitted_extra(),
        }
        text = json.dumps(payload, indent=2, allow_nan=False)
        return write_model_file(path, text.encode())

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], source: str = "model file") -> Any:
        """A fitted model from a saved JSON payload, every field checked first.

        Raises :class:`~clvmodels.errors.ModelFileError` naming ``source`` and the field
        for anything that would not make a valid model: unknown or missing keys, wrong
        types, parameters that are not finite or out of range, a covariance that is not
        symmetric positive definite, an unsupported format version.
        """
        check_payload_keys(
            payload,
            required={"model", "format_version", "params"},
            optional={"settings", "covariance", "covariance_log", "log_likelihood", "n_obs",
                      "time_unit", "extra"},
            source=source,
        )
        version = payload["format_version"]
        if isinstance(version, bool) or version not in (1, FORMAT_VERSION):
            raise ModelFileError(
                f"{source}: field 'format_version' is {version!r}; this version of clvmodels "
                f"reads 1 and {FORMAT_VERSION}"
            )
        settings = payload.get("settings")
        settings = {} if settings is None else settings
        if not isinstance(settings, Mapping):
            raise ModelFileError(f"{source}: field 'settings' must be an object")
        known = inspect.signature(cls).parameters
        open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in known.values())
        unknown = [key for key in settings if key not in known]
        # Named by repr: a key may hold any character, a newline included.
        if unknown and not open_ended:
            raise ModelFileError(
                f"{source}: field 'settings' names unknown settings {unknown!r} of {cls.__name__}"
            )
        try:
            model = cls(**settings)
            if "penalizer" in settings:
                check_penalizer(settings["penalizer"])
        except (TypeError, ValueError) as err:
            raise ModelFileError(f"{source}: field 'settings' is invalid ({err})") from err
        extra = payload.get("extra")
        extra = {} if extra is None else extra
        if not isinstance(extra, Mapping):
            raise ModelFileError(f"{source}: field 'extra' must be an object")
        model._restore_covariates(extra, source)
        key = "covariance" if "covariance" in payload else "covariance_log"
        model._install_checked(
            payload["params"],
            covariance=payload.get(key),
            covariance_field=key,
            log_likelihood=payload.get("log_likelihood"),
            n_obs=payload.get("n_obs", 0),
            time_unit=payload.get("time_unit"),
            source=source,
        )
        model._restore_extra(extra, source)
        return model

    def _install_checked(
        self,
        params: Any,
        *,
        covariance: Any,
        covariance_field: str = "covariance",
        log_likelihood: Any = None,
        n_obs: Any = 0,
        time_unit: Any = None,
        source: str,
    ) -> None:
        """Check saved or given fitted state field by field, then install it."""
        names = list(self.param_names)
        if not isinstance(params, Mapping) or set(params) != set(names):
            raise ModelFileError(
                f"{source}: field 'params' must hold exactly {names}, got "
                f"{sorted(params) if isinstance(params, Mapping) else type(params).__name__}"
            )
        values = np.array([_number(params[k], f"params.{k}", source) for k in names])
        positive = self._positive()
        bad = [k for k, v, pos in zip(names, values, positive, strict=True) if pos and not v > 0]
        if bad:
            raise ModelFileError(f"{source}: parameter(s) {bad} must be positive")
        theta = self._to_theta(values)
        # The model's own parameters are bounded; a coefficient's scale is that of its
        # covariate's units (gamma' z is what matters), so it is not.
        k = len(type(self).param_names)
        if np.any(np.abs(theta[:k]) > _LOG_LIMIT):
            raise ModelFileError(
                f"{source}: parameter values {dict(zip(names, values.tolist(), strict=True))} "
                f"are outside the supported range (transformed values within +-{_LOG_LIMIT:g})"
            )
        if isinstance(covariance, np.ndarray):
            covariance = covariance.tolist()
        matrix = _covariance_from(covariance, len(names), covariance_field, source, bounded=k)
        log_lik = (
            float("nan") if log_likelihood is None
            else _number(log_likelihood, "log_likelihood", source, finite=False)
        )
        if isinstance(n_obs, bool) or not isinstance(n_obs, int | np.integer) or n_obs < 0:
            raise ModelFileError(f"{source}: field 'n_obs' must be an integer >= 0")
        if time_unit is not None:
            from clvmodels.units import TIME_UNIT_DAYS

            if not isinstance(time_unit, str) or time_unit not in TIME_UNIT_DAYS:
                raise ModelFileError(
                    f"{source}: field 'time_unit' is {time_unit!r}; expected one of "
                    f"{list(TIME_UNIT_DAYS)} or null"
                )
        self.hessian_warning_ = None
        self._install(theta, matrix, log_lik, int(n_obs))
        self.time_unit_ = time_unit

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, float],
        *,
        covariance: Any = None,
        time_unit: str | None = None,
        n_obs: int = 0,
        log_likelihood: float = float("nan"),
        covariate_levels: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> Any:
        """A fitted model at given parameter values (published estimates, say).

        Parameters
        ----------
        params : mapping
            A value for every name in ``param_names`` (and, with covariates, every
            coefficient, e.g. ``purchase:age``).
        covariance : array, optional
            Covariance of the estimates on the optimiser's scale (log for positive
            parameters); without it the model predicts but has no ``param_draws``.
        time_unit : str, optional
            Unit of the summaries it will score (needed for CLV).
        n_obs, log_likelihood
            Recorded as if from a fit.
        covariate_levels : mapping, optional
            The levels of each categorical covariate column (any order: the first in
            sorted order of their string form is the reference level); other
            covariate columns are numeric.
        **settings
            Constructor arguments (``purchase_covariates=`` and so on included).

        Examples
        --------
        >>> from clvmodels import BetaGeo
        >>> model = BetaGeo.from_params({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
        >>> round(model.expected_purchases_new_customer(t=39), 4)
        1.1967
        """
        model = cls(**settings)
        spec = model._covariate_spec()
        if spec is None:
            if covariate_levels:
                raise ValueError("covariate_levels given, but the model has no covariates")
        else:
            levels = {
                column: sorted({str(v) for v in values})
                for column, values in dict(covariate_levels or {}).items()
            }
            model._set_covariate_design(
                CovariateDesign.from_json(spec, {"levels": levels}, "covariate_levels")
            )
        model._set_fitted(
            params, covariance_log=covariance, log_likelihood=log_likelihood, n_obs=n_obs,
            time_unit=time_unit,
        )
        return model

    def _set_fitted(
        self,
        params: Mapping[str, float],
        covariance_log: np.ndarray | None = None,
        log_likelihood: float = float("nan"),
        n_obs: int = 0,
        time_unit: str | None = None,
    ) -> None:
        """Install fitted state directly (migration from lifetimes), checked as on load."""
        source = f"{type(self).__name__} parameters"
        self._install_checked(
            dict(params),
            covariance=covariance_log,
            log_likelihood=None if not math.isfinite(log_likelihood) else log_likelihood,
            n_obs=n_obs,
            time_unit=time_unit,
            source=source,
        )


class PurchaseDropoutModel(MaximumLikelihoodModel, register=False):
    """A maximum-likelihood transaction model whose covariates act on its purchase and
    its dropout process (BG/NBD, MBG/NBD, Pareto/NBD): one constructor for them all.

    Parameters
    ----------
    penalizer : float, default 0
        Ridge penalty per customer on the model's transformed parameters.
    purchase_covariates, dropout_covariates : list of str, optional
        Summary columns that scale the purchase and the dropout process (see the
        model's ``covariate_effects`` and :mod:`clvmodels.models.covariates`).
    constrain : list of str or dict, optional
        Columns whose purchase and dropout coefficients are one shared coefficient.
    covariate_penalty : float or dict, default 0
        L2 penalty per customer on the coefficients (CLVTools ``reg.lambdas``).
    """

    def __init__(
        self,
        penalizer: float = 0.0,
        *,
        purchase_covariates: Any = None,
        dropout_covariates: Any = None,
        constrain: Any = None,
        covariate_penalty: Any = 0.0,
    ) -> None:
        super().__init__(
            penalizer,
            purchase_covariates=purchase_covariates,
            dropout_covariates=dropout_covariates,
            constrain=constrain,
            covariate_penalty=covariate_penalty,
        )


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _json_matrix(matrix: np.ndarray) -> list[list[float]] | None:
    if not np.all(np.isfinite(matrix)):
        return None
    return matrix.tolist()


def _number(value: Any, field: str, source: str, finite: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelFileError(f"{source}: field '{field}' must be a number, got {value!r}")
    try:
        value = float(value)
    except OverflowError as err:
        raise ModelFileError(f"{source}: field '{field}' is beyond the range of a float") from err
    if finite and not math.isfinite(value):
        raise ModelFileError(f"{source}: field '{field}' must be finite, got {value!r}")
    return value


def _covariance_from(
    value: Any, k: int, field: str, source: str, bounded: int | None = None
) -> np.ndarray:
    """A k x k symmetric positive definite matrix, or all-NaN (no covariance); the
    standard errors of the first ``bounded`` entries (default all) at most
    MAX_STANDARD_ERROR."""
    if value is None:
        return np.full((k, k), np.nan)
    if not (
        isinstance(value, list)
        and len(value) == k
        and all(isinstance(row, list) and len(row) == k for row in value)
    ):
        raise ModelFileError(f"{source}: field '{field}' must be a {k} x {k} list of numbers")
    matrix = np.array(
        [[_number(v, field, source, finite=False) for v in row] for row in value], dtype=float
    )
    if np.all(np.isnan(matrix)):
        return matrix
    if not np.all(np.isfinite(matrix)):
        raise ModelFileError(f"{source}: field '{field}' has missing or infinite entries")
    if not np.allclose(matrix, matrix.T, rtol=1e-8, atol=1e-12 * np.abs(matrix).max()):
        raise ModelFileError(f"{source}: field '{field}' is not symmetric")
    if np.linalg.eigvalsh((matrix + matrix.T) / 2).min() <= 0:
        raise ModelFileError(f"{source}: field '{field}' is not positive definite")
    if np.sqrt(np.diag(matrix)[:bounded]).max() > MAX_STANDARD_ERROR:
        raise ModelFileError(
            f"{source}: field '{field}' implies standard errors above {MAX_STANDARD_ERROR:g} "
            "on the transformed scale (a factor of e^10 per standard error): no fit produces "
            "that, and parameter draws would overflow"
        )
    return (matrix + matrix.T) / 2
