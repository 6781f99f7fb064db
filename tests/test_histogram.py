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


@pytest.mark.parametrize("zero_bin", [False, True])
@pytest.mark.parametrize("count_zeros", [False, True])
def test_tiers_count_the_draws_above_each_boundary_bin(zero_bin, count_zeros):
    # Reference: a cell's tier is the number of boundaries whose bin lies above its
    # own; cells in a boundary's bin (not the bin of zeros) wait to be settled. The
    # compiled pass compares values with the bins' bounds instead of placing them.
    grid = LogGrid.spanning(0.5, 500.0, zero_bin=zero_bin, max_bins=40)
    rng = np.random.default_rng(5)
    values = rng.lognormal(2.0, 1.5, (60, 400))
    values[rng.random(values.shape) < 0.3] = 0.0
    bins = grid.bins(values)
    cuts = np.sort(rng.choice(np.unique(bins), (60, 3)), axis=1)[:, ::-1]
    cuts[:4, 2] = 0  # boundaries in the lowest bin (the bin of zeros with zero_bin)
    cuts[:2, 1] = cuts[:2, 0]  # two boundaries in one bin
    unit_tier = rng.integers(0, 4, 400).astype(np.int8)
    same, top = np.full(400, 0.5), np.zeros(400)
    d, u, c, tier = grid.tiers(values, grid.bin_bounds(cuts), unit_tier, same, top,
                               count_zeros=count_zeros)

    expected_tier = (bins[:, :, None] < cuts[:, None, :]).sum(axis=2)
    counted = np.ones(values.shape, bool) if count_zeros else values > 0
    np.testing.assert_array_equal(
        same, 0.5 + ((expected_tier == unit_tier) & counted).sum(axis=0))
    np.testing.assert_array_equal(top, ((expected_tier == 0) & counted).sum(axis=0))
    on_edge = bins[:, :, None] == cuts[:, None, :]
    if zero_bin:
        on_edge &= cuts[:, None, :] > 0
    want_d, want_u, want_c = np.nonzero(on_edge)
    got = sorted(zip(d.tolist(), u.tolist(), c.tolist(), tier.tolist(), strict=True))
    want = sorted(zip(want_d.tolist(), want_u.tolist(), want_c.tolist(),
                      expected_tier[want_d, want_u].tolist(), strict=True))
    assert got == want and len(got) > 1024  # beyond the first buffers: they grow


@pytest.mark.parametrize("zero_bin", [False, True])
def test_lowest_values_are_the_bin_edges_to_the_last_bit(zero_bin):
    grid = LogGrid.spanning(0.01, 1e4, zero_bin=zero_bin)
    bins = np.arange(grid.n_bins + 1, dtype=np.int64)
    edges = grid.bin_bounds(bins)[0]
    assert edges[0] == -np.inf and edges[-1] == np.inf
    inside = edges[1:-1]
    # The edge itself is in bin k (or higher); the float just below it is not.
    np.testing.assert_array_equal(grid.bins(inside), bins[1:-1])
    np.testing.assert_array_equal(grid.bins(np.nextafter(inside, -np.inf)), bins[1:-1] - 1)
    assert np.all(np.diff(edges) > 0)


def _bins_by_log(values, log_low, step, n):
    import numba

    from clvmodels._histogram_loops import _grid_bin

    @numba.njit
    def place(values, log_low, step, n):
        out = np.zeros(values.size, dtype=np.int64)
        for i in range(values.size):
            if values[i] > 0.0:
                out[i] = _grid_bin(values[i], log_low, step, n)
        return out

    return place(values, log_low, step, n)


@pytest.mark.parametrize(
    ("low", "high", "step"),
    [
        (0.01, 1e4, None),  # a grid in use: bins wider than a table entry
        (1.0, 1.01, 1e-5),  # bins far narrower than a table entry: several comparisons
        (1e-250, 1e250, 0.5),  # a span too wide for the finest table: coarser entries
    ],
)
def test_placing_by_bits_agrees_with_the_logarithm(low, high, step):
    # The loops place values by a table indexed with their bits; the definition is
    # _grid_bin's logarithm. Both agree on random values, on every edge and the floats
    # beside it, and on the values outside the grid (zeros, negatives, NaN, infinities).
    if step is None:
        grid = LogGrid.spanning(low, high)
    else:
        grid = LogGrid(np.log(low), step, int(np.ceil((np.log(high) - np.log(low)) / step)))
    edges, table, _, shift = grid.placement
    assert table.size <= 1 << 17 and np.all(np.diff(table) >= 0)
    assert (shift > 42) == (high / low > 1e100)  # coarser entries only for the widest
    rng = np.random.default_rng(11)
    random = np.exp(rng.uniform(np.log(low) - 2.0, np.log(high) + 2.0, 200_000))
    inside = edges[1:-1]
    special = np.array([0.0, -0.0, -1.0, np.nan, -np.nan, np.inf, -np.inf, 5e-324, 1e308])
    values = np.r_[random, inside, np.nextafter(inside, 0.0), np.nextafter(inside, np.inf),
                   special]

    by_log = _bins_by_log(values, grid.log_low, grid.step, grid.n)
    np.testing.assert_array_equal(grid.bins(values), by_log)
    zero = LogGrid(grid.log_low, grid.step, grid.n, zero_bin=True)
    np.testing.assert_array_equal(zero.bins(values), np.where(values > 0, by_log + 1, 0))
    np.testing.assert_array_equal(grid.bins(inside), np.arange(1, grid.n + 2))
