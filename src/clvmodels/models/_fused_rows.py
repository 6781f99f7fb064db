"""The per-row part of the BG/NBD log-likelihood as one fused PyTensor Op.

In the grouped BG/NBD graph nearly all the work is per distinct row: two gathered
logarithms and a softplus per repeat buyer, one product per non-repeater. Written
as ordinary PyTensor operations that costs several passes over the rows, each with
its temporaries, a second softplus-and-sigmoid pass for the gradient, and
scatter-adds for the gathers. :class:`RowTermsOp` computes the value and the
gradient together, with one ``exp`` and one ``log1p`` per row, in three passes: the
logits (a Numba loop), the transcendental functions (NumPy), the weighted sums and
scatter-adds (a Numba loop). It serves the C backend (through ``perform``) and
nutpie's Numba backend (through ``numba_funcify``, all three passes in Numba). The
plain-PyTensor terms in :mod:`clvmodels.models._pytensor_likelihoods` stay the
definition (the JAX route of NumPyro uses them); the tests check that both agree.

The Op takes, per group ``g``, ``alpha_g`` and ``r_g``; per ``(group, x)`` entry
``c`` of the count table, ``log_odds_c = log a_g - log(b_g + x - 1)`` and
``rx_c = r_g + x``; and the data tables of
:class:`~clvmodels.models._pytensor_likelihoods.BetaGeoStatistics`. It returns

``sum_zero w * (-r_g * L[T]) + sum_rows w * (softplus(log_odds_c + rx_c (L[T] -
L[t_x])) - rx_c * L[T])``, with ``L[time] = log(alpha_g + time)``,

together with its gradient with respect to ``alpha, r, log_odds, rx``.
"""

from __future__ import annotations

import math
import threading

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

__all__ = ["RowTermsOp", "row_terms"]


# The work is split in three: gathers (Numba), the transcendental functions over
# all rows at once (NumPy, whose exp and log1p use SIMD where the CPU has it: about
# 4x faster than a scalar loop) and the weighted sums with their scatter-adds
# (Numba). Under nutpie's Numba backend the middle step is a Numba loop instead.
@numba.njit(cache=True, nogil=True)
def _logits(
    alpha: np.ndarray,
    log_odds: np.ndarray,
    rx: np.ndarray,
    time_group: np.ndarray,
    time_value: np.ndarray,
    row_T_index: np.ndarray,
    row_t_index: np.ndarray,
    row_count_index: np.ndarray,
    z: np.ndarray,
) -> np.ndarray:
    """``log(alpha_g + time)`` per time entry; each repeat row's logit into ``z``."""
    n_times = time_value.shape[0]
    log_time = np.empty(n_times)
    for k in range(n_times):
        log_time[k] = math.log(alpha[time_group[k]] + time_value[k])
    for i in range(row_count_index.shape[0]):
        c = row_count_index[i]
        z[i] = log_odds[c] + rx[c] * (log_time[row_T_index[i]] - log_time[row_t_index[i]])
    return log_time


_BUFFERS = threading.local()


def _row_buffers(n: int) -> np.ndarray:
    """Three work arrays of ``n`` rows, kept per thread: fresh megabyte-sized
    arrays on every gradient would cost a page fault per 4 kB."""
    buffers = getattr(_BUFFERS, "rows", None)
    if buffers is None or buffers.shape[1] != n:
        buffers = _BUFFERS.rows = np.empty((3, n))
    return buffers


def _log1p_exp_numpy(z: np.ndarray, e: np.ndarray, log1p_e: np.ndarray) -> None:
    """``e = exp(-|z|)`` and ``log1p(e)`` over all rows, written in place."""
    np.abs(z, out=e)
    np.negative(e, out=e)
    np.exp(e, out=e)
    np.log1p(e, out=log1p_e)


