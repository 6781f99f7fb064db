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
    Optional speed-up: a model whose simulator starts from P(alive) may accept
    ``probability_alive=None``, an array ``(n_draws, n_rows)`` of its own
    ``probability_alive(data, draws=draws)``; CLV passes the values it has computed
    already instead of letting the model compute them again.
``alive_future_columns``
    Optional speed-up (None if not offered): the columns on which a customer's
    expected future purchases *given that it is alive* depend. For BG/NBD-type models
    these are ``frequency`` and ``T`` (and any covariates): recency enters only through
    P(alive). CLV then evaluates the costly part once per distinct value of these
    columns and per draw, and keeps it for later passes.
``expected_purchases_while_alive(t, weights, data, *, draws=None)``
    Optional speed-up beside ``alive_future_columns``: weighted sums over the horizons
    ``t`` of ``E[Y(t_j) | alive, history]``, shape ``(n_sums[, n_draws], n_rows)``.
    CLV asks for its discounted purchases over the period ends and the cumulative
    purchases at the horizon in one call; without it, it divides ``expected_purchases``
    by ``probability_alive`` at each period end.

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

import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from clvmodels.data import column_arrays
from clvmodels.errors import ModelFileError, NotFittedError

__all__ = [
    "BaseModel",
    "Model",
    "SimulatedPurchases",
    "SpendModel",
    "TransactionModel",
    "check_payload_keys",
    "check_summary_model",
    "find_model_class",
    "leading_draws",
    "load",
    "register_model_factory",
    "registered_models",
    "takes_keyword",
    "write_model_file",
]

# Every concrete model class registers itself here so that `load` can rebuild it
# from the name stored in the file, without pickle.
_REGISTRY: dict[str, type[BaseModel]] = {}
# Functions that build a model class from its name on demand (e.g. the Bayesian
# engine's ``Bayesian<Name>``), tried by `load` for names not registered yet.
_FACTORIES: list[Callable[[str], Any]] = []

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

    def buyers(self) -> tuple[np.ndarray, np.ndarray]:
        """The (draw, customer) pairs that buy, and each purchase's position among them.

        Returns ``pairs`` (flat indices into ``shape``, ascending, each once) and
        ``slot`` (one per purchase, ``pairs[slot] == owner``): what ``np.unique(owner,
        return_inverse=True)`` returns, found by marking pairs instead of sorting
        purchases.

        Examples
        --------
        >>> sims = SimulatedPurchases(owner=np.array([3, 0, 3]), time=np.ones(3), shape=(2, 2))
        >>> [a.tolist() for a in sims.buyers()]
        [[0, 3], [1, 0, 1]]
        """
        buys = np.zeros(int(np.prod(self.shape)), dtype=bool)
        buys[self.owner] = True
        position = np.cumsum(buys) - 1
        return np.flatnonzero(buys), position[self.owner]


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


