"""Compiled simulators of future purchases and their spend, pair by pair.

A predictive CLV simulates one future per (parameter draw, customer) pair: a billion
of them for a million customers and 1,000 draws. Written with NumPy, every step is a
pass over all pairs with its temporaries (a uniform, a logarithm and a comparison per
pair just to find the few that buy), and the gamma variates of the spends come one
broadcast call at a time. These loops visit only the pairs that can buy, draw every
variate where it is used, and keep nothing of the pairs that buy nothing.

Both take their parameters *compact*: a 2-D array of shape ``(1 or n_draws, 1 or
n_rows)`` that broadcasts to the pairs' shape, so a parameter shared by all customers
(or all draws) is never repeated per pair. They are imported by the models' simulate
methods when first called, so importing clvmodels does not load Numba.

Every variate comes from the caller's NumPy ``Generator`` (Numba draws from its bit
generator the same streams as NumPy), so a seed gives the same futures on every run
and thread.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "beta_geo_purchases", "compact", "gamma_gamma_spends", "read_only", "split_pair",
    "standard_gamma",
]


def read_only(values: object, dtype: type = float) -> np.ndarray:
    """``values`` as a C-contiguous read-only array (a view where it already is one).

    Numba compiles a loop once per mix of read-only and writable array arguments, and
    the inputs arrive as either (pandas and ``np.broadcast_to`` hand out read-only
    arrays, arithmetic writable ones): the simulators take theirs read-only, so that a
    first forecast and its tiers compile each of them once, not twice (about a second).

    Examples
    --------
    >>> read_only([1.0, 2.0]).flags.writeable
    False
    """
    view = np.ascontiguousarray(values, dtype=dtype).view()
    view.flags.writeable = False
    return view


def compact(values: object, shape: tuple[int, int]) -> np.ndarray:
    """``values`` as a C-contiguous read-only float 2-D array (see :func:`read_only`)
    that broadcasts to ``shape``, of shape
    ``(1 or n_draws, 1 or n_rows)``: a scalar, one value per row ``(n_rows,)``, per draw
    ``(n_draws, 1)``, or per draw and row.

    Examples
    --------
    >>> compact(2.0, (3, 4)).shape, compact(np.ones(4), (3, 4)).shape
    ((1, 1), (1, 4))
    >>> compact(np.ones((3, 1)), (3, 4)).shape
    (3, 1)
    """
    array = np.asarray(values, dtype=float)
    matrix = array.reshape((1,) * (2 - array.ndim) + array.shape) if array.ndim < 2 else array
    if matrix.ndim != 2 or any(m not in (1, s) for m, s in zip(matrix.shape, shape, strict=True)):
        raise ValueError(f"values of shape {array.shape} do not broadcast to {shape}")
    return read_only(matrix)


@numba.njit(cache=True, nogil=True, inline="always")
def _at(values: np.ndarray, draw: int, row: int) -> float:
    """Entry (draw, row) of a compact array."""
    return values[draw if values.shape[0] > 1 else 0, row if values.shape[1] > 1 else 0]


@numba.njit(cache=True, nogil=True, inline="always")
def split_pair(pair: int, n_rows: int, inverse: float) -> tuple[int, int]:
    """``divmod(pair, n_rows)`` given ``inverse = 1 / n_rows``, for loops over every
    purchase: a 64-bit integer division costs tens of cycles, a product a few; the
    rounded product is off by at most one and is corrected."""
    draw = int(pair * inverse)
    row = pair - draw * n_rows
    if row < 0:
        draw -= 1
        row += n_rows
    elif row >= n_rows:
        draw += 1
        row -= n_rows
    return draw, row


@numba.njit(cache=True, nogil=True)
def standard_gamma(rng: np.random.Generator, shape: float) -> float:
    """A ``Gamma(shape, 1)`` variate (``shape >= 0``): the same variate, from the same
    uniforms and normals, as ``rng.standard_gamma(shape)`` in NumPy.

    Above shape 1 by Marsaglia and Tsang (2000), "A Simple Method for Generating Gamma
    Variables", *ACM TOMS* 26(3): a cubed normal accepted against a uniform, mostly by
    the squeeze, without a logarithm; below it by the rejection method NumPy's
    ``Generator`` uses (a uniform and an exponential per try). Written out because
    Numba's ``Generator.gamma`` takes a quarter to a half longer per variate, and the
    simulators draw one or more per purchase.
    """
    if shape == 1.0:
        return rng.standard_exponential()
    if shape == 0.0:
        return 0.0
    if shape < 1.0:
        while True:
            uniform = rng.random()
            exponential = rng.standard_exponential()
            if uniform <= 1.0 - shape:
                value = uniform ** (1.0 / shape)
                if value <= exponential:
                    return value
            else:
                tail = -math.log((1.0 - uniform) / shape)
                value = (1.0 - shape + shape * tail) ** (1.0 / shape)
                if value <= exponential + tail:
                    return value
    shifted = shape - 1.0 / 3.0
    spread = 1.0 / math.sqrt(9.0 * shifted)
    while True:
        while True:
            normal = rng.standard_normal()
            cube = 1.0 + spread * normal
            if cube > 0.0:
                break
        cube = cube * cube * cube
        uniform = rng.random()
        squared = normal * normal
        if uniform < 1.0 - 0.0331 * squared * squared:
            return shifted * cube
        if math.log(uniform) < 0.5 * squared + shifted * (1.0 - cube + math.log(cube)):
            return shifted * cube


@numba.njit(cache=True, nogil=True)
def _positive_negative_binomial(
    rng: np.random.Generator, shape: float, odds: float, log_zero: float
) -> int:
    """One negative binomial count ``N >= 1`` (``P(N = 0) = exp(log_zero)``).

    Where zero is unlikely (``P(N = 0) < 1/2``) the count is drawn as the mixture it is,
    a Poisson count with a Gamma distributed mean, until it is positive (at most two
    tries on average): its cost does not grow with the count. Otherwise counts are
    small and the conditional tail is inverted from one uniform.
    """
    if log_zero < -math.log(2.0):
        mean_scale = odds / (1.0 - odds)
        while True:
            n = rng.poisson(standard_gamma(rng, shape) * mean_scale)
            if n > 0:
                return n
    positive = -math.expm1(log_zero)
    # P(N = 1 | N >= 1), then P(N = n | N >= 1) by the ratio of successive terms
    pmf = math.exp(log_zero) * shape * odds / positive
    uniform = max(rng.random(), 1e-12)
    tail = 1.0 - pmf
    n = 1
    while tail > uniform and pmf > 0.0:
        pmf *= (shape + n) * odds / (n + 1)
        n += 1
        tail -= pmf
    return n


@numba.njit(cache=True, nogil=True)
def _kept_purchases(rng: np.random.Generator, arrivals: int, drop_a: float, drop_b: float) -> int:
    """``K = min(N, D)``: the arrivals made before dropping out, where after each
    purchase the customer leaves with probability ``p ~ Beta(drop_a, drop_b)``.

    ``D`` is beta-geometric, ``P(D > k) = prod_{j<k} (drop_b + j) / (drop_a + drop_b +
    j)`` (``p`` integrated out: one ``D`` per pair needs no ``p`` of its own), inverted
    from one uniform.
    """
    uniform = rng.random()
    survival = 1.0
    for k in range(1, arrivals):
        survival *= (drop_b + k - 1.0) / (drop_a + drop_b + k - 1.0)
        if uniform > survival:
            return k
    return arrivals


@numba.njit(cache=True, nogil=True)
def _grown(values: np.ndarray, needed: int) -> np.ndarray:
    size = values.size
    while size < needed:
        size *= 2
    out = np.empty(size, dtype=values.dtype)
    # A loop, not a slice assignment: that one's shape checks cost seconds to compile.
    for i in range(values.size):
        out[i] = values[i]
    return out


@numba.njit(cache=True, nogil=True)
def beta_geo_purchases(
    p_alive: np.ndarray,
    rate_shape: np.ndarray,
    shape_shift: np.ndarray,
    rate_scale: np.ndarray,
    scale_shift: np.ndarray,
    drop_a: np.ndarray,
    drop_b: np.ndarray,
    drop_b_shift: np.ndarray,
    horizon: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Purchases over ``(0, horizon]`` of the BG/NBD family's customers, one future per
    (draw, row) pair of ``p_alive`` (shape ``(n_draws, n_rows)``).

    A pair is alive with probability ``p_alive``; if alive its arrivals are negative
    binomial with shape ``rate_shape + shape_shift`` and odds ``horizon / (rate_scale +
    scale_shift + horizon)`` (a Poisson process with a Gamma distributed rate), and it
    drops out after each purchase with a probability ``Beta(drop_a, drop_b +
    drop_b_shift)``. The ``*_shift`` arrays hold one value per row; the others are
    compact (see :func:`compact`).

    A pair buys with probability ``pi = p_alive (1 - P(no arrival))``. Each row's pairs
    are visited by thinning: candidates at geometric gaps with a bound ``pi_max >= pi``
    of the row (its largest ``p_alive`` times the no-arrival complement at its largest
    shape and smallest scale, both monotone), each kept with probability ``pi /
    pi_max``. The time of the last of ``K`` purchases among ``N`` arrivals is the
    ``K``-th of ``N`` uniform order statistics, ``Beta(K, N - K + 1)`` (``U^(1/N)``
    when ``K = N``), and the earlier ones are uniform below it.

    Returns ``owner`` (flat index of the pair, draw-major) and ``time`` of every
    purchase; a pair's purchases are consecutive.
    """
    n_draws, n_rows = p_alive.shape
    owner = np.empty(max(1024, n_draws * n_rows // 2), dtype=np.int64)
    time = np.empty(owner.size)
    count = 0
    tiny = np.finfo(np.float64).tiny
    for row in range(n_rows):
        alive_max, shape_max, scale_min = 0.0, -np.inf, np.inf
        for draw in range(n_draws):
            alive_max = max(alive_max, p_alive[draw, row])
            shape_max = max(shape_max, _at(rate_shape, draw, row))
            scale_min = min(scale_min, _at(rate_scale, draw, row))
        shape_max += shape_shift[row]
        scale_min += scale_shift[row]
        bound = min(1.0, alive_max * -math.expm1(-shape_max * math.log1p(horizon / scale_min)))
        if not bound > 0.0:
            continue
        log_skip = math.log1p(-bound) if bound < 1.0 else -np.inf
        draw = -1
        while True:
            # Pairs skipped before the next candidate: Geometric(bound) failures. Compared
            # as a float, before the cast, since it can be astronomically large.
            gap = 0.0 if bound >= 1.0 else math.log(1.0 - rng.random()) / log_skip
            if not gap < n_draws - 1 - draw:
                break
            draw += 1 + int(gap)
            shape = _at(rate_shape, draw, row) + shape_shift[row]
            scale = _at(rate_scale, draw, row) + scale_shift[row]
            log_zero = -shape * math.log1p(horizon / scale)
            buys = p_alive[draw, row] * -math.expm1(log_zero)
            if rng.random() * bound >= buys:
                continue
            arrivals = _positive_negative_binomial(rng, shape, horizon / (scale + horizon),
                                                   log_zero)
            kept = _kept_purchases(
                rng, arrivals, _at(drop_a, draw, row),
                _at(drop_b, draw, row) + drop_b_shift[row],
            )
            if count + kept > owner.size:
                owner = _grown(owner, count + kept)
                time = _grown(time, count + kept)
            if kept == arrivals:
                last = rng.random() ** (1.0 / arrivals)
            else:
                # Beta(K, N - K + 1) from two gammas, as NumPy draws it where a
                # parameter exceeds 1 (here N - K + 1 >= 2).
                before = standard_gamma(rng, float(kept))
                last = before / (before + standard_gamma(rng, arrivals - kept + 1.0))
            pair = draw * n_rows + row
            owner[count] = pair
            time[count] = max(last, tiny) * horizon
            for k in range(1, kept):
                owner[count + k] = pair
                time[count + k] = max(rng.random() * last, tiny) * horizon
            count += kept
    # Views of the buffers, not copies: a copy would hold both at once.
    return owner[:count], time[:count]


@numba.njit(cache=True, nogil=True)
def gamma_gamma_spends(
    owner: np.ndarray,
    n_rows: int,
    n_pairs: int,
    p: np.ndarray,
    q: np.ndarray,
    gamma: np.ndarray,
    frequency: np.ndarray,
    monetary_value: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """The value of every purchase of ``owner`` (flat pair indices, draw-major, of
    ``n_pairs`` pairs of ``n_rows`` rows) under the Gamma-Gamma spend model.

    A pair's spend rate is drawn from its row's posterior, ``nu ~ Gamma(p x + q, rate
    gamma + x m_x)``, once, at its first purchase; each purchase is worth ``Gamma(p,
    rate nu)``. ``p``, ``q`` and ``gamma`` are compact (see :func:`compact`);
    ``frequency`` and ``monetary_value`` hold one value per row.
    """
    rate_of_pair = np.full(n_pairs, -1.0)
    values = np.empty(owner.size)
    inverse = 1.0 / n_rows
    for k in range(owner.size):
        pair = owner[k]
        draw, row = split_pair(pair, n_rows, inverse)
        shape = _at(p, draw, row)
        rate = rate_of_pair[pair]
        if rate < 0.0:
            x, m = frequency[row], monetary_value[row]
            rate = standard_gamma(rng, shape * x + _at(q, draw, row)) / (
                _at(gamma, draw, row) + x * m
            )
            rate_of_pair[pair] = rate
        values[k] = standard_gamma(rng, shape) / rate
    return values
