"""Per-draw histograms: filling them agrees with the bins they are later read by."""

from __future__ import annotations

import numpy as np
import pytest

from clvmodels._histogram import LogGrid


@pytest.mark.parametrize("zero_bin", [True, False])
def test_added_weights_land_in_the_bins_of_their_values(zero_bin):
    # Zeros, values below, inside and above the grid, with unequal weights: the filled
    # histogram is the weighted count of bins(), draw by draw, all weight accounted for.
    rng = np.random.default_rng(0)
    grid = LogGrid.spanning(1.0, 500.0, zero_bin=zero_bin, max_bins=300)
    values = rng.lognormal(2.0, 2.0, (7, 400)) * (rng.random((7, 400)) < 0.3)
    weights = rng.integers(1, 4, 400).astype(float)
    hist = np.full((7, grid.n_bins), 0.5)
    grid.add(hist, values, weights)
    bins = grid.bins(values)
    for draw in range(7):
        expected = np.bincount(bins[draw], weights, minlength=grid.n_bins) + 0.5
        np.testing.assert_allclose(hist[draw], expected, rtol=0, atol=1e-9)
    assert np.allclose(hist.sum(axis=1), weights.sum() + 0.5 * grid.n_bins)
    if zero_bin:
        np.testing.assert_allclose(hist[:, 0] - 0.5, (values <= 0) @ weights)
        assert np.all(bins[values > 0] > 0)


@pytest.mark.parametrize("zero_bin", [True, False])
def test_bins_are_uniform_in_log_value(zero_bin):
    # Bin k (1..n, one more with a bin for zeros) holds [low e^{(k-1) step}, low e^{k step});
    # below and above the grid, one bin each. Values are placed off the edges, where a
    # last-bit difference between logarithms cannot move them.
    grid = LogGrid.spanning(2.0, 300.0, zero_bin=zero_bin, max_bins=50)
    inside = np.exp(grid.log_low + grid.step * (np.arange(grid.n) + 0.5))
    values = np.r_[0.5, inside, 1e4]
    shift = int(zero_bin)
    expected = np.r_[0, np.arange(1, grid.n + 1), grid.n + 1] + shift
    np.testing.assert_array_equal(grid.bins(values), expected)
    np.testing.assert_array_equal(grid.bins(values.reshape(2, -1)), expected.reshape(2, -1))
    assert grid.bins(np.array([0.0, -1.0, np.nan])).tolist() == [0, 0, 0]
