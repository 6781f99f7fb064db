"""The maximum-likelihood engine: a model declares, the engine does the rest.

A model subclasses :class:`MaximumLikelihoodModel` and declares

* ``param_names``: its parameters (all positive unless listed in ``real_params``);
* ``data_columns``: the summary columns its likelihood reads;
* ``log_likelihood(params, data, ops)``: the per-customer log-likelihood, written
  once against an ``ops`` namespace (:mod:`clvmodels.models.ops`);
* optionally ``_log_reference`` (the natural centre of the parameters on the
  optimiser's scale, e.g. the data's time scale for a rate), ``_initial_values``
  (starting points), ``_fit_rows`` (which customers inform the fit) and, as a
  measured speed-up, an analytic ``_neg_loglik_grad``.

The engine owns ``fit(data, weights=None)``: validation, compression of identical
rows into weights, optimisation on the transformed scale (log for positive
parameters, so the optimiser is unconstrained and the asymptotic normal
approximation respects the parameter space), the gradient (forward-mode automatic
differentiation of ``log_likelihood`` unless the model supplies one), convergence
checks with a checklist of causes, the covariance from the observed information,
``summary``, ``param_draws``, AIC/BIC, and JSON persistence with validation on load.

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

from clvmodels.data import count_distinct, validate_summary
from clvmodels.errors import ConvergenceError, DataValidationError, ModelFileError
from clvmodels.models import ops as _ops
from clvmodels.models.base import BaseModel, check_payload_keys, write_model_file

__all__ = ["FORMAT_VERSION", "MaximumLikelihoodModel"]

#: Version of the JSON layout written by :meth:`MaximumLikelihoodModel.save`.
FORMAT_VERSION = 2

# Multi-threaded BLAS makes L-BFGS-B's tiny vector updates an order of magnitude slower
# (thread hand-offs dominate); the optimiser runs with BLAS pinned to one thread.
_THREADPOOLS: ThreadpoolController | None = None

# Parameters are stored and loaded within exp(+-_LOG_LIMIT) (about 1e-26 .. 1e26) of
# their natural centre: beyond it no data could have produced them, and predictions
# would overflow or crawl.
_LOG_LIMIT = 60.0
#: Largest standard error on the transformed scale that a covariance may imply: beyond
#: it the data do not identify the parameter (one standard error multiplies it by e^10)
#: and draws would overflow.
MAX_STANDARD_ERROR = 10.0


def _single_threaded_blas() -> Any:
    global _THREADPOOLS
    if _THREADPOOLS is None:
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api="blas")


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
    try:
        value = float(penalizer)
    except (TypeError, ValueError):
        value = float("nan")
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
        regularises data that cannot identify every parameter.
    """

    #: Parameters that may take any real value (no log transform).
    real_params: ClassVar[tuple[str, ...]] = ()
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
    EXTRA_FIELDS: ClassVar[frozenset[str]] = frozenset({"n_excluded"})

    def __init__(self, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer

    # -- declarations ---------------------------------------------------------------
    @property
    def data_columns(self) -> tuple[str, ...]:  # pragma: no cover - every model declares
        raise NotImplementedError

    @staticmethod
    def log_likelihood(params: Mapping[str, Any], data: Mapping[str, np.ndarray], ops: Any) -> Any:
        """Per-customer log-likelihood (an array over rows), written with ``ops``."""
        raise NotImplementedError

    def _fit_rows(self, data: pd.DataFrame) -> np.ndarray:
        """Which rows inform the fit (all by default); the others are counted."""
        return np.ones(len(data), dtype=bool)

    def _check_data(self, data: pd.DataFrame) -> None:
        """Model-specific checks of a validated summary before fitting (raise or warn)."""

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

    # -- transforms -------------------------------------------------------------------
    def _positive(self) -> np.ndarray:
        return np.array([name not in self.real_params for name in self.param_names])

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
        return {c: arrays[c] for c in self.data_columns}

    def automatic_neg_loglik_grad(
        self, theta: np.ndarray, arrays: Mapping[str, Any], weights: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """The weighted negative log-likelihood and its exact gradient, by forward-mode
        differentiation of the declared ``log_likelihood``."""
        data = self._data(arrays)

        def total(theta_duals: list) -> Any:
            params = self._to_params(theta_duals, _ops.DUAL)
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
        columns = tuple(self.data_columns)
        frame = validate_summary(
            data,
            require_monetary="monetary_value" in columns,
            require_timing="T" in columns or "recency" in columns,
            context=f"{name}.fit",
        )
        w_all = None if weights is None else checked_weights(weights, frame)
        self._check_data(frame)
        use = np.asarray(self._fit_rows(frame), dtype=bool)
        self.n_excluded_ = int((~use).sum())
        rows = frame.loc[use] if self.n_excluded_ else frame
        arrays = {c: rows[c].to_numpy(dtype=float) for c in columns}
        if w_all is None:
            n_obs = len(rows)
            if self.compress_rows:
                uniques, w = count_distinct(list(arrays.values()))
                arrays = dict(zip(columns, uniques, strict=True))
            else:
                w = np.ones(n_obs)
        else:
            w = w_all[use]
            keep = w > 0
            if not keep.any():
                raise DataValidationError(f"{name}.fit: every row the model can use has weight 0")
            arrays, w = {c: v[keep] for c, v in arrays.items()}, w[keep]
            n_obs = round(float(w.sum()))
        self.time_unit_ = frame.attrs.get("time_unit")
        self._fit_arrays(self._with_cache(arrays, w), w, n_obs, penalizer)
        return self

    def _objective(
        self, arrays: Mapping[str, Any], weights: np.ndarray, penalizer: float
    ) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
        """Penalised negative log-likelihood per customer, with its gradient."""
        total = float(weights.sum())
        reference = self._log_reference(arrays, weights)

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
            if not (np.isfinite(value) and np.all(np.isfinite(grad))):
                return np.inf, np.zeros_like(theta)
            return value / total, grad / total

        return objective

    def _starts(
        self, arrays: Mapping[str, Any], weights: np.ndarray, penalizer: float
    ) -> list[np.ndarray]:
        starts = [np.asarray(s, dtype=float) for s in self._initial_values(arrays, weights)]
        n_rows = len(weights)
        if n_rows <= self.WARM_START_ROWS:
            return starts
        # A uniform subset of the distinct rows, weights scaled up: an unbiased
        # estimate of the full likelihood whose optimum lies close to the full one.
        rng = np.random.default_rng(0)
        keep = np.sort(rng.choice(n_rows, size=self.WARM_START_ROWS // 2, replace=False))
        sub_weights = weights[keep] * (weights.sum() / weights[keep].sum())
        sub_arrays = self._with_cache(
            {k: v[keep] for k, v in arrays.items() if not k.startswith("_")}, sub_weights
        )
        try:
            warm = self._minimise(sub_arrays, sub_weights, starts, penalizer)
        except ConvergenceError:
            return starts
        return [warm.x, *starts]

    def _minimise(
        self,
        arrays: Mapping[str, Any],
        weights: np.ndarray,
        starts: list[np.ndarray],
        penalizer: float,
    ) -> optimize.OptimizeResult:
        objective = self._objective(arrays, weights, penalizer)
        reference = self._log_reference(arrays, weights)
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
        return best

    def _fit_arrays(
        self, arrays: Mapping[str, Any], weights: np.ndarray, n_obs: int, penalizer: float
    ) -> None:
        with _single_threaded_blas():
            starts = self._starts(arrays, weights, penalizer)
            res = self._minimise(arrays, weights, starts, penalizer)
        theta = np.asarray(res.x, dtype=float)
        grad_norm = float(np.max(np.abs(res.jac)))
        reference = self._log_reference(arrays, weights)
        drift = np.abs(theta - reference)
        names = list(self.param_names)
        runaway = [i for i in range(len(names)) if drift[i] > self.DRIFT_LIMIT]
        if runaway:
            values = self._to_params(theta, _ops.NUMPY)
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
        log_likelihood = -self._neg_loglik(theta, arrays, weights)
        if not math.isfinite(log_likelihood):
            raise ConvergenceError(
                f"{type(self).__name__}: the log-likelihood at the optimum is not finite"
            )
        with _single_threaded_blas():
            covariance = self._covariance(arrays, weights, theta, penalizer, reference)
        self._install(theta, covariance, log_likelihood, n_obs)

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

        hess = numerical_hessian(grad, theta)
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
            warnings.warn(self.hessian_warning_, RuntimeWarning, stacklevel=4)
            cov = np.full((len(theta), len(theta)), np.nan)
        return (cov + cov.T) / 2

    def _install(
        self, theta: np.ndarray, covariance: np.ndarray, log_likelihood: float, n_obs: int
    ) -> None:
        names = list(self.param_names)
        values = self._to_params(theta, _ops.NUMPY)
        self.params_ = pd.Series(
            [float(values[k]) for k in names], index=names, name="estimate", dtype=float
        )
        self._theta = np.asarray(theta, dtype=float)
        self.covariance_ = pd.DataFrame(covariance, index=names, columns=names)
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
        values = self._to_params(theta.T, _ops.NUMPY)
        return pd.DataFrame({k: np.asarray(values[k], dtype=float) for k in self.param_names})

    # -- persistence ----------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        """Constructor arguments, JSON-ready."""
        return {"penalizer": float(self.penalizer)}

    def _fitted_extra(self) -> dict[str, Any]:
        return {"n_excluded": int(getattr(self, "n_excluded_", 0))}

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
        if np.any(np.abs(theta) > _LOG_LIMIT):
            raise ModelFileError(
                f"{source}: parameter values {dict(zip(names, values.tolist(), strict=True))} "
                f"are outside the supported range (transformed values within +-{_LOG_LIMIT:g})"
            )
        if isinstance(covariance, np.ndarray):
            covariance = covariance.tolist()
        matrix = _covariance_from(covariance, len(names), covariance_field, source)
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
        **settings: Any,
    ) -> Any:
        """A fitted model at given parameter values (published estimates, say).

        Parameters
        ----------
        params : mapping
            A value for every name in ``param_names``.
        covariance : array, optional
            Covariance of the estimates on the optimiser's scale (log for positive
            parameters); without it the model predicts but has no ``param_draws``.
        time_unit : str, optional
            Unit of the summaries it will score (needed for CLV).
        n_obs, log_likelihood
            Recorded as if from a fit.
        **settings
            Constructor arguments.

        Examples
        --------
        >>> from clvmodels import BetaGeo
        >>> model = BetaGeo.from_params({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
        >>> round(model.expected_purchases_new_customer(t=39), 4)
        1.1967
        """
        model = cls(**settings)
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


def _covariance_from(value: Any, k: int, field: str, source: str) -> np.ndarray:
    """A k x k symmetric positive definite matrix, or all-NaN (no covariance)."""
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
    if np.sqrt(np.diag(matrix)).max() > MAX_STANDARD_ERROR:
        raise ModelFileError(
            f"{source}: field '{field}' implies standard errors above {MAX_STANDARD_ERROR:g} "
            "on the transformed scale (a factor of e^10 per standard error): no fit produces "
            "that, and parameter draws would overflow"
        )
    return (matrix + matrix.T) / 2
