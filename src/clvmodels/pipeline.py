"""The main job, from settings: summary -> fit -> CLV -> segments (-> holdout comparison).

:func:`run_pipeline` runs the whole flow described by a :class:`PipelineSettings` and
returns a :class:`PipelineResult`. The command line (``clvmodels forecast``,
``clvmodels report``, ``clvmodels demo``) and :func:`clvmodels.report.build_report`
all run it, so the flow exists once:

1. with ``calibration_end``: the calibration/holdout split
   (:func:`clvmodels.calibration_holdout_split`), on which every model pair of
   ``models`` is fitted and scored (:func:`clvmodels.evaluation.compare`);
2. the summary of all the data up to ``observation_end``
   (:func:`clvmodels.rfm_summary`);
3. the forecasting pair fitted on that summary: ``forecast_model`` where named, else
   the pair that forecast the holdout value best (lowest squared error per customer;
   the first pair without a holdout);
4. discounted CLV with intervals (:func:`clvmodels.customer_lifetime_value`);
5. value tiers with membership probabilities (:func:`clvmodels.segment`).

By default ``models`` is the whole family (:func:`clvmodels.evaluation.family_models`:
every maximum-likelihood transaction model with Gamma-Gamma); without a holdout only
the first pair (BG/NBD) is fitted. A model that reads a column the default summary
lacks (``BetaGeoCNBD``: ``log_interpurchase_sum``; ``GammaGammaTransactions``:
``monetary_log_mean``) gets it from the summary itself, asked for with the opt-in
options of :func:`clvmodels.rfm_summary` (``regularity``, ``log_spend``) only when such a
model is used.

Data is read once, by the functions that read it everywhere else: a pandas or Polars
frame in memory; a path, glob, folder or list of Parquet / CSV files out of core in
DuckDB (:mod:`clvmodels.outofcore`), so a large log never enters pandas.

Models are chosen by name from the registry of :func:`clvmodels.load`
(``"BetaGeo"``, ``"GammaGamma"``, ``"HierarchicalBetaGeo"``, ... see
:func:`available_models`), or passed as classes or objects: any model that keeps the
model contract (:mod:`clvmodels.models.base`) works, and a new model file is picked
up without a change here. The settings are never changed: the pipeline fits copies
of the models it is given.

Examples
--------
>>> from clvmodels import load_cdnow
>>> settings = PipelineSettings(load_cdnow(), "customer_id", "date", "amount",
...                             observation_end="1997-09-30", n_draws=200)
>>> result = run_pipeline(settings, progressbar=False)
>>> len(result.summary), type(result.transaction_model).__name__
(2357, 'BetaGeo')
>>> result.customers()[["clv", "tier"]].columns.tolist()
['clv', 'tier']
"""

from __future__ import annotations

import copy
import datetime as _dt
import importlib
import inspect
import os
import pkgutil
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from clvmodels._summary_options import summary_options_for
from clvmodels._validation import whole_number
from clvmodels.errors import ConvergenceError, DataValidationError
from clvmodels.evaluation import AVERAGE_NAME, family_models
from clvmodels.models.base import check_summary_model
from clvmodels.progress import ProgressBar, progress_bar
from clvmodels.units import (
    Calendar,
    check_time_unit,
    cutoff,
    freq_base,
    period_name,
    resolve_time_unit,
)

__all__ = [
    "DEFAULT_SPEND_MODEL",
    "DEFAULT_TRANSACTION_MODEL",
    "PipelineResult",
    "PipelineSettings",
    "available_models",
    "make_model",
    "model_kind",
    "run_pipeline",
]

#: The models used when none are named (registry names, not imports).
DEFAULT_TRANSACTION_MODEL = "BetaGeo"
DEFAULT_SPEND_MODEL = "GammaGamma"

_KIND_METHODS = {"transaction": "expected_purchases", "spend": "expected_spend"}


# --------------------------------------------------------------------------------------
# Models by name
# --------------------------------------------------------------------------------------
def _registry() -> dict[str, type]:
    from clvmodels.models.base import registered_models

    return registered_models()


def _import_model_modules() -> None:
    """Import every public module of :mod:`clvmodels.models`, so every model registers.

    A model registers itself when its module is imported; a new file in ``models/``
    is found here without being named anywhere.
    """
    import clvmodels.models as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")


def model_kind(model: Any) -> str | None:
    """``"transaction"`` or ``"spend"``: which role a model class or object can play.

    Examples
    --------
    >>> from clvmodels import BetaGeo, GammaGamma
    >>> model_kind(BetaGeo), model_kind(GammaGamma()), model_kind(object())
    ('transaction', 'spend', None)
    """
    for kind, method in _KIND_METHODS.items():
        if callable(getattr(model, method, None)):
            return kind
    return None


