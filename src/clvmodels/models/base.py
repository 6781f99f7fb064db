"""The model contract shared by every clvmodels model, and the registry behind ``load``.

Everything outside :mod:`clvmodels.models` (CLV, segmentation, evaluation, plots, the
report, Spark scoring and the command line) uses a model only through the public
members below, so a new model is one file in ``models/``: it implements the contract
and registers itself, and every other part of the package works with it.

Every model
-----------
``fit(data, ...) -> self``
    Fit on a summary frame (:func:`clvmodels.rfm_summary`); maximum-likelihood
    models also take ``weights``.
``params_``, ``is_fitted``, ``time_unit_``, ``group_col``
    Point estimates (a Series; a frame of groups x parameters for grouped models),
    whether the model is fitted, the time unit of the summary it was fitted on, and
    the column whose groups have their own parameters (None: one population).
``param_names``
    The model's parameters, the columns of ``param_draws``.
``data_columns``
    The summary columns the model reads (besides ``group_col``); CLV and scoring
    carry exactly these (and the group column) through their compression.
``summary(interval=0.95)``
    Estimates with standard errors (posterior sd) and ``interval`` bounds.
``fit_statistics()``
    ``log_likelihood``, ``aic``, ``bic``, ``elpd_loo``, ``elpd_loo_se``, ``n_obs``
    (NaN where a statistic does not apply).
``param_draws(n, random_state=None)``
    ``n`` parameter draws: the posterior for Bayesian models, the estimator's
    asymptotic sampling distribution for maximum likelihood. Pass the frame back as
    ``draws=`` to the same model; its layout is the model's own business.
``save(path)`` and :func:`load`
    JSON (maximum likelihood) or NetCDF (Bayesian); nothing is ever unpickled.

Predictions take ``data`` (a summary frame) and, with ``draws=`` (from
``param_draws``), return one row per draw: an array of shape ``(n_draws, n_rows)``
instead of a Series. This is how CLV and tier probabilities get their intervals, for
maximum-likelihood and Bayesian models alike. Arguments ``t``, ``n`` and ``data`` are
passed by keyword; ``t`` is in the model's ``time_unit_``, a scalar or one value per row.

Transaction models (:class:`TransactionModel`)
----------------------------------------------
``expected_purchases(t, data, *, draws=None)``
    ``E[Y(t) | history]``: purchases in the next ``t`` after the end of observation.
``probability_alive(data, *, draws=None)``
    ``P(alive at the end of observation | history)``.
``expected_purchases_new_customer(t, data=None, *, draws=None)``
    ``E[X(t)]`` of a customer just acquired: of the population (``data=None``), or of
    each row's group (and covariates).
``probability_of_purchases(n, t, data=None, *, draws=None)``
    ``P(X(t) = n)`` of a customer just acquired, likewise.
``simulate_purchases(t, data, *, draws, random_state=None) -> SimulatedPurchases``
    One simulated future per draw and row: the times of the purchases in ``(0, t]``.
``alive_future_columns``
    Optional speed-up (None if not offered): the columns on which a customer's
    expected future purchases *given that it is alive* depend. For BG/NBD-type models
    these are ``frequency`` and ``T`` (and any covariates): recency enters only through
    P(alive). CLV then evaluates the costly part once per distinct value of these
    columns and per draw, and keeps it for later passes.

Spend models (:class:`SpendModel`)
----------------------------------
``expected_spend(data, *, draws=None)``
    Expected value of each future purchase, per customer.
``simulate_spend(purchases, data, *, draws, random_state=None)``
    A value for every simulated purchase in ``purchases`` (a
    :class:`SimulatedPurchases` over the same rows and draws); purchases of one
    customer under one draw share that customer's latent spend level.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy import optimize, stats
from threadpoolctl import ThreadpoolController

from clvmodels.errors import ConvergenceError, NotFittedError

__all__ = [
    "BaseModel",
    "MaximumLikelihoodModel",
    "Model",
    "SimulatedPurchases",
    "SpendModel",
    "TransactionModel",
    "load",
    "registered_models",
]

FORMAT_VERSION = 1

# Every concrete model class registers itself here so that `load` can rebuild it
# from the name stored in the file, without pickle.
_REGISTRY: dict[str, type[BaseModel]] = {}

# Multi-threaded BLAS makes L-BFGS-B's tiny vector updates an order of magnitude slower
# (thread hand-offs dominate); the optimiser runs with BLAS pinned to one thread.
_THREADPOOLS: ThreadpoolController | None = None


def _single_threaded_blas() -> Any:
    global _THREADPOOLS
    if _THREADPOOLS is None:
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class SimulatedPurchases:
    """Simulated future purchases of ``shape = (n_draws, n_rows)`` (draw, customer) pairs.

    Stored sparsely, one entry per purchase, so that the memory follows the number of
    purchases rather than draws x customers x periods.

    Attributes
    ----------
    owner : ndarray of int64
        Flat (row-major) index into ``shape`` of the (draw, customer) pair that makes
        each purchase.
    time : ndarray of float
        When each purchase happens, in the model's time unit after the end of
        observation, in ``(0, horizon]``.
    shape : tuple of int
        ``(n_draws, n_rows)``.

    Examples
    --------
    >>> sims = SimulatedPurchases(owner=np.array([0, 0, 3]), time=np.array([0.5, 2.0, 1.0]),
    ...                           shape=(2, 2))
    >>> sims.counts().tolist()
    [[2, 0], [0, 1]]
    """

    owner: np.ndarray
    time: np.ndarray
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        if np.shape(self.owner) != np.shape(self.time):
            raise ValueError("owner and time must have one entry per purchase")

    @property
    def n_purchases(self) -> int:
        return int(np.size(self.owner))

    def counts(self) -> np.ndarray:
        """Number of purchases per (draw, customer): an int array of ``shape``."""
        size = int(np.prod(self.shape))
        return np.bincount(self.owner, minlength=size).reshape(self.shape)


@runtime_checkable
class Model(Protocol):
    """What every fitted clvmodels model offers (see the module docstring)."""

    param_names: tuple[str, ...]
    group_col: str | None
    time_unit_: str | None

    @property
    def is_fitted(self) -> bool: ...

    @property
    def data_columns(self) -> tuple[str, ...]: ...

    def fit(self, data: Any, *args: Any, **kwargs: Any) -> Any: ...

    def summary(self, interval: float = 0.95) -> pd.DataFrame: ...

    def fit_statistics(self) -> dict[str, float]: ...

    def param_draws(self, n: int, random_state: Any = None) -> pd.DataFrame: ...

    def save(self, path: str | Path) -> Path: ...


@runtime_checkable
class TransactionModel(Model, Protocol):
    """A model of when customers buy and when they stop (see the module docstring)."""

    @property
    def alive_future_columns(self) -> tuple[str, ...] | None: ...

    def expected_purchases(
        self, t: Any, data: Any, *, draws: pd.DataFrame | None = None
    ) -> pd.Series | np.ndarray: ...

    def probability_alive(
        self, data: Any, *, draws: pd.DataFrame | None = None
    ) -> pd.Series | np.ndarray: ...

    def expected_purchases_new_customer(
        self, t: Any, data: Any = None, *, draws: pd.DataFrame | None = None
    ) -> Any: ...

    def probability_of_purchases(
        self, n: Any, t: Any, data: Any = None, *, draws: pd.DataFrame | None = None
    ) -> Any: ...

    def simulate_purchases(
        self, t: float, data: Any, *, draws: pd.DataFrame, random_state: Any = None
    ) -> SimulatedPurchases: ...


@runtime_checkable
class SpendModel(Model, Protocol):
    """A model of what each purchase is worth (see the module docstring)."""

    def expected_spend(
        self, data: Any, *, draws: pd.DataFrame | None = None
    ) -> pd.Series | np.ndarray: ...

    def simulate_spend(
        self,
        purchases: SimulatedPurchases,
        data: Any,
        *,
        draws: pd.DataFrame,
        random_state: Any = None,
    ) -> np.ndarray: ...


def registered_models() -> dict[str, type]:
    """Every model class known to :func:`load`, by class name."""
    return dict(_REGISTRY)


class BaseModel:
    """Shared behaviour of all clvmodels models.

    Subclasses set ``param_names`` and implement ``fit``, ``param_draws``,
    ``summary`` and ``save``; they are registered by class name for :func:`load`.
    """

    param_names: ClassVar[tuple[str, ...]] = ()
    #: Column whose groups have their own parameters; None: one population.
    group_col: str | None = None
    #: Time unit of the summary the model was fitted on.
    time_unit_: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.param_names:
            _REGISTRY[cls.__name__] = cls

    # -- fitted-state helpers ---------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return getattr(self, "params_", None) is not None

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet: call `fit(data)` first "
                "(or load a saved model with `clvmodels.load(path)`)."
            )

    def __repr__(self) -> str:
        if self.is_fitted:
            inner = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
            return f"<{type(self).__name__} fitted: {inner}>"
        return f"<{type(self).__name__} (not fitted)>"

    # -- parameters aligned with customers ------------------------------------------
    def _params_for(
        self, data: pd.DataFrame | None, draws: pd.DataFrame | None = None
    ) -> dict[str, np.ndarray]:
        """Parameters ready to broadcast against the rows of ``data``.

        Point estimates come back as 0-d arrays; with ``draws`` (a frame returned by
        ``param_draws``) each parameter is an ``(n_draws, 1)`` array, so that a pure
        prediction function evaluated on customer arrays of shape ``(n_customers,)``
        returns ``(n_draws, n_customers)``. Grouped (hierarchical) models override this
        to return per-customer parameters, ``(n_customers,)`` or
        ``(n_draws, n_customers)``.
        """
        self._check_fitted()
        if draws is None:
            return {k: np.asarray(float(self.params_[k])) for k in self.param_names}
        return {k: draws[k].to_numpy(dtype=float)[:, None] for k in self.param_names}

    # -- contract -----------------------------------------------------------------
    def param_draws(self, n: int, random_state: Any = None) -> pd.DataFrame:
        raise NotImplementedError

    def summary(self, interval: float = 0.95) -> pd.DataFrame:
        raise NotImplementedError

    def fit_statistics(self) -> dict[str, float]:
        """Log-likelihood, AIC, BIC, ELPD-LOO and its SE, and the number of customers
        (NaN where a statistic does not apply to this kind of model)."""
        self._check_fitted()
        return {
            "log_likelihood": float(getattr(self, "log_likelihood_", np.nan)),
            "aic": float(getattr(self, "aic_", np.nan)),
            "bic": float(getattr(self, "bic_", np.nan)),
            "elpd_loo": np.nan,
            "elpd_loo_se": np.nan,
            "n_obs": float(getattr(self, "n_obs_", np.nan)),
        }

    def save(self, path: str | Path) -> Path:
        raise NotImplementedError


def load(path: str | Path) -> BaseModel:
    """Load a model written by ``model.save(path)``.

    JSON files hold maximum-likelihood models; NetCDF files hold Bayesian models
    (their posterior and configuration). Nothing is ever unpickled.

    Examples
    --------
    >>> from clvmodels import BetaGeo, load, load_cdnow, rfm_summary
    >>> model = BetaGeo().fit(rfm_summary(load_cdnow(), "customer_id", "date"))  # doctest: +SKIP
    >>> model.save("bgnbd.json")  # doctest: +SKIP
    >>> load("bgnbd.json").params_  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No saved model at {path}")
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.lstrip()[:1] == b"{":
        payload = json.loads(path.read_text())
        name = payload.get("model")
        cls = _REGISTRY.get(name)
        if cls is None:
            raise ValueError(f"{path} names an unknown model {name!r}")
        return cls._from_payload(payload)
    if head.startswith(b"\x89HDF") or head.startswith(b"CDF"):
        import arviz as az

        import clvmodels.models.hierarchical  # noqa: F401  (registers the Bayesian models)

        idata = az.from_netcdf(path)
        name = idata.attrs.get("clvmodels_model") if hasattr(idata, "attrs") else None
        if name is None and "posterior" in idata.groups():
            name = idata.posterior.attrs.get("clvmodels_model")
        cls = _REGISTRY.get(name)
        if cls is None:
            raise ValueError(f"{path} is NetCDF but names no known clvmodels model")
        return cls._from_idata(idata)
    raise ValueError(f"{path} is neither a clvmodels JSON nor a NetCDF model file")