def leading_draws(draws: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first ``n`` draws of a ``param_draws`` frame, in the same layout.

    A frame holds one row per draw, or (grouped models) one row per draw and group with
    a ``draw`` column, and then ``attrs["population"]``, one row per draw of the
    parameters of a group not fitted; each is cut to the first ``n`` draws in the
    order they come. A frame of ``n`` draws or fewer is returned as it is.

    Examples
    --------
    >>> frame = pd.DataFrame({"draw": [0, 0, 1, 1, 2, 2], "g": list("ababab"),
    ...                       "r": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    >>> frame.attrs["population"] = pd.DataFrame({"draw": [0, 1, 2], "r": [9.0, 8.0, 7.0]})
    >>> cut = leading_draws(frame, 2)
    >>> cut["r"].tolist(), cut.attrs["population"]["r"].tolist()
    ([1.0, 2.0, 3.0, 4.0], [9.0, 8.0])
    """
    if "draw" not in draws.columns:
        return draws if len(draws) <= n else draws.iloc[:n]
    kept = pd.unique(draws["draw"])
    if len(kept) <= n:
        return draws
    kept = kept[:n]
    out = draws[draws["draw"].isin(kept)]
    attrs = dict(draws.attrs)
    population = attrs.get("population")
    if isinstance(population, pd.DataFrame):
        attrs["population"] = (
            population[population["draw"].isin(kept)]
            if "draw" in population.columns
            else population.iloc[:n]
        )
    out.attrs = attrs
    return out


def registered_models() -> dict[str, type]:
    """Every model class known to :func:`load`, by class name."""
    return dict(_REGISTRY)


def accepted_fit_options(fit: Callable[..., Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``options`` that the method ``fit`` accepts.

    All of them where ``fit`` takes ``**kwargs``. A seed given as ``random_state`` goes
    to a ``fit`` that names it ``random_seed`` instead (PyMC's spelling, which a user's
    own model may keep).

    Examples
    --------
    >>> def fit(data, draws=100, random_seed=None): ...
    >>> accepted_fit_options(fit, {"draws": 10, "random_state": 3, "chains": 2})
    {'draws': 10, 'random_seed': 3}
    """
    accepted = inspect.signature(fit).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return dict(options)
    out = {k: v for k, v in options.items() if k in accepted}
    if ("random_state" in options and "random_state" not in accepted
            and "random_seed" in accepted and "random_seed" not in options):
        out["random_seed"] = options["random_state"]
    return out


def takes_keyword(method: Callable[..., Any], name: str) -> bool:
    """Whether ``method`` accepts the keyword argument ``name`` (or any, via ``**kwargs``).

    Examples
    --------
    >>> def simulate(t, data, *, draws, probability_alive=None): ...
    >>> takes_keyword(simulate, "probability_alive"), takes_keyword(simulate, "k")
    (True, False)
    """
    parameters = inspect.signature(method).parameters
    return name in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def register_model_factory(factory: Callable[[str], Any]) -> None:
    """Let :func:`load` build classes by name: ``factory(name)`` returns one, or None."""
    if factory not in _FACTORIES:
        _FACTORIES.append(factory)


class BaseModel:
    """Shared behaviour of all clvmodels models.

    Subclasses set ``param_names`` and implement ``fit``, ``param_draws``,
    ``summary`` and ``save``; concrete models are registered by class name for
    :func:`load` (engines and mixins subclass with ``register=False``).
    """

    param_names: ClassVar[tuple[str, ...]] = ()
    #: Column whose groups have their own parameters; None: one population.
    group_col: str | None = None
    #: Time unit of the summary the model was fitted on.
    time_unit_: str | None = None
    #: True for models fitted by sampling a posterior (they also subclass the
    #: maximum-likelihood declaration they are built on, so a subclass test cannot tell).
    is_bayesian: ClassVar[bool] = False
    #: None for a model that fits and predicts on summary frames (all but a few).
    #: Otherwise why it does not and what to use instead: CLV, segmentation, comparison
    #: and the pipeline refuse it with this text (:func:`check_summary_model`).
    summary_frames_unsupported: ClassVar[str | None] = None

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Engines and mixins pass register=False; every concrete model is registered
        # under its class name, which is what a saved file records.
        if register:
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
            # one pass over the Series: indexing it by label costs more than a prediction
            # on a few thousand rows
            estimates = dict(zip(self.params_.index, self.params_.to_numpy(dtype=float),
                                 strict=True))
            return {k: np.asarray(estimates[k]) for k in self.param_names}
        return {k: v[:, None] for k, v in column_arrays(draws, self.param_names).items()}

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
    (their posterior and configuration). Nothing is ever unpickled, no code named in
    the file is run, and every value is checked before a model is built from it.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ModelFileError
        If the file is not a clvmodels model, names an unknown model, or holds a
        value that would not make a valid model (the message names the file and field).

    Examples
    --------
    >>> import tempfile
    >>> from clvmodels import GammaGamma, load, load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
    ...                       observation_end="1997-09-30")
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = GammaGamma().fit(summary).save(Path(folder) / "spend.json")
    ...     load(path).params_.round(2).to_dict()
    {'p': 6.25, 'q': 3.74, 'gamma': 15.44}
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No saved model at {path}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a saved model")
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as err:
        raise ModelFileError(f"{path} cannot be read ({err})") from err
    if head.lstrip()[:1] == b"{":
        try:
            payload = json.loads(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            raise ModelFileError(f"{path} is not valid JSON ({type(err).__name__}: {err})") from err
        if not isinstance(payload, dict):
            raise ModelFileError(f"{path} does not hold a JSON object")
        cls = _model_class(payload.get("model"), path, "from_payload")
        return cls.from_payload(payload, source=str(path))
    if head.startswith(b"\x89HDF") or head.startswith(b"CDF"):
        try:
            import arviz as az

            idata = az.from_netcdf(path)
            attrs = idata.posterior.attrs if "posterior" in idata.groups() else {}
        except Exception as err:
            raise ModelFileError(
                f"{path} is not a readable NetCDF model file ({type(err).__name__}: {err})"
            ) from err
        name = attrs.get("clvmodels_model")
        return _model_class(name, path, "from_idata").from_idata(idata, source=str(path))
    raise ModelFileError(f"{path} is neither a clvmodels JSON nor a NetCDF model file")


def _model_class(name: Any, path: Path, reader: str) -> Any:
    """The registered class named in a file, which must read this kind of file
    (``reader``: its class method); model modules are imported on demand, and
    registered factories build classes made on demand (``Bayesian<Name>``)."""
    if not isinstance(name, str):
        raise ModelFileError(f"{path}: field 'model' must name a clvmodels model, got {name!r}")
    cls = find_model_class(name)
    if cls is None:
        raise ModelFileError(
            f"{path} names an unknown model {name!r}; known models: {sorted(_REGISTRY)}"
        )
    if not hasattr(cls, reader):
        kind, other = ("JSON", "NetCDF") if reader == "from_payload" else ("NetCDF", "JSON")
        raise ModelFileError(f"{path} is a {kind} file, but {name} models are saved as {other}")
    return cls


def find_model_class(name: str) -> type | None:
    """The model class registered as ``name``, or built by a registered factory
    (``Bayesian<Name>`` for every maximum-likelihood model), or None; model modules
    are imported on demand.

    Examples
    --------
    >>> find_model_class("BayesianParetoNBD").__name__
    'BayesianParetoNBD'
    >>> find_model_class("NoSuchModel") is None
    True
    """
    if name not in _REGISTRY:
        _import_model_modules()
    cls = _REGISTRY.get(name)
    for factory in _FACTORIES:
        if cls is not None:
            break
        cls = factory(name)
    return cls


def _import_model_modules() -> None:
    """Import every public module of this package, so that each model registers."""
    import importlib
    import pkgutil

    import clvmodels.models as package

    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")


def check_summary_model(model: Any, where: str) -> None:
    """Refuse a model (class or object) that does not work on summary frames, with one
    message saying what ``where`` (the caller, e.g. ``"customer_lifetime_value"``)
    cannot do with it and what to use instead.

    Examples
    --------
    >>> from clvmodels import BetaGeo, ParetoNBDDynamicCovariates
    >>> check_summary_model(BetaGeo(), "compare")
    >>> check_summary_model(ParetoNBDDynamicCovariates, "compare")
    Traceback (most recent call last):
    ...
    TypeError: compare does not support ParetoNBDDynamicCovariates yet: it fits and ...
    """
    cls = model if isinstance(model, type) else type(model)
    note = getattr(cls, "summary_frames_unsupported", None)
    if note:
        raise TypeError(f"{where} does not support {cls.__name__} yet: {note}")


def check_payload_keys(
    payload: Mapping[str, Any], *, required: set[str], optional: set[str], source: str
) -> None:
    """Raise :class:`ModelFileError` for missing or unknown top-level keys."""
    missing = sorted(required - set(payload))
    if missing:
        raise ModelFileError(f"{source}: missing field(s) {missing}")
    unknown = sorted(set(payload) - required - optional)
    if unknown:
        raise ModelFileError(f"{source}: unknown field(s) {unknown}")


def write_model_file(path: str | Path, content: bytes | Callable[[Path], None]) -> Path:
    """Write a model file atomically: ``content`` bytes, or a callback that writes a path.

    A reader never sees a half-written file and a failed write leaves nothing behind.
    """
    from clvmodels._io import write_atomically

    if isinstance(content, bytes):
        data = content

        def content(tmp: Path) -> None:
            tmp.write_bytes(data)

    return write_atomically(Path(path), content)