def available_models(kind: str | None = None) -> dict[str, type]:
    """Every registered model class by name (all of :mod:`clvmodels.models` imported)
    that works on summary frames (not, say, ``ParetoNBDDynamicCovariates``).

    Parameters
    ----------
    kind : {"transaction", "spend"}, optional
        Only the models that can play this role.

    Examples
    --------
    >>> names = available_models("transaction")
    >>> "BetaGeo" in names and "GammaGamma" not in names
    True
    """
    if kind is not None and kind not in _KIND_METHODS:
        raise ValueError(f"kind must be one of {list(_KIND_METHODS)} or None, got {kind!r}")
    _import_model_modules()
    return {
        name: cls
        for name, cls in sorted(_registry().items())
        if (kind is None or model_kind(cls) == kind)
        and not getattr(cls, "summary_frames_unsupported", None)
    }


def _model_class(name: str, kind: str | None) -> type:
    cls = _registry().get(name)
    if cls is None:  # not imported yet, or made on demand (``Bayesian<Name>``)
        from clvmodels.models.base import find_model_class

        cls = find_model_class(name)
    if cls is None:
        choices = list(available_models(kind))
        what = f"{kind} model" if kind else "model"
        raise ValueError(f"unknown {what} {name!r}: choose one of {choices}")
    return cls


def _label(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    return spec.__name__ if isinstance(spec, type) else type(spec).__name__


def _check_kind(spec: Any, target: Any, kind: str | None) -> None:
    check_summary_model(target, "the pipeline")
    if kind is not None and model_kind(target) != kind:
        raise ValueError(
            f"{_label(spec)} is not a {kind} model (it has no {_KIND_METHODS[kind]} method); "
            f"{kind} models: {list(available_models(kind))}"
        )


def make_model(spec: Any, *, kind: str | None = None, group_col: str | None = None) -> Any:
    """A model object from a registry name, a model class or a model object.

    Parameters
    ----------
    spec : str, class or model
        A registered class name (``"BetaGeo"``), a model class, or a model object
        (copied, fitted or not: the original is never changed).
    kind : {"transaction", "spend"}, optional
        The role the model must be able to play; anything else is an error.
    group_col : str, optional
        Passed to the constructor of a name or class that takes ``group_col`` (models
        with one set of parameters per group); other models ignore it.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones) or a model of the
        wrong kind.

    Examples
    --------
    >>> make_model("BetaGeo", kind="transaction")
    <BetaGeo (not fitted)>
    >>> make_model("BetaGeo", kind="spend")
    Traceback (most recent call last):
    ...
    ValueError: BetaGeo is not a spend model (it has no expected_spend method); ...
    """
    if isinstance(spec, str):
        spec = _model_class(spec, kind)
    if isinstance(spec, type):
        _check_kind(spec, spec, kind)
        takes_group = "group_col" in inspect.signature(spec).parameters
        return spec(group_col=group_col) if takes_group and group_col else spec()
    _check_kind(spec, spec, kind)
    return copy.deepcopy(spec)


def _resolve_spec(spec: Any, kind: str) -> None:
    """Fail early, before any data is read, on a model that cannot be made."""
    if isinstance(spec, str):
        spec = _model_class(spec, kind)
    _check_kind(spec, spec, kind)


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------
#: Sampler settings of ``fit_options`` and their smallest values, checked before any
#: data is read for every model whose ``fit`` names them (Bayesian models).
_SAMPLER_MINIMUMS = {"draws": 1, "tune": 0, "chains": 1, "cores": 1}


def _fit_parameters(spec: Any) -> set[str]:
    """The keyword arguments a model's ``fit`` names (not its ``**kwargs``)."""
    target = _model_class(spec, None) if isinstance(spec, str) else spec
    try:
        parameters = inspect.signature(target.fit).parameters.values()
    except (AttributeError, TypeError, ValueError):
        return set()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in parameters if p.kind in kinds}


def _check_sampler_options(
    options: Mapping[str, Any], models: Mapping[str, tuple[Any, Any]]
) -> None:
    """Refuse sampler settings that cannot give a model, naming the setting and model.

    A setting no model's ``fit`` takes is not checked: ``{"draws": 0}`` is how the
    command line says "no Bayesian model", and a maximum-likelihood fit ignores it.
    """
    for spec in {id(m): m for pair in models.values() for m in pair}.values():
        for name in sorted(_fit_parameters(spec) & set(options) & set(_SAMPLER_MINIMUMS)):
            value, least = options[name], _SAMPLER_MINIMUMS[name]
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
                raise ValueError(
                    f"fit_options[{name!r}] must be a whole number >= {least} for "
                    f"{_label(spec)}, got {value!r}"
                )


