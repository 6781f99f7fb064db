"""The compiled summary of a block's per-draw CLVs equals its NumPy definition."""

from __future__ import annotations

import numpy as np
import pytest

from clvmodels._expected_loops import summarise_draws
from clvmodels._histogram import LogGrid

_NO_BINS = (np.empty((0, 0), dtype=np.int32), np.zeros(3), np.zeros(1, dtype=np.int32), 0, 0)


def _positions(n_draws, probs):
    positions = np.array([(n_draws - 1) * p for p in probs])
    lows = np.floor(positions).astype(np.int64)
    return positions, np.unique(np.r_[lows, np.minimum(lows + 1, n_draws - 1)])


def _sorted_quantiles(values, positions):
    """Order statistics over axis 0 with NaN last (``np.sort``), interpolated as
    ``np.quantile`` does between unequal neighbours."""
    ordered = np.sort(values, axis=0)
    n = values.shape[0]
    out = []
    for h in positions:
        low = int(np.floor(h))
        a, b = ordered[low], ordered[min(low + 1, n - 1)]
        with np.errstate(invalid="ignore"):
            out.append(np.where((a == b) | (h == low), a, a + (b - a) * (h - low)))
    return np.array(out)


def _block(n_draws, rng, *, n_rows=150, n_tx=40):
    tx_value = rng.gamma(0.5, 1.0, (n_draws, n_tx))
    tx_local = np.sort(rng.integers(0, n_tx, n_rows))
    spend = rng.gamma(2.0, 10.0, (n_draws, n_rows))
    weights = rng.integers(1, 6, n_rows).astype(float)
    return tx_value, tx_local, spend, weights


@pytest.mark.parametrize("n_draws", [1, 2, 37, 300, 1000])
@pytest.mark.parametrize("probs", [(0.05, 0.95), (0.25, 0.75), (0.5,), (0.0, 0.01, 1.0)])
def test_quantiles_totals_and_values_are_numpy_s(n_draws, probs):
    rng = np.random.default_rng(n_draws)
    tx_value, tx_local, spend, weights = _block(n_draws, rng)
    # Ties (rounded values, a factor of exactly 0) and draws without a finite spend.
    spend[:, :20] = np.round(spend[:, :20] / 10.0)
    tx_value[:, 0] = 0.0
    spend[rng.random(spend.shape) < 0.02] = np.inf
    with np.errstate(invalid="ignore"):
        clv = tx_value[:, tx_local] * spend  # 0 * inf: NaN, ordered last
    positions, kth = _positions(n_draws, probs)
    kept = np.empty_like(spend)
    quantiles, totals = summarise_draws(
        tx_value, tx_local, spend, weights, positions, kth, kept, *_NO_BINS
    )
    np.testing.assert_array_equal(kept, clv)
    np.testing.assert_array_equal(quantiles, _sorted_quantiles(clv, positions))
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(totals, clv @ weights, rtol=1e-12)
    # Without the values kept, and with their bins on a grid placed instead: the bins
    # are the grid's own (zeros, NaN and infinities included), the quantiles unchanged.
    grid = LogGrid.spanning(0.5, 40.0, max_bins=500)
    bins = np.empty(spend.shape, dtype=np.int32)
    again, _ = summarise_draws(
        tx_value, tx_local, spend, weights, positions, kth, np.empty((0, 0)), bins,
        *grid.placement,
    )
    np.testing.assert_array_equal(again, quantiles)
    np.testing.assert_array_equal(bins, grid.bins(clv))
    assert ((bins > 0) & (bins <= grid.n)).mean() > 0.5


def test_rows_whose_range_is_set_by_far_outliers_give_numpy_s_quantiles():
    # Every 7th draw holds a row's far largest values: the buckets between a row's
    # smallest and largest value then put all the others in the lowest bucket, which is
    # ordered by quickselect, with the same result.
    rng = np.random.default_rng(3)
    n_draws = 1000
    tx_value, tx_local, spend, weights = _block(n_draws, rng, n_rows=30)
    spend[:: n_draws // 128] += 1e6
    clv = tx_value[:, tx_local] * spend
    positions, kth = _positions(n_draws, (0.05, 0.95))
    quantiles, _ = summarise_draws(
        tx_value, tx_local, spend, weights, positions, kth, np.empty((0, 0)), *_NO_BINS
    )
    np.testing.assert_array_equal(quantiles, _sorted_quantiles(clv, positions))
    np.testing.assert_allclose(quantiles, np.quantile(clv, [0.05, 0.95], axis=0), rtol=1e-12)