def _normal_quantile(interval: float) -> float:
    if not 0 < interval < 1:
        raise ValueError(f"interval must lie in (0, 1), got {interval}")
    return float(stats.norm.ppf(0.5 + interval / 2))


def _numerical_hessian(grad: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Forward differences of an analytic gradient, symmetrised.

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


class MaximumLikelihoodModel(BaseModel):
    """Declarative maximum-likelihood fitter.

    A subclass provides

    * ``param_names``: the parameter names, all strictly positive;
    * ``_arrays(data)``: the validated summary frame as a dict of NumPy arrays;
    * ``_neg_loglik_grad(log_params, arrays, weights)``: the weighted negative
      log-likelihood and its gradient with respect to the log-parameters;
    * ``_initial_log_params(arrays, weights)``: a list of starting points.

    Optimisation runs on log-parameters, which removes the positivity bounds and
    makes the asymptotic normal approximation (and therefore ``param_draws``)
    respect the parameter space.
    """

    def __init__(self, penalizer: float = 0.0) -> None:
        # Ridge penalty per customer on the log-parameters (0 = plain MLE).
        self.penalizer = penalizer

    # -- subclass hooks -------------------------------------------------------------
    def _arrays(self, data: pd.DataFrame) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _neg_loglik_grad(
        self, log_params: np.ndarray, arrays: Mapping[str, np.ndarray], weights: np.ndarray
    ) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def _with_cache(
        self, arrays: dict[str, Any], weights: np.ndarray
    ) -> dict[str, Any]:
        """Add parameter-free pieces of the likelihood (keys starting with ``_``)."""
        return arrays

    def _initial_log_params(
        self, arrays: Mapping[str, np.ndarray], weights: np.ndarray
    ) -> list[np.ndarray]:
        return [self._log_reference(arrays, weights)]

    def _log_reference(
        self, arrays: Mapping[str, np.ndarray], weights: np.ndarray
    ) -> np.ndarray:
        """Natural centre of the log-parameters: 0, or the log data scale for scale
        parameters. Estimates more than ``DRIFT_LIMIT`` away count as degenerate."""
        return np.zeros(len(self.param_names))

    # exp(12) ~ 1.6e5: a shape parameter beyond this (or a scale parameter this far
    # from the data's own scale) means the likelihood is still rising towards the edge
    # of the parameter space, i.e. the data do not identify the model.
    DRIFT_LIMIT: ClassVar[float] = 12.0

    # -- fitting ------------------------------------------------------------------
    # Above this many distinct rows a first pass on a random subset finds the
    # neighbourhood of the optimum cheaply; the full data then only polish it.
    WARM_START_ROWS: ClassVar[int] = 40_000

    def _objective(
        self, arrays: Mapping[str, np.ndarray], weights: np.ndarray
    ) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
        """Penalised negative log-likelihood per customer, with its gradient."""
        total = float(weights.sum())
        penalizer = float(self.penalizer)
        reference = self._log_reference(arrays, weights)

        # Scaled per customer so that tolerances mean the same thing for a thousand
        # customers and for ten million.
        def objective(z: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = self._neg_loglik_grad(z, arrays, weights)
            if penalizer:
                # Ridge on the log-parameters around their natural centre: it keeps
                # estimates away from both 0 and infinity on degenerate data.
                dev = z - reference
                value = value + penalizer * total * float(np.sum(dev**2))
                grad = grad + penalizer * total * 2 * dev
            if not np.isfinite(value):
                return np.inf, np.zeros_like(z)
            return value / total, grad / total

        return objective

    def _starts(
        self, arrays: Mapping[str, np.ndarray], weights: np.ndarray
    ) -> list[np.ndarray]:
        starts = self._initial_log_params(arrays, weights)
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
            warm = self._minimise(sub_arrays, sub_weights, starts)
        except ConvergenceError:
            return starts
        return [warm.x, *starts]

    def _minimise(
        self,
        arrays: Mapping[str, np.ndarray],
        weights: np.ndarray,
        starts: list[np.ndarray],
    ) -> optimize.OptimizeResult:
        objective = self._objective(arrays, weights)
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
            grad_norm = float(np.max(np.abs(res.jac))) if np.all(np.isfinite(res.jac)) else 1.0
            if res.success and grad_norm < 1e-5:
                break
        if best is None or not np.isfinite(best.fun):
            raise ConvergenceError(
                f"{type(self).__name__} could not evaluate a finite likelihood from any "
                f"starting point (optimiser said: {'; '.join(messages)}). Check that the "
                "summary is in consistent time units and that frequency, recency and T "
                "are valid; a small `penalizer` (e.g. 1e-3) can help on degenerate data."
            )
        best.total_weight = float(weights.sum())
        return best

    def _optimise(
        self, arrays: Mapping[str, np.ndarray], weights: np.ndarray
    ) -> optimize.OptimizeResult:
        return self._minimise(arrays, weights, self._starts(arrays, weights))

    def _finish_fit(
        self, arrays: Mapping[str, np.ndarray], weights: np.ndarray, n_obs: int
    ) -> None:
        with _single_threaded_blas():
            res = self._optimise(arrays, weights)
        z = np.asarray(res.x, dtype=float)
        grad_norm = float(np.max(np.abs(res.jac)))
        drift = np.abs(z - self._log_reference(arrays, weights))
        if np.any(drift > self.DRIFT_LIMIT):
            runaway = {
                name: float(np.exp(v))
                for name, v, d in zip(self.param_names, z, drift, strict=True)
                if d > self.DRIFT_LIMIT
            }
            raise ConvergenceError(
                f"{type(self).__name__} did not converge to a finite optimum: the likelihood "
                f"keeps improving towards the edge of the parameter space ({runaway}), so "
                "the data do not identify every parameter (e.g. nobody repeats, or nobody "
                "shows signs of dropping out). What to try: (1) check that recency <= T and "
                "that times are in one unit; (2) use more customers or a longer observation "
                "period; (3) pass a small `penalizer` (e.g. 1e-3) to regularise the fit."
            )
        if grad_norm > 1e-3:
            raise ConvergenceError(
                f"{type(self).__name__} did not converge: optimiser said {res.message!r}, "
                f"largest gradient {grad_norm:.2g}, log-parameters "
                f"{dict(zip(self.param_names, np.round(z, 3), strict=True))}. What to try: "
                "(1) check that recency <= T and that times are in one unit; "
                "(2) look for a handful of customers with implausible frequency; "
                "(3) pass a small `penalizer` (e.g. 1e-3) to regularise a flat likelihood."
            )
        self.params_ = pd.Series(np.exp(z), index=list(self.param_names), name="estimate")
        self._log_params = z
        self.log_likelihood_ = float(-res.fun * res.total_weight) if not self.penalizer else float(
            -self._neg_loglik_grad(z, arrays, weights)[0]
        )
        k = len(self.param_names)
        self.n_obs_ = int(n_obs)
        self.aic_ = 2 * k - 2 * self.log_likelihood_
        self.bic_ = k * math.log(max(n_obs, 1)) - 2 * self.log_likelihood_
        self.n_iterations_ = int(res.nit)
        with _single_threaded_blas():
            self.covariance_log_ = self._log_covariance(arrays, weights, z)

    def _log_covariance(
        self, arrays: Mapping[str, np.ndarray], weights: np.ndarray, z: np.ndarray
    ) -> pd.DataFrame:
        # With a penalizer the curvature of the penalised objective is the honest one:
        # the estimate is then a posterior mode under a log-normal prior.
        ridge = 2.0 * float(self.penalizer) * float(weights.sum())
        reference = self._log_reference(arrays, weights)

        def grad(x: np.ndarray) -> np.ndarray:
            return self._neg_loglik_grad(x, arrays, weights)[1] + ridge * (x - reference)

        names = list(self.param_names)
        hess = _numerical_hessian(grad, z)
        self.hessian_warning_ = None
        try:
            cov = np.linalg.inv(hess)
            eig = np.linalg.eigvalsh(hess)
            if not np.all(np.isfinite(cov)) or eig.min() <= 0:
                raise np.linalg.LinAlgError("Hessian is not positive definite")
        except np.linalg.LinAlgError as err:
            self.hessian_warning_ = (
                f"standard errors unavailable: the observed information matrix is singular "
                f"or not positive definite ({err}); the optimum is flat in some direction, "
                "typically because the data cannot identify every parameter."
            )
            warnings.warn(self.hessian_warning_, RuntimeWarning, stacklevel=3)
            cov = np.full((len(names), len(names)), np.nan)
        return pd.DataFrame(cov, index=names, columns=names)

    # -- contract -----------------------------------------------------------------
    @property
    def standard_errors_(self) -> pd.Series:
        """Delta-method standard errors on the natural parameter scale."""
        self._check_fitted()
        se_log = np.sqrt(np.diag(self.covariance_log_.to_numpy()))
        return pd.Series(self.params_.to_numpy() * se_log, index=self.params_.index, name="se")

    def summary(self, interval: float = 0.95) -> pd.DataFrame:
        """Estimates, standard errors and ``interval`` confidence intervals.

        Intervals are symmetric on the log scale (so they never leave the positive
        half-line) and mapped back: ``exp(log(theta) +- z * se_log)``.
        """
        self._check_fitted()
        z = _normal_quantile(interval)
        se_log = np.sqrt(np.diag(self.covariance_log_.to_numpy()))
        est = self.params_.to_numpy()
        pct = f"{100 * interval:g}%"
        table = pd.DataFrame(
            {
                "estimate": est,
                "se": est * se_log,
                f"lower {pct}": est * np.exp(-z * se_log),
                f"upper {pct}": est * np.exp(z * se_log),
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

        The MLE of the log-parameters is approximately normal with the inverse
        observed information as covariance; draws are taken there and exponentiated.

        Parameters
        ----------
        n : int
            Number of draws.
        random_state : int, numpy Generator or None
            Seed for reproducible draws.
        """
        self._check_fitted()
        if int(n) < 1:
            raise ValueError(f"n must be a positive integer, got {n}")
        cov = self.covariance_log_.to_numpy()
        if not np.all(np.isfinite(cov)):
            raise ValueError(
                f"{type(self).__name__} has no finite covariance, so no parameter draws: "
                f"{self.hessian_warning_}"
            )
        rng = np.random.default_rng(random_state)
        z = rng.multivariate_normal(self._log_params, cov, size=int(n), method="eigh")
        return pd.DataFrame(np.exp(z), columns=list(self.param_names))

    # -- persistence ----------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        return {"penalizer": self.penalizer}

    def _fitted_extra(self) -> dict[str, Any]:
        return {}

    def save(self, path: str | Path) -> Path:
        """Write parameters, covariance and settings as JSON (never the data)."""
        self._check_fitted()
        path = Path(path)
        payload = {
            "model": type(self).__name__,
            "format_version": FORMAT_VERSION,
            "settings": self._settings(),
            "params": self.params_.to_dict(),
            "covariance_log": self.covariance_log_.to_numpy().tolist(),
            "log_likelihood": self.log_likelihood_,
            "n_obs": self.n_obs_,
            "time_unit": getattr(self, "time_unit_", None),
            "extra": self._fitted_extra(),
        }
        text = json.dumps(payload, indent=2, allow_nan=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return path

    @classmethod
    def _from_payload(cls, payload: Mapping[str, Any]) -> MaximumLikelihoodModel:
        model = cls(**payload.get("settings", {}))
        model._set_fitted(
            params=payload["params"],
            covariance_log=np.asarray(payload["covariance_log"], dtype=float),
            log_likelihood=payload.get("log_likelihood", float("nan")),
            n_obs=payload.get("n_obs", 0),
            time_unit=payload.get("time_unit"),
        )
        model._restore_extra(payload.get("extra", {}))
        return model

    def _restore_extra(self, extra: Mapping[str, Any]) -> None:
        return None

    def _set_fitted(
        self,
        params: Mapping[str, float],
        covariance_log: np.ndarray | None = None,
        log_likelihood: float = float("nan"),
        n_obs: int = 0,
        time_unit: str | None = None,
    ) -> None:
        """Install fitted state directly (loading, migration from lifetimes)."""
        names = list(self.param_names)
        missing = [k for k in names if k not in params]
        if missing:
            raise ValueError(f"{type(self).__name__} needs parameters {names}; missing {missing}")
        values = np.array([float(params[k]) for k in names])
        if np.any(~np.isfinite(values)) or np.any(values <= 0):
            raise ValueError(f"parameters must be finite and positive, got {dict(params)}")
        self.params_ = pd.Series(values, index=names, name="estimate")
        self._log_params = np.log(values)
        cov = (
            np.full((len(names), len(names)), np.nan)
            if covariance_log is None
            else np.asarray(covariance_log, dtype=float)
        )
        self.covariance_log_ = pd.DataFrame(cov, index=names, columns=names)
        self.log_likelihood_ = float(log_likelihood)
        self.n_obs_ = int(n_obs)
        k = len(names)
        self.aic_ = 2 * k - 2 * self.log_likelihood_
        self.bic_ = k * math.log(max(self.n_obs_, 1)) - 2 * self.log_likelihood_
        self.time_unit_ = time_unit
        self.hessian_warning_ = None if np.all(np.isfinite(cov)) else "no covariance available"