def _json(value: Any) -> Any:
    """``value`` as plain JSON types; paths by file name only (no machine paths)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, _dt.date | _dt.datetime | pd.Timestamp | np.datetime64):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, os.PathLike):
        return Path(value).name
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return _label(value)


def _describe_source(source: Any) -> Any:
    from clvmodels.outofcore import is_file_source

    if is_file_source(source):
        items = [source] if isinstance(source, str | os.PathLike) else list(source)
        names = [Path(item).name for item in items]
        return names[0] if len(names) == 1 else names
    try:
        rows = f"{len(source):,} rows"
    except TypeError:
        rows = "rows unknown"
    return f"{type(source).__name__} ({rows})"


@dataclass(frozen=True, eq=False)  # the source may be a DataFrame: compared by identity
class PipelineSettings:
    """Everything the pipeline needs: where the data is, which models, which forecast.

    Checked when made, before any data is read. Frozen: make variants with
    :func:`dataclasses.replace`. The models are kept as given (names, classes or
    objects); the pipeline works on copies.

    Parameters
    ----------
    source : DataFrame, path, glob, folder or list of paths
        The transaction log: a pandas or Polars frame, or Parquet / CSV files, read
        out of core by DuckDB (see :func:`clvmodels.rfm_summary`).
    customer_col, date_col, value_col : str
        Customer id, purchase date and purchase value columns.
    group_col : str, optional
        Per-customer group (cohort, region, channel), carried into the summary and
        given to the models that take one (one set of parameters per group).
    date_format : str, optional
        ``strftime`` format of string dates, as in :func:`clvmodels.rfm_summary`.
    observation_end : date-like, optional
        End of the data used (default: the last date in the log).
    calibration_end : date-like, optional
        With it, every model pair is also fitted on the data up to this date and
        scored on the holdout that follows, up to ``observation_end``.
    freq, time_unit : str
        Period of aggregation and unit of ``recency`` / ``T``, as in
        :func:`clvmodels.rfm_summary` (default: days, weeks).
    models : mapping of name to (transaction, spend), or one (transaction, spend) pair
        Model pairs, each model a registry name, a class or an object. Default: the
        family, :func:`clvmodels.evaluation.family_models` by name
        (``"BetaGeo + GammaGamma"``, ``"BetaGeoCNBD + GammaGamma"``,
        ``"ModifiedBetaGeo + GammaGamma"``, ``"ModifiedBetaGeoCNBD + GammaGamma"``,
        ``"ParetoNBD + GammaGamma"``). Several
        pairs are compared on the holdout (``calibration_end``).
    forecast_model : str, optional
        The name of the pair that forecasts CLV. Default: with ``calibration_end`` and
        several pairs, the one that forecast the holdout value best (lowest squared
        error per customer, ``comparison.attrs["best"]``); otherwise the first.
        ``"model average"`` (or ``"average"``), with ``calibration_end`` and several
        pairs: the mixture of the pairs' forecasts with the comparison's model-average
        weights (:func:`clvmodels.compare`), each pair refitted on all the data; the
        pair with the largest weight is the result's ``transaction_model`` and
        ``spend_model``.
    fit_options : mapping, optional
        Options for every ``fit`` that accepts them (e.g. ``{"draws": 500,
        "tune": 500, "chains": 2}`` for Bayesian models); every fit that takes a
        ``random_state`` gets the pipeline's unless the options give one.
    horizon, period, discount_rate : int, str, float
        The CLV forecast: ``horizon`` periods of ``period`` at ``discount_rate`` per
        period (see :class:`clvmodels.units.Calendar`).
    interval : float, default 0.9
        Level of every interval.
    n_draws : int, default 1000
        Parameter draws behind the intervals.
    predictive : bool, default False
        Also predictive intervals of the realised value.
    n_futures : int, optional
        With ``predictive``: simulated futures per customer, under the first
        ``n_futures`` draws (default: one under every draw); fewer are faster and
        noisier (see :func:`clvmodels.customer_lifetime_value`).
    segments : bool, default True
        Add value tiers with membership probabilities.
    tier_backtest : bool, default True
        With ``predictive`` and ``segments``: try the forecast's top-tier probabilities
        (``top_tier_probability_realised``) on the last horizon of the log, with the
        models refitted on the data before it
        (:func:`clvmodels.backtest.backtest_tier_probability`), and give every customer
        the probability recalibrated by what that backtest found
        (``top_tier_probability_realised_recalibrated`` in
        :meth:`PipelineResult.customers`). Not run for the model average or Bayesian
        and grouped fits, which the backtest would have to refit; the result says why.
    common_shocks : bool, default False
        Put shocks common to all customers (season, promotions, outages) into the
        intervals of the portfolio total and of the tiers' totals: measured on the
        log up to ``observation_end`` against the forecasting model
        (:func:`clvmodels.shocks.estimate_common_shocks`; the log's customer and date
        columns are read into memory for it, and a log of more than a million customers
        is measured on a random sample of them) and carried into every draw
        (:func:`clvmodels.shocks.shock_factors`). Per-customer intervals and tier
        membership do not change. Not for the model average, which has no single model
        to refit. Where the data or the model cannot support it (models with customer
        covariates: the log holds none), the result says why (``common_shocks_note``),
        with a warning where the data stood in the way.
    random_state : int, optional
        Seed of every random step (draws, simulation, sampling).
    customer_data : DataFrame, optional
        One row per customer, indexed by customer id (or with a ``customer_col``
        column): covariates and other attributes, joined onto every summary the models
        fit and score, so that models with covariates (``purchase_covariates=[...]``)
        read them. Every customer of the log needs a row; extra rows are ignored.

    Examples
    --------
    >>> from clvmodels import load_cdnow
    >>> settings = PipelineSettings(load_cdnow(), "customer_id", "date", "amount")
    >>> list(settings.models)  # doctest: +NORMALIZE_WHITESPACE
    ['BetaGeo + GammaGamma', 'BetaGeoCNBD + GammaGamma', 'ModifiedBetaGeo + GammaGamma',
     'ModifiedBetaGeoCNBD + GammaGamma', 'ParetoNBD + GammaGamma']
    >>> settings.models["ParetoNBD + GammaGamma"], settings.forecast_name
    (('ParetoNBD', 'GammaGamma'), 'BetaGeo + GammaGamma')
    >>> settings.calendar.describe()
    '12 months at 0.01 a month'
    >>> PipelineSettings(load_cdnow(), "customer_id", "date", "amount", period="fortnight")
    Traceback (most recent call last):
    ...
    ValueError: period='fortnight' is not supported: ...
    """

    source: Any
    customer_col: str
    date_col: str
    value_col: str
    group_col: str | None = None
    date_format: str | None = None
    observation_end: Any = None
    calibration_end: Any = None
    freq: str = "D"
    time_unit: str = "W"
    models: Any = None
    forecast_model: str | None = None
    fit_options: Mapping[str, Any] = field(default_factory=dict)
    horizon: int = 12
    period: str = "M"
    discount_rate: float = 0.01
    interval: float = 0.9
    n_draws: int = 1000
    predictive: bool = False
    n_futures: int | None = None
    segments: bool = True
    tier_backtest: bool = True
    common_shocks: bool = False
    random_state: int | None = 0
    customer_data: Any = None

    def __post_init__(self) -> None:
        for name in ("customer_col", "date_col", "value_col"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a column name, got {getattr(self, name)!r}")
        self._check_plain_settings()
        if self.customer_data is not None:
            object.__setattr__(self, "customer_data", _customer_table(
                self.customer_data, self.customer_col, self.group_col
            ))
        calendar = Calendar(self.horizon, self.period, self.discount_rate)
        object.__setattr__(self, "horizon", calendar.horizon)
        object.__setattr__(self, "discount_rate", calendar.discount_rate)
        check_time_unit(self.time_unit)
        freq_base(self.freq)
        for name in ("observation_end", "calibration_end"):  # dates, before data is read
            if getattr(self, name) is not None:
                cutoff(getattr(self, name), name, self.date_format, self.freq)
        if not (isinstance(self.interval, int | float) and 0 < self.interval < 1):
            raise ValueError(f"interval must lie strictly between 0 and 1, got {self.interval!r}")
        n_draws = self.n_draws
        if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 1:
            raise ValueError(f"n_draws must be a positive whole number, got {n_draws!r}")
        if self.n_futures is not None:
            if not self.predictive:
                raise ValueError("n_futures needs predictive=True: it counts simulated futures")
            whole_number(self.n_futures, "n_futures", 2, int(n_draws))
        object.__setattr__(self, "models", MappingProxyType(self._model_pairs()))
        if self.forecast_model in (AVERAGE_NAME, "average"):
            object.__setattr__(self, "forecast_model", AVERAGE_NAME)
            if self.calibration_end is None or len(self.models) < 2:
                raise ValueError(
                    f"forecast_model={AVERAGE_NAME!r} needs calibration_end and two or more "
                    "models: its weights come from the holdout comparison"
                )
            if self.common_shocks:
                raise ValueError(
                    f"common_shocks=True needs one model pair's forecast: forecast_model="
                    f"{AVERAGE_NAME!r} mixes several, and the shocks' effect is measured by "
                    "refits of one model"
                )
        elif self.forecast_model is not None and self.forecast_model not in self.models:
            raise ValueError(
                f"forecast_model={self.forecast_model!r} is not one of {list(self.models)}"
            )
        if not isinstance(self.fit_options, Mapping):
            raise ValueError(f"fit_options must be a mapping, got {self.fit_options!r}")
        object.__setattr__(self, "fit_options", MappingProxyType(dict(self.fit_options)))
        _check_sampler_options(self.fit_options, self.models)

    def _check_plain_settings(self) -> None:
        """Switches, optional names and the seed: of the right type, or refused by name."""
        for name in ("predictive", "segments", "tier_backtest", "common_shocks"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("group_col", "date_format", "forecast_model"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value):
                raise ValueError(f"{name} must be a non-empty string or None, got {value!r}")
        seed = self.random_state
        if seed is None or isinstance(seed, np.random.Generator | np.random.SeedSequence):
            return
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"random_state must be None or a whole number >= 0, got {seed!r}")

    def _model_pairs(self) -> dict[str, tuple[Any, Any]]:
        models = self.models
        if models is None:  # the family, by name
            family = family_models(DEFAULT_SPEND_MODEL)
            models = {name: tuple(type(m).__name__ for m in pair)
                      for name, pair in family.items()}
        if isinstance(models, tuple | list) and len(models) == 2 and not any(
            isinstance(m, tuple | list) for m in models
        ):
            models = {f"{_label(models[0])} + {_label(models[1])}": tuple(models)}
        if not isinstance(models, Mapping) or not models:
            raise ValueError(
                "models must be a (transaction, spend) pair or a non-empty mapping of name to "
                f"such pairs, got {models!r}"
            )
        pairs = {}
        for name, pair in models.items():
            if not (isinstance(pair, tuple | list) and len(pair) == 2):
                raise ValueError(
                    f"models[{name!r}] must be a (transaction model, spend model) pair, "
                    f"got {pair!r}"
                )
            _resolve_spec(pair[0], "transaction")
            _resolve_spec(pair[1], "spend")
            pairs[str(name)] = (pair[0], pair[1])
        return pairs

    @property
    def calendar(self) -> Calendar:
        """``horizon``, ``period`` and ``discount_rate`` as a :class:`~clvmodels.units.Calendar`."""
        return Calendar(self.horizon, self.period, self.discount_rate)

    @property
    def forecast_name(self) -> str | None:
        """The name of the pair that forecasts CLV; None while it is for the holdout
        comparison to choose (``calibration_end`` with several pairs and no
        ``forecast_model``)."""
        if self.forecast_model is not None:
            return self.forecast_model
        if self.calibration_end is not None and len(self.models) > 1:
            return None
        return next(iter(self.models))

    def describe_horizon(self) -> str:
        """The forecast's calendar in words.

        Examples
        --------
        >>> from dataclasses import replace
        >>> from clvmodels import load_cdnow
        >>> s = PipelineSettings(load_cdnow(), "customer_id", "date", "amount")
        >>> s.describe_horizon()
        '12 months, discounted at 1% per month'
        >>> replace(s, horizon=4, period="30D", discount_rate=0.02).describe_horizon()
        '4 periods of 30 days, discounted at 2% per period of 30 days'
        """
        name = period_name(self.period)
        rate = f"{100 * self.discount_rate:g}%"
        if name[0].isdigit():  # a multiple: "30 days"
            return f"{self.horizon} periods of {name}, discounted at {rate} per period of {name}"
        plural = name if self.horizon == 1 else f"{name}s"
        return f"{self.horizon} {plural}, discounted at {rate} per {name}"

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON types: models by name, dates as ISO text, files by
        name (never a machine path), an in-memory source by its type and size.

        Examples
        --------
        >>> from clvmodels import load_cdnow
        >>> d = PipelineSettings(load_cdnow(), "customer_id", "date", "amount").to_dict()
        >>> d["source"], d["models"]["ParetoNBD + GammaGamma"], d["horizon"]
        ('DataFrame (6,919 rows)', ['ParetoNBD', 'GammaGamma'], 12)
        """
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = _describe_source(value) if f.name == "source" else _json(value)
        return out


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------
@dataclass
class PipelineResult:
    """What :func:`run_pipeline` produced.

    Attributes
    ----------
    settings : PipelineSettings
        The settings it ran with.
    summary : DataFrame
        One row per customer, all data up to ``observation_end`` (records its
        ``time_unit`` in ``attrs``).
    transaction_model, spend_model
        The forecasting pair, fitted on ``summary`` (for the model average, the pair with
        the largest weight).
    forecast : CLVForecast
        CLV per customer with intervals (an :class:`clvmodels.averaging.AveragedForecast`
        for the model average).
    segmentation : Segmentation or None
        Value tiers (with ``segments``).
    tier_backtest : TierProbabilityBacktest or None
        The top-tier probabilities tried on the last horizon of the log (with
        ``predictive``, ``segments`` and ``tier_backtest``), whose recalibration
        :meth:`customers` applies.
    tier_backtest_note : str or None
        Why the tier backtest was not run, where it was asked for and could not be.
    common_shocks : CommonShocks or None
        With ``settings.common_shocks``: the shocks measured on the log.
    shock_factors : ShockFactors or None
        Their multiplier of every forecast draw's value; :meth:`total` applies them.
    common_shocks_note : str or None
        Why the common shocks were not measured, where they were asked for and could
        not be.
    split : DataFrame or None
        The calibration/holdout split (with ``calibration_end``).
    comparison : DataFrame or None
        One row per model pair, scored on the holdout (with ``calibration_end``).
    models : dict of name to (transaction, spend)
        The compared pairs, fitted on the calibration data (empty without
        ``calibration_end``).
    timings : dict of str to float
        Seconds spent in each step.
    warnings : list of str
        The warnings raised on the way (they are shown as well, not swallowed).
    forecast_name : str
        The name of the pair that forecast CLV: ``settings.forecast_model`` where
        named, else the best on the holdout (``comparison.attrs["best"]``), else the
        first pair.
    """

    settings: PipelineSettings
    summary: pd.DataFrame
    transaction_model: Any
    spend_model: Any
    forecast: Any
    segmentation: Any = None
    tier_backtest: Any = None
    tier_backtest_note: str | None = None
    common_shocks: Any = None
    shock_factors: Any = None
    common_shocks_note: str | None = None
    split: pd.DataFrame | None = None
    comparison: pd.DataFrame | None = None
    models: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    forecast_name: str = ""

    def __post_init__(self) -> None:
        if not self.forecast_name:
            self.forecast_name = _forecast_name(self.settings, self.comparison)

    @property
    def time_unit(self) -> str:
        """The time unit of the summary and the models; an error where they disagree."""
        return resolve_time_unit(
            self.summary.attrs.get("time_unit"),
            models=(self.transaction_model, self.spend_model),
            context="pipeline",
        )

    def total(self) -> pd.Series:
        """The forecast's portfolio total, with the common shocks in its intervals where
        they were measured (``attrs["shock_method"]`` then says how)."""
        if self.shock_factors is None:
            return self.forecast.total()
        return self.shock_factors.total(self.forecast)

    def customers(self) -> pd.DataFrame:
        """Per customer: the summary, the forecast and (with segments) the tiers, with
        the recalibrated top-tier probability where the tier backtest ran."""
        table = self.summary.join(
            self.forecast.table.drop(columns=self.summary.columns, errors="ignore")
        )
        if self.segmentation is not None:
            table = table.join(
                self.segmentation.customers.drop(columns=table.columns, errors="ignore")
            )
        if self.tier_backtest is not None:
            table = self.tier_backtest.apply(table)
        return table

    def transactions(self) -> pd.DataFrame:
        """The transaction columns of the source, for steps that need single purchases.

        A frame in memory is viewed as pandas; files are read by DuckDB, only these
        columns (see :func:`clvmodels.data.read_transactions`).
        """
        return _read_log(self.settings)

    def to_dict(self) -> dict[str, Any]:
        """Settings, portfolio total, tier backtest, comparison, timings and warnings as
        JSON types."""
        out: dict[str, Any] = {
            "settings": self.settings.to_dict(),
            "customers": len(self.summary),
            "time_unit": self.time_unit,
            "forecast_model": self.forecast_name,
            "total": _json(self.total().to_dict()),
            "timings": _json(self.timings),
            "warnings": list(self.warnings),
        }
        check = self.tier_backtest
        if check is not None:
            out["tier_backtest"] = _json({
                "column": check.column, "cut": check.cut, "end": check.end,
                "intercept": check.intercept, "slope": check.slope,
                "customers": check.n_customers,
            })
        elif self.tier_backtest_note is not None:
            out["tier_backtest"] = {"not_run": self.tier_backtest_note}
        if self.common_shocks is not None:
            out["common_shocks"] = _json({
                **self.common_shocks.to_dict(), **self.shock_factors.attrs(),
                "total_without_shocks": self.forecast.total().to_dict(),
            })
        elif self.common_shocks_note is not None:
            out["common_shocks"] = {"not_run": self.common_shocks_note}
        if self.comparison is not None:
            frame = self.comparison.astype(object).where(self.comparison.notna(), None)
            out["comparison"] = _json(frame.to_dict(orient="index"))
            out["verdict"] = self.comparison.attrs.get("verdict")
        return out


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------
class _Steps:
    """Timed, named steps that advance one progress bar."""

    def __init__(self, bar: ProgressBar, timings: dict[str, float]) -> None:
        self.bar = bar
        self.timings = timings

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.bar.update(description=f"clvmodels: {name}")
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = time.perf_counter() - started
            self.bar.advance()


