"""BG/NBD and Gamma-Gamma log-likelihoods over sufficient statistics.

Written once, for a pooled model (one group) and a grouped model alike: the
parameters are arrays whose last axis runs over groups, and every customer is
reached through compressed, weighted rows. The term builders take an array
namespace, so the same code gives the PyTensor graph the sampler differentiates
(:func:`bgnbd_total_log_likelihood`, :func:`gamma_gamma_total_log_likelihood`) and
the NumPy evaluation over thousands of posterior draws that fills the pointwise
log-likelihood (:func:`bgnbd_pointwise`, :func:`gamma_gamma_pointwise`).

The sampler evaluates the graphs tens of thousands of times, so they are built
for few operations per row:

* every term that depends on the data only through the purchase count ``x`` (the
  gamma functions of FHL 2005 eq. 6 and of the Gamma-Gamma density) is evaluated
  once per distinct ``(group, x)``, not once per row;
* customers without repeat purchases contribute ``r log(alpha / (alpha + T))`` and
  are aggregated by ``(group, T)``;
* each remaining row costs two logarithms and one softplus, in log space.

The per-customer NumPy functions :func:`clvmodels.models.beta_geo.bgnbd_log_likelihood`
and :func:`clvmodels.models.gamma_gamma.gamma_gamma_log_likelihood` are the
reference; the tests check that both agree.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
from scipy import special

__all__ = [
    "BetaGeoStatistics",
    "GammaGammaStatistics",
    "as_data",
    "bgnbd_pointwise",
    "bgnbd_total_log_likelihood",
    "gamma_gamma_pointwise",
    "gamma_gamma_total_log_likelihood",
]

# ``only`` picks the single group's entry so that it broadcasts against the rows: a
# scalar for the graph's parameter vectors, a trailing axis of 1 for NumPy batches.
_PYTENSOR = SimpleNamespace(
    log=pt.log, gammaln=pt.gammaln, softplus=pt.softplus, only=lambda p: p[..., 0]
)
def _softplus(v: np.ndarray) -> np.ndarray:
    """log(1 + exp(v)), stable for any v (and about 3x faster than logaddexp)."""
    out = np.log1p(np.exp(-np.abs(v)))
    out += np.maximum(v, 0.0)
    return out


_NUMPY = SimpleNamespace(
    log=np.log,
    gammaln=special.gammaln,
    softplus=_softplus,
    only=lambda p: p[..., 0:1],
)


def _aggregate(
    weights: np.ndarray, *keys: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Sum ``weights`` over identical key tuples.

    Returns the distinct keys (sorted), their summed weights and, for every input,
    the position of its key.
    """
    frame = pd.DataFrame({f"k{i}": k for i, k in enumerate(keys)})
    cols = list(frame.columns)
    codes = frame.groupby(cols, sort=True).ngroup().to_numpy()
    n = int(codes.max()) + 1 if len(codes) else 0
    summed = np.bincount(codes, weights=weights, minlength=n).astype(float)
    first = np.full(n, -1, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    return [np.asarray(k)[first] for k in keys], summed, codes.astype(np.int64)


_DATA_IDS = itertools.count()


def as_data(value: Any) -> pt.TensorVariable:
    """A data array as a shared variable with its static shape.

    As a constant, a scalar or length-1 array would be folded into the generated C
    code, so every new data set would cost a C compilation; as shared data the
    compiled code depends on shapes only and comes from PyTensor's cache.
    """
    value = np.asarray(value, dtype=float)
    # Only length-1 axes are fixed (they must broadcast); any other static length
    # would enter the cache key of the compiled code.
    shape = tuple(1 if n == 1 else None for n in value.shape)
    # nutpie's numba backend keys shared data by name, so every one gets its own.
    return pytensor.shared(value, name=f"clvdata_{next(_DATA_IDS)}", shape=shape, borrow=True)


def _shared_tables(stats: Any) -> Any:
    """``stats`` with every array as shared data: floats as in :func:`_shared_floats`,
    index arrays as int64.

    Used for Ops whose compiled code reads the tables at run time, so that Numba
    does not freeze (and recompile for) every new data set.
    """
    stats = _shared_floats(stats)
    updates = {
        f.name: pytensor.shared(
            np.ascontiguousarray(value, dtype=np.int64),
            name=f"clvdata_{next(_DATA_IDS)}",
            shape=(None,) * value.ndim,
            borrow=True,
        )
        for f in dataclasses.fields(stats)
        if isinstance(value := getattr(stats, f.name), np.ndarray)
    }
    return dataclasses.replace(stats, **updates)


def _shared_floats(stats: Any) -> Any:
    """``stats`` with its float arrays as shared data (index arrays stay NumPy)."""
    updates = {
        f.name: as_data(getattr(stats, f.name))
        for f in dataclasses.fields(stats)
        if isinstance(getattr(stats, f.name), np.ndarray)
        and getattr(stats, f.name).dtype.kind == "f"
    }
    return dataclasses.replace(stats, **updates)


def _take(ops: Any, param: Any, index: np.ndarray, n_groups: int) -> Any:
    """The entries of ``param`` (last axis: groups) for each row of ``index``."""
    # One group broadcasts: no gather, and no scatter in the gradient.
    return ops.only(param) if n_groups == 1 else param[..., index]


# ----------------------------------------------------------------------------------
# BG/NBD
# ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BetaGeoStatistics:
    """Sufficient statistics of a (grouped) BG/NBD summary.

    Built from distinct rows by :meth:`from_rows`; every array is plain NumPy.
    ``*_index`` map each input row to its entry in the zero, count and repeat
    tables (-1 where it has none).
    """

    n_groups: int
    group_weight: np.ndarray  # customers per group
    zero_group: np.ndarray  # x == 0, aggregated by (group, T)
    zero_T: np.ndarray
    zero_weight: np.ndarray
    count_group: np.ndarray  # x > 0, aggregated by (group, x)
    count_x: np.ndarray
    count_weight: np.ndarray
    row_group: np.ndarray  # x > 0 rows, sorted by group
    row_x: np.ndarray
    row_t: np.ndarray
    row_T: np.ndarray
    row_weight: np.ndarray
    input_group: np.ndarray
    zero_index: np.ndarray
    count_index: np.ndarray
    row_index: np.ndarray
    # Distinct (group, time) pairs among all T and t_x: log(alpha + time) is taken
    # once per pair and gathered, since times recorded by day or week repeat a lot.
    time_group: np.ndarray
    time_value: np.ndarray
    zero_time_index: np.ndarray
    row_T_index: np.ndarray
    row_t_index: np.ndarray
    row_count_index: np.ndarray  # repeat row -> its (group, x) entry

    @classmethod
    def from_rows(
        cls,
        group: np.ndarray,
        frequency: np.ndarray,
        recency: np.ndarray,
        T: np.ndarray,
        weights: np.ndarray,
        n_groups: int,
    ) -> BetaGeoStatistics:
        group = np.asarray(group, dtype=np.int64)
        x = np.asarray(frequency, dtype=float)
        t_x = np.asarray(recency, dtype=float)
        T = np.asarray(T, dtype=float)
        w = np.asarray(weights, dtype=float)
        zero = x == 0
        (zg, zT), zw, zcode = _aggregate(w[zero], group[zero], T[zero])
        (cg, cx), cw, ccode = _aggregate(w[~zero], group[~zero], x[~zero])
        order = np.argsort(group[~zero], kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        zero_index = np.full(len(x), -1, dtype=np.int64)
        zero_index[zero] = zcode
        count_index = np.full(len(x), -1, dtype=np.int64)
        count_index[~zero] = ccode
        row_index = np.full(len(x), -1, dtype=np.int64)
        row_index[~zero] = rank
        rg, rT, rt = group[~zero][order], T[~zero][order], t_x[~zero][order]
        (tg, tv), _, tcode = _aggregate(
            np.zeros(len(zg) + 2 * len(rg)),
            np.concatenate([zg, rg, rg]),
            np.concatenate([zT, rT, rt]),
        )
        n_zero, n_rows = len(zg), len(rg)
        row_T_index = tcode[n_zero : n_zero + n_rows]
        row_t_index = tcode[n_zero + n_rows :]
        # Within a group, rows sorted by (x, T, t_x): the fused row loop then keeps
        # its per-(x) and per-(x, T) sums in registers.
        row_count = ccode[order]
        by_entry = np.lexsort((row_t_index, row_T_index, row_count))
        order = order[by_entry]
        rank[order] = np.arange(len(order))
        row_index[~zero] = rank
        rg, row_T_index, row_t_index = rg[by_entry], row_T_index[by_entry], row_t_index[by_entry]
        return cls(
            n_groups=int(n_groups),
            group_weight=np.bincount(group, weights=w, minlength=n_groups).astype(float),
            zero_group=zg.astype(np.int64),
            zero_T=zT.astype(float),
            zero_weight=zw,
            count_group=cg.astype(np.int64),
            count_x=cx.astype(float),
            count_weight=cw,
            row_group=group[~zero][order],
            row_x=x[~zero][order],
            row_t=t_x[~zero][order],
            row_T=T[~zero][order],
            row_weight=w[~zero][order],
            input_group=group,
            zero_index=zero_index,
            count_index=count_index,
            row_index=row_index,
            time_group=tg.astype(np.int64),
            time_value=tv.astype(float),
            zero_time_index=tcode[:n_zero],
            row_T_index=row_T_index,
            row_t_index=row_t_index,
            row_count_index=ccode[order],
        )

    @property
    def n_terms(self) -> int:
        """Number of per-row likelihood terms (the cost driver)."""
        return len(self.row_x) + len(self.zero_T) + len(self.count_x) + len(self.time_value)

    @property
    def graph_terms(self) -> int:
        """Terms left to generic graph operations: the rest runs in the fused Op."""
        return len(self.count_x)


def _bgnbd_count_terms(ops: Any, r: Any, a: Any, b: Any, s: BetaGeoStatistics):
    """Per ``(group, x)`` entry: the gamma-function terms, ``r + x`` and
    ``log a - log(b + x - 1)`` (the log odds of the dropout branch)."""
    G = s.n_groups
    g, x = s.count_group, s.count_x
    r_g, a_g, b_g = _take(ops, r, g, G), _take(ops, a, g, G), _take(ops, b, g, G)
    count = (
        ops.gammaln(r_g + x)
        - ops.gammaln(r_g)
        + ops.gammaln(a_g + b_g)
        + ops.gammaln(b_g + x)
        - ops.gammaln(b_g)
        - ops.gammaln(a_g + b_g + x)
    )
    return count, r_g + x, ops.log(a_g) - ops.log(b_g + x - 1)


def _bgnbd_terms(ops: Any, r: Any, alpha: Any, a: Any, b: Any, s: BetaGeoStatistics):
    """Unweighted log-likelihood terms of FHL 2005 eq. (6), table by table.

    Per customer ``log L = r log alpha`` (per group)
    ``+ log Gamma(r+x) - log Gamma(r) + log B(a, b+x) - log B(a, b)`` (per (group, x))
    ``- (r+x) log(alpha+T) + [x>0] softplus(log a - log(b+x-1)
    + (r+x) (log(alpha+T) - log(alpha+t_x)))`` (per row); the softplus is
    ``log(A3 + A4) - log A3`` with ``A3 = (alpha+T)^-(r+x)``. For ``x = 0`` the
    count term is zero and the row term is ``-r log(alpha+T)``.
    """
    G = s.n_groups
    base = r * ops.log(alpha)
    log_alpha_time = ops.log(_take(ops, alpha, s.time_group, G) + s.time_value)
    zero = -_take(ops, r, s.zero_group, G) * log_alpha_time[..., s.zero_time_index]
    count, r_x, log_a4_odds = _bgnbd_count_terms(ops, r, a, b, s)
    # Per repeat row only gathers, a softplus and a few products remain.
    c = s.row_count_index
    log_alpha_T = log_alpha_time[..., s.row_T_index]
    log_alpha_t = log_alpha_time[..., s.row_t_index]
    log_odds = log_a4_odds[..., c] + r_x[..., c] * (log_alpha_T - log_alpha_t)
    rows = ops.softplus(log_odds) - r_x[..., c] * log_alpha_T
    return base, zero, count, rows


def bgnbd_total_log_likelihood(
    r: pt.TensorVariable,
    alpha: pt.TensorVariable,
    a: pt.TensorVariable,
    b: pt.TensorVariable,
    stats: BetaGeoStatistics,
    fused: bool = True,
) -> pt.TensorVariable:
    """Weighted total BG/NBD log-likelihood as a PyTensor scalar.

    ``r, alpha, a, b`` are vectors with one entry per group (length 1 when pooled).
    With ``fused`` (the default) the per-row terms run in one compiled loop
    (:class:`~clvmodels.models._fused_rows.RowTermsOp`); without it the graph is
    plain PyTensor (needed where the graph must be translated, e.g. to JAX).
    """
    if not fused:
        data = _shared_floats(stats)
        base, zero, count, rows = _bgnbd_terms(_PYTENSOR, r, alpha, a, b, data)
        total = pt.sum(data.group_weight * base)
        for n, weight, term in (
            (len(stats.zero_weight), data.zero_weight, zero),
            (len(stats.count_weight), data.count_weight, count),
            (len(stats.row_weight), data.row_weight, rows),
        ):
            if n:
                total += pt.sum(weight * term)
        return total

    from clvmodels.models._fused_rows import row_terms

    data = _shared_tables(stats)
    # The count table is short (distinct purchase counts), so it stays in the graph.
    count, r_x, log_odds = _bgnbd_count_terms(_PYTENSOR, r, a, b, data)
    total = pt.sum(data.group_weight * r * pt.log(alpha))
    if len(stats.count_weight):
        total += pt.sum(data.count_weight * count)
    return total + row_terms(alpha, r, log_odds, r_x, data)


def _in_chunks(fn, params: tuple, n_out: int) -> np.ndarray:
    """Apply ``fn`` to blocks of draws so that temporaries stay small and reused.

    ``params`` have shape ``(..., n_groups)``; the result ``(..., n_out)``.
    """
    lead = params[0].shape[:-1]
    flat = [p.reshape(-1, p.shape[-1]) for p in params]
    n = flat[0].shape[0]
    out = np.empty((n, n_out))
    step = max(1, 200_000 // max(n_out, 1))
    for start in range(0, n, step):
        block = slice(start, start + step)
        out[block] = fn(*(p[block] for p in flat))
    return out.reshape(*lead, n_out)


def bgnbd_pointwise(
    r: np.ndarray, alpha: np.ndarray, a: np.ndarray, b: np.ndarray, stats: BetaGeoStatistics
) -> np.ndarray:
    """Log-likelihood of each input row under each draw, in NumPy.

    Parameters have shape ``(..., n_groups)`` (e.g. chains x draws x groups); the
    result has shape ``(..., n_input_rows)``.
    """
    repeat = stats.count_index >= 0
    zero_idx = stats.zero_index[~repeat]
    count_idx, row_idx = stats.count_index[repeat], stats.row_index[repeat]

    def block(*params):
        base, zero, count, rows = _bgnbd_terms(_NUMPY, *params, stats)
        out = base[..., stats.input_group]  # fancy indexing: a fresh array
        out[..., ~repeat] += zero[..., zero_idx]
        out[..., repeat] += count[..., count_idx] + rows[..., row_idx]
        return out

    return _in_chunks(block, (r, alpha, a, b), len(stats.input_group))


# ----------------------------------------------------------------------------------
# Gamma-Gamma
# ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GammaGammaStatistics:
    """Sufficient statistics of a (grouped) Gamma-Gamma summary of repeat buyers."""

    n_groups: int
    group_weight: np.ndarray  # repeat buyers per group
    group_x_log_mx: np.ndarray  # sum of w * x * log(m x) per group
    group_log_m: np.ndarray  # sum of w * log(m) per group
    count_group: np.ndarray  # aggregated by (group, x)
    count_x: np.ndarray
    count_weight: np.ndarray
    row_group: np.ndarray  # distinct (group, x, m) rows, sorted by group
    row_x: np.ndarray
    row_mx: np.ndarray  # m * x: the customer's total spend
    row_weight: np.ndarray
    row_x_log_mx: np.ndarray  # x log(m x) per row
    row_log_m: np.ndarray
    input_group: np.ndarray
    count_index: np.ndarray
    row_index: np.ndarray

    @classmethod
    def from_rows(
        cls,
        group: np.ndarray,
        frequency: np.ndarray,
        monetary_value: np.ndarray,
        weights: np.ndarray,
        n_groups: int,
    ) -> GammaGammaStatistics:
        group = np.asarray(group, dtype=np.int64)
        x = np.asarray(frequency, dtype=float)
        m = np.asarray(monetary_value, dtype=float)
        w = np.asarray(weights, dtype=float)
        if np.any(x <= 0) or np.any(m <= 0):
            raise ValueError("Gamma-Gamma statistics need repeat buyers with positive spend")
        (cg, cx), cw, ccode = _aggregate(w, group, x)
        order = np.argsort(group, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        x_log_mx = x * np.log(m * x)
        return cls(
            n_groups=int(n_groups),
            group_weight=np.bincount(group, weights=w, minlength=n_groups).astype(float),
            group_x_log_mx=np.bincount(group, weights=w * x_log_mx, minlength=n_groups),
            group_log_m=np.bincount(group, weights=w * np.log(m), minlength=n_groups),
            count_group=cg.astype(np.int64),
            count_x=cx.astype(float),
            count_weight=cw,
            row_group=group[order],
            row_x=x[order],
            row_mx=(m * x)[order],
            row_weight=w[order],
            row_x_log_mx=x_log_mx[order],
            row_log_m=np.log(m)[order],
            input_group=group,
            count_index=ccode,
            row_index=rank,
        )

    @property
    def n_terms(self) -> int:
        """Number of per-row likelihood terms (the cost driver)."""
        return len(self.row_x) + len(self.count_x)

    @property
    def graph_terms(self) -> int:
        """Terms evaluated by generic graph operations (all of them here)."""
        return self.n_terms


def _gamma_gamma_terms(ops: Any, p: Any, q: Any, gamma: Any, s: GammaGammaStatistics):
    """Unweighted terms of the Gamma-Gamma density (Fader & Hardie 2013, eq. 4).

    Per repeat buyer with ``x`` transactions of mean value ``m``:
    ``q log gamma - log Gamma(q)`` (per group) ``+ log Gamma(px+q) - log Gamma(px)``
    (per (group, x)) ``- (px+q) log(gamma + m x)`` (per row) ``+ p x log(m x) - log m``
    (linear in the data: summed per group for the total).
    """
    G = s.n_groups
    base = q * ops.log(gamma) - ops.gammaln(q)
    g, x = s.count_group, s.count_x
    px = _take(ops, p, g, G) * x
    count = ops.gammaln(px + _take(ops, q, g, G)) - ops.gammaln(px)
    g, x = s.row_group, s.row_x
    p_g, q_g, gamma_g = _take(ops, p, g, G), _take(ops, q, g, G), _take(ops, gamma, g, G)
    rows = -(p_g * x + q_g) * ops.log(gamma_g + s.row_mx)
    return base, count, rows


def gamma_gamma_total_log_likelihood(
    p: pt.TensorVariable,
    q: pt.TensorVariable,
    gamma: pt.TensorVariable,
    stats: GammaGammaStatistics,
) -> pt.TensorVariable:
    """Weighted total Gamma-Gamma log-likelihood as a PyTensor scalar."""
    data = _shared_floats(stats)
    base, count, rows = _gamma_gamma_terms(_PYTENSOR, p, q, gamma, data)
    return (
        pt.sum(data.group_weight * base + p * data.group_x_log_mx - data.group_log_m)
        + pt.sum(data.count_weight * count)
        + pt.sum(data.row_weight * rows)
    )


def gamma_gamma_pointwise(
    p: np.ndarray, q: np.ndarray, gamma: np.ndarray, stats: GammaGammaStatistics
) -> np.ndarray:
    """Log-likelihood of each input row under each draw, in NumPy (see bgnbd_pointwise)."""
    g, row = stats.input_group, stats.row_index

    def block(p, q, gamma):
        base, count, rows = _gamma_gamma_terms(_NUMPY, p, q, gamma, stats)
        linear = p[..., g] * stats.row_x_log_mx[row] - stats.row_log_m[row]
        return base[..., g] + count[..., stats.count_index] + rows[..., row] + linear

    return _in_chunks(block, (p, q, gamma), len(g))