@numba.njit(cache=True, nogil=True)
def _log1p_exp_loop(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e, log1p_e = np.empty_like(z), np.empty_like(z)
    for i in range(z.shape[0]):
        e[i] = math.exp(-abs(z[i]))
        log1p_e[i] = math.log1p(e[i])
    return e, log1p_e


@numba.njit(cache=True, nogil=True)
def _sums(
    alpha: np.ndarray,
    r: np.ndarray,
    log_odds: np.ndarray,
    rx: np.ndarray,
    time_group: np.ndarray,
    time_value: np.ndarray,
    zero_group: np.ndarray,
    zero_time_index: np.ndarray,
    zero_weight: np.ndarray,
    row_T_index: np.ndarray,
    row_t_index: np.ndarray,
    row_count_index: np.ndarray,
    row_weight: np.ndarray,
    log_time: np.ndarray,
    z: np.ndarray,
    e: np.ndarray,
    log1p_e: np.ndarray,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The weighted total and its gradient with respect to alpha, r, log_odds, rx.

    ``e = exp(-|z|)`` gives softplus(z) = max(z, 0) + log1p(e) and sigmoid(z) =
    (1 if z >= 0 else e) / (1 + e), stable for any logit z.

    Rows come sorted by count entry, then by T: the sums per count entry and per
    (entry, T) run in registers, and only the t_x terms scatter.
    """
    n_times = time_value.shape[0]
    d_log_time = np.zeros(n_times)
    d_r = np.zeros(r.shape[0])
    d_log_odds = np.zeros(log_odds.shape[0])
    d_rx = np.zeros(rx.shape[0])
    total = 0.0
    for j in range(zero_weight.shape[0]):
        g, k, w = zero_group[j], zero_time_index[j], zero_weight[j]
        total -= w * r[g] * log_time[k]
        d_r[g] -= w * log_time[k]
        d_log_time[k] -= w * r[g]
    n = row_weight.shape[0]
    i = 0
    while i < n:
        c = row_count_index[i]
        rxc = rx[c]
        sum_ws, sum_ws_gap, sum_w_log_T = 0.0, 0.0, 0.0
        while i < n and row_count_index[i] == c:
            kT = row_T_index[i]
            log_T = log_time[kT]
            sum_w, sum_ws_T = 0.0, 0.0
            while i < n and row_count_index[i] == c and row_T_index[i] == kT:
                w = row_weight[i]
                zi = z[i]
                ws = w * (1.0 if zi >= 0.0 else e[i]) / (1.0 + e[i])
                kt = row_t_index[i]
                total += w * (log1p_e[i] + max(zi, 0.0))
                sum_w += w
                sum_ws_T += ws
                sum_ws_gap += ws * (log_T - log_time[kt])
                d_log_time[kt] -= ws * rxc
                i += 1
            total -= sum_w * rxc * log_T
            sum_ws += sum_ws_T
            sum_w_log_T += sum_w * log_T
            d_log_time[kT] += (sum_ws_T - sum_w) * rxc
        d_log_odds[c] += sum_ws
        d_rx[c] += sum_ws_gap - sum_w_log_T
    d_alpha = np.zeros(alpha.shape[0])
    for k in range(n_times):
        d_alpha[time_group[k]] += d_log_time[k] / (alpha[time_group[k]] + time_value[k])
    return total, d_alpha, d_r, d_log_odds, d_rx


def _row_terms(*inputs: np.ndarray):
    alpha, _, log_odds, rx, time_group, time_value = inputs[:6]
    z, e, log1p_e = _row_buffers(inputs[11].shape[0])
    log_time = _logits(alpha, log_odds, rx, time_group, time_value, *inputs[9:12], z)
    _log1p_exp_numpy(z, e, log1p_e)
    return _sums(*inputs, log_time, z, e, log1p_e)


class RowTermsOp(Op):
    """Weighted sum of the BG/NBD zero and repeat-row terms, with its gradient.

    Inputs: ``alpha, r`` (per group), ``log_odds, rx`` (per count entry), then the
    nine data tables in the order of :func:`row_terms`. Outputs: the total and its
    gradient with respect to the first four inputs.
    """

    __props__ = ()
    n_params = 4

    def make_node(self, *inputs):
        inputs = [pt.as_tensor_variable(v) for v in inputs]
        outputs = [pt.dscalar()] + [pt.dvector() for _ in range(self.n_params)]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        results = _row_terms(*inputs)
        output_storage[0][0] = np.asarray(results[0], dtype=np.float64)
        for slot, value in zip(output_storage[1:], results[1:], strict=True):
            slot[0] = value

    def infer_shape(self, fgraph, node, input_shapes):
        return [(), *[input_shapes[j] for j in range(self.n_params)]]

    def connection_pattern(self, node):
        # Only the total carries a gradient, and only to the parameters.
        n_in = len(node.inputs)
        return [
            [j < self.n_params] + [False] * self.n_params for j in range(n_in)
        ]

    def grad(self, inputs, output_grads):
        g_total = output_grads[0]
        outputs = self(*inputs)
        grads = [g_total * outputs[1 + j] for j in range(self.n_params)]
        return grads + [DisconnectedType()() for _ in inputs[self.n_params :]]


@register_funcify_default_op_cache_key(RowTermsOp)
def _numba_row_terms(op, node=None, **kwargs):
    logits, log1p_exp, sums = _logits, _log1p_exp_loop, _sums

    @numba.njit(nogil=True)
    def row_terms_numba(
        alpha, r, log_odds, rx, time_group, time_value, zero_group, zero_time_index,
        zero_weight, row_T_index, row_t_index, row_count_index, row_weight,
    ):
        z = np.empty(row_count_index.shape[0])
        log_time = logits(
            alpha, log_odds, rx, time_group, time_value, row_T_index, row_t_index,
            row_count_index, z,
        )
        e, log1p_e = log1p_exp(z)
        total, d_alpha, d_r, d_log_odds, d_rx = sums(
            alpha, r, log_odds, rx, time_group, time_value, zero_group, zero_time_index,
            zero_weight, row_T_index, row_t_index, row_count_index, row_weight, log_time,
            z, e, log1p_e,
        )
        return np.asarray(total), d_alpha, d_r, d_log_odds, d_rx

    return row_terms_numba


_ROW_TERMS = RowTermsOp()


def row_terms(
    alpha: pt.TensorVariable,
    r: pt.TensorVariable,
    log_odds: pt.TensorVariable,
    rx: pt.TensorVariable,
    stats: object,
) -> pt.TensorVariable:
    """The fused zero and repeat-row terms of the BG/NBD log-likelihood (a scalar).

    ``stats`` holds the tables of a ``BetaGeoStatistics`` as graph variables (shared
    data: float64 values and int64 indices, read at run time).
    """
    tables = [
        getattr(stats, name)
        for name in (
            "time_group",
            "time_value",
            "zero_group",
            "zero_time_index",
            "zero_weight",
            "row_T_index",
            "row_t_index",
            "row_count_index",
            "row_weight",
        )
    ]
    return _ROW_TERMS(alpha, r, log_odds, rx, *tables)[0]