def _fit(model: Any, data: pd.DataFrame, options: Mapping[str, Any], progressbar: bool) -> None:
    from clvmodels.models.base import accepted_fit_options

    accepted = accepted_fit_options(model.fit, {**options, "progressbar": progressbar})
    model.fit(data, **accepted)


#: Columns of a summary that customer attributes may not replace.
_SUMMARY_COLUMNS = ("frequency", "recency", "T", "monetary_value")


def _customer_table(table: Any, customer_col: str, group_col: str | None) -> pd.DataFrame:
    """``customer_data`` indexed by customer id, checked before any data is read."""
    if not isinstance(table, pd.DataFrame):
        raise ValueError(
            f"customer_data must be a pandas DataFrame of one row per customer, got "
            f"{type(table).__name__}"
        )
    if customer_col in table.columns:
        table = table.set_index(customer_col)
    if table.index.has_duplicates:
        repeated = table.index[table.index.duplicated()].unique()
        raise DataValidationError(
            f"customer_data: {len(repeated)} customer ids have more than one row; first ids "
            f"{list(repeated[:5])}"
        )
    taken = [c for c in table.columns
             if c in _SUMMARY_COLUMNS or str(c).endswith("_holdout") or c == group_col]
    if taken:
        raise ValueError(
            f"customer_data: columns {taken} would replace the summary's own; rename them"
        )
    return table


