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
