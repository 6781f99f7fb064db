"""Customer covariates: which columns move which parameters, and how a frame becomes a
design matrix.

A model says how covariates enter it with one declaration, ``covariate_effects``: for
each *role* the parameters it scales and the sign of the effect. A customer ``i`` with
covariates ``z_i`` then has, for every parameter ``theta`` of the role,

    theta_i = theta_0 * exp(sign * gamma' z_i),

the time-invariant covariates of Fader & Hardie (2007), "Incorporating Time-Invariant
Covariates into the Pareto/NBD and BG/NBD Models" (note 019), as R's CLVTools
implements them. The signs follow CLVTools, so its coefficients and ours are the same
numbers:

==================  ==========  ===============================================
model               role        parameters (sign)
==================  ==========  ===============================================
BG/NBD, MBG/NBD     purchase    ``alpha`` (-1): ``E[lambda] = r / alpha`` grows
                                by ``exp(gamma' z)``
BG/NBD, MBG/NBD     dropout     ``a`` (+1) and ``b`` (+1): the mean dropout
                                probability ``a / (a + b)`` is unchanged, the
                                Beta distribution concentrates around it
Pareto/NBD          purchase    ``alpha`` (-1)
Pareto/NBD          dropout     ``beta`` (-1): ``E[mu] = s / beta`` grows by
                                ``exp(gamma' z)`` (customers leave sooner)
Gamma-Gamma         spend       ``gamma`` (+1): mean spend ``p gamma / (q - 1)``
                                grows by ``exp(gamma' z)``
==================  ==========  ===============================================

pymc-marketing's ``BetaGeoModel``, ``ModifiedBetaGeoModel`` and ``ParetoNBDModel``
use the same signs (``alpha_scale * exp(-purchase_coefficient' z)`` and so on).

Columns
-------
A model takes its covariates as ``<role>_covariates=[...]``: columns of the summary
frame. A column of numbers (int or float, not bool) enters as it is. Any other column
(strings, ``category``, ``bool``, objects) is *categorical*: it is expanded into one
indicator per level except the *reference level*, the first level in sorted order of
the levels' string form (``False`` before ``True``, ``"email"`` before ``"web"``).
Levels are matched by their string form, recorded at fit (and in saved files), and
data with a level the model has not seen is refused, naming the column and the levels.

Coefficients are named ``<role>:<column>`` for a numeric column and
``<role>:<column>[<level>]`` for a level of a categorical one, e.g.
``purchase:age`` and ``dropout:channel[web]``.

Equality constraints
--------------------
``constrain=["channel"]`` (CLVTools ``names.cov.constr``) gives a column one
coefficient shared by every role that uses it; ``constrain={"channel": ("purchase",
"dropout")}`` names the roles. A shared coefficient is named with its roles joined by
``+``: ``purchase+dropout:channel[web]``. It enters each role with that role's sign.

Penalty
-------
``covariate_penalty=lam`` (a number for every role, or ``{"purchase": 8, "dropout":
3}``) adds ``N * sum_role lam_role * |gamma_role|^2`` to the negative log-likelihood
of ``N`` customers, which is CLVTools' ``reg.lambdas = c(trans=..., life=...)``
exactly: CLVTools minimises ``-LL / N + lam_trans |gamma_trans|^2 + lam_life
|gamma_life|^2``. A shared coefficient is penalised by the sum of its roles' lambdas,
as CLVTools does after re-duplicating constrained parameters. Base parameters are not
penalised (``penalizer`` covers them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clvmodels._validation import float_or_nan
from clvmodels.errors import DataValidationError, ModelFileError

__all__ = [
    "RESERVED_COLUMNS",
    "CovariateDesign",
    "CovariateEffects",
    "CovariateSpec",
    "coefficient_name",
]

#: Summary columns that cannot be covariates: the models read them themselves.
RESERVED_COLUMNS = frozenset({"frequency", "recency", "T", "monetary_value"})
#: How a model's covariates enter: role -> ((parameter, sign), ...).
CovariateEffects = Mapping[str, tuple[tuple[str, float], ...]]
#: Suffix of a role's constructor argument: ``purchase`` -> ``purchase_covariates``.
SUFFIX = "_covariates"


def coefficient_name(roles: Sequence[str], design_column: str) -> str:
    """``purchase:age``, or ``purchase+dropout:age`` for a shared coefficient."""
    return f"{'+'.join(roles)}:{design_column}"


def _column_list(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Mapping) or not isinstance(value, Sequence | np.ndarray | pd.Index):
        raise ValueError(f"{name} must be a list of column names, got {value!r}")
    columns = list(value)
    bad = [c for c in columns if not isinstance(c, str) or not c]
    if bad:
        raise ValueError(f"{name}: column names must be non-empty strings, got {bad}")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise ValueError(f"{name} names column(s) {duplicated} more than once")
    reserved = [c for c in columns if c in RESERVED_COLUMNS]
    if reserved:
        raise ValueError(
            f"{name}: {reserved} are summary columns the model reads itself, not covariates"
        )
    return tuple(columns)


def _penalty(value: Any) -> float:
    number = float_or_nan(value)
    if isinstance(value, bool) or not (math.isfinite(number) and number >= 0):
        raise ValueError(f"covariate_penalty must be a finite number >= 0, got {value!r}")
    return number


@dataclass(frozen=True)
class CovariateSpec:
    """Validated covariate settings of a model (no data yet).

    Attributes
    ----------
    roles : dict
        Role -> covariate columns, in the model's role order; roles without
        covariates are left out.
    constrain : dict
        Column -> the roles that share its coefficients.
    penalty : dict
        Role -> the L2 penalty per customer on its coefficients.
    """

    roles: dict[str, tuple[str, ...]]
    constrain: dict[str, tuple[str, ...]] = field(default_factory=dict)
    penalty: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls,
        declared_roles: Sequence[str],
        columns: Mapping[str, Any],
        constrain: Any = None,
        covariate_penalty: Any = 0.0,
    ) -> CovariateSpec | None:
        """Check a model's covariate settings; None when it has no covariates.

        Raises ValueError naming the setting for anything that cannot work.
        """
        roles = {}
        for role in declared_roles:
            cols = _column_list(columns.get(role), f"{role}{SUFFIX}")
            if cols:
                roles[role] = cols
        if not roles:
            if constrain:
                raise ValueError("constrain needs covariates: the model has none")
            if isinstance(covariate_penalty, Mapping):
                for value in covariate_penalty.values():
                    _penalty(value)
            else:
                _penalty(covariate_penalty)
            return None
        shared: dict[str, tuple[str, ...]] = {}
        if constrain is not None and not isinstance(constrain, Mapping):
            if isinstance(constrain, str):
                constrain = [constrain]
            if not isinstance(constrain, Sequence):
                raise ValueError(
                    f"constrain must be a list of columns or a dict, got {constrain!r}"
                )
            constrain = {c: tuple(r for r in roles if c in roles[r]) for c in constrain}
        for column, used_by in (constrain or {}).items():
            if not isinstance(column, str):
                raise ValueError(f"constrain: column names must be strings, got {column!r}")
            if isinstance(used_by, str) or not isinstance(used_by, Sequence):
                raise ValueError(f"constrain[{column!r}] must be a list of roles, got {used_by!r}")
            unknown = [r for r in used_by if r not in declared_roles]
            if unknown:
                raise ValueError(
                    f"constrain[{column!r}]: unknown role(s) {unknown}; roles are "
                    f"{list(declared_roles)}"
                )
            missing = [r for r in used_by if column not in roles.get(r, ())]
            if missing:
                raise ValueError(
                    f"constrain: column {column!r} is not among the covariates of role(s) "
                    f"{missing} (pass it in {[f'{r}{SUFFIX}' for r in missing]})"
                )
            ordered = tuple(r for r in roles if r in used_by)
            if len(ordered) < 2:
                raise ValueError(
                    f"constrain: column {column!r} must be a covariate of at least two roles "
                    f"to share one coefficient between them, found {list(ordered)}"
                )
            shared[column] = ordered
        if isinstance(covariate_penalty, Mapping):
            unknown = [r for r in covariate_penalty if r not in declared_roles]
            if unknown:
                raise ValueError(
                    f"covariate_penalty: unknown role(s) {unknown}; roles are "
                    f"{list(declared_roles)}"
                )
            penalty = {r: _penalty(covariate_penalty.get(r, 0.0)) for r in roles}
        else:
            value = _penalty(covariate_penalty)
            penalty = dict.fromkeys(roles, value)
        return cls(roles=roles, constrain=shared, penalty=penalty)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every covariate column, in order of first use."""
        return tuple(dict.fromkeys(c for cols in self.roles.values() for c in cols))

    def settings(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this spec, JSON-ready."""
        out: dict[str, Any] = {f"{r}{SUFFIX}": list(c) for r, c in self.roles.items()}
        if self.constrain:
            out["constrain"] = {c: list(r) for c, r in self.constrain.items()}
        values = set(self.penalty.values())
        if values != {0.0}:
            out["covariate_penalty"] = (
                values.pop() if len(values) == 1 else dict(self.penalty)
            )
        return out


def _categorical(series: pd.Series) -> bool:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return True
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return False
    if (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or pd.api.types.is_complex_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype | pd.IntervalDtype)
    ):
        raise TypeError(str(dtype))
    return True


def _ids(frame: pd.DataFrame, mask: np.ndarray) -> list[Any]:
    return [v.item() if hasattr(v, "item") else v for v in frame.index[mask][:5]]


def _distinct_labels(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The string forms of a categorical column's distinct values (no missing values)
    and each row's position among them; each distinct value is converted once."""
    codes, uniques = pd.factorize(series, use_na_sentinel=False)
    forms = np.array([str(v) for v in np.asarray(uniques, dtype=object)], dtype=object)
    return forms, codes


def _missing(series: pd.Series) -> np.ndarray:
    return np.asarray(series.isna().to_numpy(), dtype=bool)


@dataclass(frozen=True)
class CovariateDesign:
    """A fitted covariate spec: its categorical levels, design columns and coefficients.

    Attributes
    ----------
    spec : CovariateSpec
    levels : dict
        Categorical column -> its levels (string forms), sorted; the first is the
        reference level, which gets no indicator.
    design_columns : tuple of str
        Columns of the design matrix: ``age`` for a numeric column, ``channel[web]``
        for a level of a categorical one.
    coefficients : tuple of str
        Coefficient names, in parameter order.
    """

    spec: CovariateSpec
    levels: dict[str, tuple[str, ...]]
    design_columns: tuple[str, ...] = field(init=False)
    coefficients: tuple[str, ...] = field(init=False)
    #: role -> positions in ``design_columns`` and in ``coefficients`` (aligned)
    role_design: dict[str, np.ndarray] = field(init=False, repr=False)
    role_coefficients: dict[str, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        expanded = {c: self._expand(c) for c in self.spec.columns}
        design = tuple(d for c in self.spec.columns for d in expanded[c])
        names: list[str] = []
        role_design, role_coef = {}, {}
        for role, cols in self.spec.roles.items():
            d_idx, c_idx = [], []
            for column in cols:
                roles = self.spec.constrain.get(column, (role,))
                for d in expanded[column]:
                    name = coefficient_name(roles, d)
                    if name not in names:
                        names.append(name)
                    d_idx.append(design.index(d))
                    c_idx.append(names.index(name))
            role_design[role] = np.array(d_idx, dtype=np.intp)
            role_coef[role] = np.array(c_idx, dtype=np.intp)
        object.__setattr__(self, "design_columns", design)
        object.__setattr__(self, "coefficients", tuple(names))
        object.__setattr__(self, "role_design", role_design)
        object.__setattr__(self, "role_coefficients", role_coef)

    def _expand(self, column: str) -> tuple[str, ...]:
        if column in self.levels:
            return tuple(f"{column}[{level}]" for level in self.levels[column][1:])
        return (column,)

    @property
    def reference_levels(self) -> dict[str, str]:
        """Categorical column -> its reference level."""
        return {c: levels[0] for c, levels in self.levels.items()}

    def coefficient_roles(self) -> list[tuple[str, ...]]:
        """The roles of every coefficient (for the penalty)."""
        out: list[tuple[str, ...]] = [() for _ in self.coefficients]
        for role, idx in self.role_coefficients.items():
            for j in idx:
                if role not in out[j]:
                    out[j] = (*out[j], role)
        return out

    # -- from data ------------------------------------------------------------------
    @classmethod
    def learn(cls, spec: CovariateSpec, frame: pd.DataFrame, context: str) -> CovariateDesign:
        """The levels of the categorical columns of ``frame`` (at fit)."""
        levels = {}
        for column in spec.columns:
            series = _column(frame, column, context)
            try:
                categorical = _categorical(series)
            except TypeError as err:
                raise DataValidationError(
                    f"{context}: covariate column '{column}' must be numeric or categorical "
                    f"(strings, category, bool), got dtype {err}"
                ) from None
            if not categorical:
                continue
            missing = _missing(series)
            if missing.any():
                raise DataValidationError(
                    f"{context}: covariate column '{column}': {int(missing.sum())} of "
                    f"{len(frame)} rows are missing; first customer ids {_ids(frame, missing)}"
                )
            found = sorted(set(_distinct_labels(series)[0]))
            if len(found) < 2:
                raise DataValidationError(
                    f"{context}: covariate column '{column}' has a single level {found}: "
                    "it cannot explain differences between customers"
                )
            levels[column] = tuple(found)
        return cls(spec, levels)

    def matrix(self, frame: pd.DataFrame, context: str) -> np.ndarray:
        """The design matrix of ``frame``: ``(len(frame), len(design_columns))``.

        Raises DataValidationError naming the column for a missing column, missing or
        infinite values, a non-numeric value where the model was fitted on numbers, and
        levels the model has not seen.
        """
        n = len(frame)
        out = np.empty((n, len(self.design_columns)))
        position = 0
        for column in self.spec.columns:
            series = _column(frame, column, context)
            missing = _missing(series)
            if missing.any():
                raise DataValidationError(
                    f"{context}: covariate column '{column}': {int(missing.sum())} of {n} rows "
                    f"are missing; first customer ids {_ids(frame, missing)}"
                )
            if column in self.levels:
                levels = self.levels[column]
                forms, positions = _distinct_labels(series)
                codes = pd.Index(levels).get_indexer(forms)[positions]
                unseen = codes < 0
                if unseen.any():
                    new = sorted(set(forms[positions[unseen]]))
                    raise DataValidationError(
                        f"{context}: covariate column '{column}' has level(s) {new[:10]} that "
                        f"the model was not fitted on (known levels: {list(levels)}); first "
                        f"customer ids {_ids(frame, unseen)}"
                    )
                width = len(levels) - 1
                block = np.zeros((n, width))
                rows = np.flatnonzero(codes > 0)
                block[rows, codes[rows] - 1] = 1.0
                out[:, position : position + width] = block
                position += width
                continue
            dtype = series.dtype
            if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype) or (
                pd.api.types.is_complex_dtype(dtype)
            ):
                raise DataValidationError(
                    f"{context}: covariate column '{column}' must be numeric (the model was "
                    f"fitted on numbers), got dtype {dtype}"
                )
            values = series.to_numpy(dtype=float, na_value=np.nan)
            bad = ~np.isfinite(values)
            if bad.any():
                raise DataValidationError(
                    f"{context}: covariate column '{column}': {int(bad.sum())} of {n} rows are "
                    f"missing or infinite; first customer ids {_ids(frame, bad)}"
                )
            out[:, position] = values
            position += 1
        return out

    def check_identifiable(self, matrix: np.ndarray, weights: np.ndarray, context: str) -> None:
        """Refuse design columns the fitted customers cannot tell apart from a constant
        or from each other (their coefficients would not be identified)."""
        total = float(weights.sum())
        mean = weights @ matrix / total
        centred = matrix - mean
        variance = weights @ centred**2 / total
        for j, name in enumerate(self.design_columns):
            if not variance[j] > 1e-12 * max(1.0, mean[j] ** 2):
                raise DataValidationError(
                    f"{context}: covariate '{name}' takes the same value "
                    f"({mean[j]:.6g}) for every customer the model learns from, so its effect "
                    "cannot be told apart from the base parameters"
                )
        scaled = centred / np.sqrt(variance)
        gram = (scaled * weights[:, None]).T @ scaled / total
        for j in range(1, gram.shape[0]):
            block = gram[: j + 1, : j + 1]
            if np.linalg.eigvalsh(block).min() < 1e-10:
                raise DataValidationError(
                    f"{context}: covariate '{self.design_columns[j]}' is a linear combination "
                    f"of {list(self.design_columns[:j])} among the customers the model learns "
                    "from, so the coefficients are not identified"
                )

    # -- persistence ------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"levels": {c: list(v) for c, v in self.levels.items()}}

    @classmethod
    def from_json(
        cls, spec: CovariateSpec, value: Any, source: str, field: str = "extra.covariates"
    ) -> CovariateDesign:
        """The fitted design saved with a model, every field checked (``field``: where it
        sits in the file, for the messages)."""
        field_ = field
        if not isinstance(value, Mapping) or set(value) != {"levels"}:
            raise ModelFileError(f"{source}: field '{field_}' must be an object with 'levels'")
        levels = value["levels"]
        if not isinstance(levels, Mapping):
            raise ModelFileError(f"{source}: field '{field_}.levels' must be an object")
        unknown = sorted(set(levels) - set(spec.columns))
        if unknown:
            raise ModelFileError(
                f"{source}: field '{field_}.levels' names {unknown}, which are not covariates "
                f"of the model ({list(spec.columns)})"
            )
        checked = {}
        for column, found in levels.items():
            name = f"{field_}.levels.{column}"
            if not (
                isinstance(found, list)
                and len(found) >= 2
                and all(isinstance(v, str) for v in found)
                and len(set(found)) == len(found)
                and found == sorted(found)
            ):
                raise ModelFileError(
                    f"{source}: field '{name}' must be a sorted list of at least two distinct "
                    f"strings (the reference level first), got {found!r}"
                )
            checked[column] = tuple(found)
        return cls(spec, checked)


def _column(frame: pd.DataFrame, column: str, context: str) -> pd.Series:
    if column not in frame.columns:
        raise DataValidationError(
            f"{context}: covariate column '{column}' is missing; columns are "
            f"{list(frame.columns)}"
        )
    series = frame[column]
    if isinstance(series, pd.DataFrame):
        raise DataValidationError(f"{context}: covariate column '{column}' appears twice")
    return series