def _forecast_name(settings: PipelineSettings, comparison: pd.DataFrame | None) -> str:
    """The pair to forecast with: the user's, else the best on the holdout, else the first."""
    named = settings.forecast_name
    if named is not None:
        return named
    if comparison is not None and comparison.attrs.get("best") in settings.models:
        return str(comparison.attrs["best"])
    return next(iter(settings.models))


def _read_log(s: PipelineSettings) -> pd.DataFrame:
    """The transaction columns of the source (see :meth:`PipelineResult.transactions`)."""
    from clvmodels.data import read_transactions

    return read_transactions(
        s.source, s.customer_col, s.date_col, s.value_col, group_col=s.group_col,
        date_format=s.date_format,
    )


def run_pipeline(settings: PipelineSettings, *, progressbar: bool = True) -> PipelineResult:
    """Run summary -> fit -> CLV -> segments (-> holdout comparison) from ``settings``.

    Parameters
    ----------
    settings : PipelineSettings
        What to run.
    progressbar : bool, default True
        Show progress (one bar for the pipeline; long steps add their own lines).

    Returns
    -------
    PipelineResult

    Raises
    ------
    DataValidationError
        For transactions that cannot be summarised (missing columns, bad dates or
        values), with the rows named.
    ValueError
        For inconsistent settings (e.g. ``observation_end`` before ``calibration_end``).

    Examples
    --------
    The family compared on the holdout; the best on value forecasts:

    >>> from clvmodels import load_cdnow
    >>> settings = PipelineSettings(
    ...     load_cdnow(), "customer_id", "date", "amount", calibration_end="1997-09-30",
    ...     observation_end="1998-06-30", n_draws=50, segments=False)
    >>> result = run_pipeline(settings, progressbar=False)
    >>> result.comparison["purchases_actual"].tolist()  # the family and its model average
    [1882.0, 1882.0, 1882.0, 1882.0, 1882.0, 1882.0]
    >>> result.forecast_name, result.segmentation is None
    ('ModifiedBetaGeo + GammaGamma', True)
    >>> list(result.timings)  # doctest: +NORMALIZE_WHITESPACE
    ['calibration/holdout split', 'comparing models', 'summary',
     'fitting ModifiedBetaGeo + GammaGamma', 'forecasting CLV']
    """
    timings: dict[str, float] = {}
    caught: list[warnings.WarningMessage] = []
    n_steps = (3 + 2 * (settings.calibration_end is not None) + settings.segments
               + _runs_tier_backtest(settings) + settings.common_shocks)
    try:
        with (
            warnings.catch_warnings(record=True) as caught,
            progress_bar(n_steps, "clvmodels", enabled=progressbar) as bar,
        ):
            parts = _run(settings, _Steps(bar, timings), progressbar)
    finally:  # recorded for the result, and shown as they would have been
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    # The summary and the models must agree on one time unit.
    resolve_time_unit(
        parts["summary"].attrs.get("time_unit"),
        models=(parts["transaction_model"], parts["spend_model"]),
        context="pipeline",
    )
    return PipelineResult(
        settings=settings,
        **parts,
        timings=timings,
        warnings=[f"{w.category.__name__}: {w.message}" for w in caught],
    )


def _run(s: PipelineSettings, step: _Steps, progressbar: bool) -> dict[str, Any]:
    """The steps of :func:`run_pipeline`; the fields of its result."""
    from clvmodels.averaging import average_forecasts
    from clvmodels.clv import customer_lifetime_value
    from clvmodels.data import calibration_holdout_split, join_customer_data, rfm_summary

    columns = (s.source, s.customer_col, s.date_col, s.value_col)
    options = {"random_state": s.random_state, **s.fit_options}
    out: dict[str, Any] = {"split": None, "comparison": None, "models": {}}
    # Every summary is read as _summary_options says: the split with the columns of every
    # model compared, the final summary with those of the pair that forecasts.
    observation_end = s.observation_end
    if s.calibration_end is not None:
        from clvmodels.evaluation import compare

        models = {
            name: (
                make_model(tx, kind="transaction", group_col=s.group_col),
                make_model(spend, kind="spend", group_col=s.group_col),
            )
            for name, (tx, spend) in s.models.items()
        }
        with step("calibration/holdout split"):
            split = calibration_holdout_split(
                *columns, calibration_end=s.calibration_end, observation_end=observation_end,
                **_summary_options(s, s.models.values()),
            )
        split = join_customer_data(split, s.customer_data)
        observation_end = split.attrs["observation_end"]
        with step("comparing models"):
            # The log, read when the model average's backtest (or a model column) needs it.
            comparison = compare(
                models, split, transactions=lambda: _read_log(s), interval=s.interval,
                n_draws=s.n_draws, random_state=s.random_state,
                fit_kwargs={name: options for name in models},
                leave_out_failures=len(models) > 1, progressbar=progressbar,
            )
        left_out = set(comparison.attrs["left_out"])  # not fitted: nothing to show
        models = {name: pair for name, pair in models.items() if name not in left_out}
        out.update(split=split, comparison=comparison, models=models)
    name = _forecast_name(s, out["comparison"])
    weights = {name: 1.0}
    if name == AVERAGE_NAME:
        weights = {n: w for n, w in out["comparison"].attrs["averaging_weights"].items() if w > 0}
        if not weights:
            raise ValueError(f"pipeline: no model average to forecast with: "
                             f"{out['comparison'].attrs['averaging']['text']}")
    pairs = {
        n: (make_model(s.models[n][0], kind="transaction", group_col=s.group_col),
            make_model(s.models[n][1], kind="spend", group_col=s.group_col))
        for n in weights
    }  # fmt: skip
    with step("summary"):
        summary = join_customer_data(rfm_summary(
            *columns, observation_end=observation_end,
            **_summary_options(s, [s.models[n] for n in pairs]),
        ), s.customer_data)
    with step(f"fitting {name}"):
        for tx, spend in pairs.values():
            _fit(tx, summary, options, progressbar)
            _fit(spend, summary, options, progressbar)
    with step("forecasting CLV"):
        forecasts = {
            n: customer_lifetime_value(
                tx, spend, summary, horizon=s.horizon, period=s.period,
                discount_rate=s.discount_rate, interval=s.interval, n_draws=s.n_draws,
                predictive=s.predictive, n_futures=s.n_futures, random_state=s.random_state,
                progressbar=progressbar,
                tier_histogram=bool(s.segments) and n == name,  # tiers follow: one pass
            )
            for n, (tx, spend) in pairs.items()
        }
        forecast = forecasts[name] if name in forecasts else average_forecasts(forecasts, weights)
    tx, spend = pairs[max(weights, key=weights.get)]
    if s.common_shocks:
        with step("common shocks"):
            out.update(_common_shocks(s, tx, summary, forecast))
    segmentation = None
    if s.segments:
        from clvmodels.segmentation import segment

        with step("segmenting"):
            segmentation = segment(forecast, common_multipliers=out.get("shock_factors"),
                                   progressbar=progressbar)
    out.update(summary=summary, transaction_model=tx, spend_model=spend, forecast=forecast,
               segmentation=segmentation, forecast_name=name)
    if _runs_tier_backtest(s):
        with step("tier backtest"):
            out["tier_backtest"], out["tier_backtest_note"] = _tier_backtest(s, out)
    return out


def _summary_options(s: PipelineSettings, pairs: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
    """How every summary of the pipeline is read: the settings' unit, aggregation and
    group, and the columns some models read beyond the default summary (BG/CNBD-k's
    regularity, Gamma-Gamma on transactions' log spend), asked of the summary itself."""
    return {"freq": s.freq, "time_unit": s.time_unit, "group_col": s.group_col,
            "date_format": s.date_format, **summary_options_for(
                c for pair in pairs for spec in pair for c in make_model(spec).data_columns
            )}  # fmt: skip


def _common_shocks(
    s: PipelineSettings, transaction_model: Any, summary: pd.DataFrame, forecast: Any
) -> dict[str, Any]:
    """The shocks common to all customers, measured on the log up to the summary's end,
    and their factors for ``forecast``; or a note of why not (said in a warning too
    where the data, not the kind of model, stood in the way)."""
    from clvmodels.shocks import estimate_common_shocks, shock_estimate_refusal, shock_factors

    refusal = shock_estimate_refusal(transaction_model)
    if refusal is not None:  # the model's kind, not the data: a note, as for the backtest
        return {"common_shocks_note": refusal}
    from clvmodels.data import read_transactions

    try:
        log = read_transactions(s.source, s.customer_col, s.date_col, date_format=s.date_format)
        shocks = estimate_common_shocks(
            transaction_model, log, s.customer_col, s.date_col,
            calibration_end=summary.attrs["observation_end"], random_state=s.random_state,
        )  # fmt: skip
        factors = shock_factors(forecast, summary, shocks, random_state=s.random_state)
    except (ValueError, ConvergenceError) as err:  # the data or the model cannot support it
        note = str(err)
        warnings.warn(f"pipeline: the common shocks were not measured ({note}); the "
                      "intervals of the totals leave them out", stacklevel=3)
        return {"common_shocks_note": note}
    return {"common_shocks": shocks, "shock_factors": factors}


def _runs_tier_backtest(s: PipelineSettings) -> bool:
    return bool(s.predictive and s.segments and s.tier_backtest)


def _tier_backtest(s: PipelineSettings, out: Mapping[str, Any]) -> tuple[Any, str | None]:
    """The forecast's top-tier probabilities tried on the last horizon of the log, or
    (None, why not). The model average and Bayesian fits are not tried (a note says so);
    a backtest that fails on the data is said in a warning as well, since the customer
    table then lacks the recalibrated column that was asked for."""
    from clvmodels.backtest import backtest_tier_probability, refit_refusal

    if out["forecast_name"] == AVERAGE_NAME:
        return None, ("the model average mixes several models' forecasts, and the backtest "
                      "refits one")
    refusal = refit_refusal([out["transaction_model"], out["spend_model"]])
    if refusal is not None:
        return None, refusal
    try:
        check = backtest_tier_probability(  # the source itself: files are read out of core
            out["forecast"], s.source, s.customer_col, s.date_col, s.value_col,
            calibration_end=out["summary"].attrs["observation_end"],
            column="top_tier_probability_realised",
            summary_options=_summary_options(s, [s.models[out["forecast_name"]]]),
            customer_data=s.customer_data, random_state=s.random_state,
        )  # fmt: skip
    except (ValueError, ConvergenceError) as err:  # the data cannot support it
        note = str(err)
        warnings.warn(f"pipeline: the tier backtest did not run ({note}); the customer "
                      "table has no recalibrated top-tier probability", stacklevel=3)
        return None, note
    return check, None

