"""How far two engines' sums of the same values may differ, and summary comparisons.

pandas, DuckDB and Spark add a customer's transaction values in different orders (and
with different algorithms: sequential, pairwise, compensated), so a summed or averaged
value may differ in its last bits. Rounding bounds that difference by the values
summed, not by the result: adding ``n`` floats in any order (any tree of additions) is
off the exact sum by at most ``(n - 1) * u * sum(|x_i|)`` (to first order, ``u = eps / 2``
the unit roundoff), compensated sums by less. A mean of period sums also rounds once
in its subtraction of the first period and once in its division by ``d`` periods, so
each engine is within ``(n + 1) * u * sum(|x_i|) / d`` of the exact mean, and two
engines differ by at most

    (n + 1) * eps * sum(|x_i|) / d

A relative tolerance on the result says nothing when purchases and refunds nearly
cancel (the mean is small, ``sum(|x_i|)`` is not), and an exact comparison says nothing
at all across engines. The bound above is still strict: dropping, adding or
sign-flipping one transaction of value ``x`` moves the mean by ``|x| / d`` or more,
which for cent amounts is at least 1e-2 / d against a bound of order 1e-13 / d.

Examples
--------
>>> tolerance = summation_tolerance(np.array([100.0, 0.0]), np.array([3, 1]), np.array([2, 0]))
>>> bool(tolerance[0] == 4 * EPS * 100 / 2), float(tolerance[1])
(True, 0.0)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EPS = float(np.finfo(np.float64).eps)


def summation_tolerance(
    abs_sum: np.ndarray, count: np.ndarray, divisor: np.ndarray | float = 1.0
) -> np.ndarray:
    """Largest difference summation order can make to ``sum(x) / divisor``.

    ``abs_sum`` is ``sum(|x_i|)`` and ``count`` the number ``n`` of the values summed
    (a superset of them gives a valid, looser bound); a zero divisor means the
    engines return 0 without dividing, so the tolerance is that of the sum itself.
    """
    abs_sum = np.asarray(abs_sum, dtype=np.float64)
    count = np.asarray(count, dtype=np.float64)
    divisor = np.maximum(np.asarray(divisor, dtype=np.float64), 1.0)
    return (count + 1.0) * EPS * abs_sum / divisor


def transaction_sums(log: pd.DataFrame, customer_col: str, value_col: str) -> pd.DataFrame:
    """Per customer of ``log``: ``count`` and ``abs_sum`` (sum of ``|value|``) of all
    their transactions, whatever window a summary keeps: an upper bound of what any
    summary column sums."""
    values = pd.to_numeric(log[value_col]).abs()
    grouped = values.groupby(log[customer_col], sort=False)
    return pd.DataFrame({"count": grouped.size(), "abs_sum": grouped.sum()})


def assert_same_summary(
    expected: pd.DataFrame, actual: pd.DataFrame, log: pd.DataFrame | None = None
) -> None:
    """Same index, columns, dtypes and attrs; counts and durations bit for bit.

    Mean values (``monetary_value``, ``monetary_value_holdout``) are sums in another
    order: they agree within :func:`summation_tolerance` of each customer's
    :func:`transaction_sums` in ``log`` (the transactions both frames summarise,
    needed when they have such columns), divided by the number of periods averaged.
    """
    assert actual.attrs == expected.attrs
    pd.testing.assert_index_equal(actual.index, expected.index, exact=True)
    assert list(actual.columns) == list(expected.columns)
    assert actual.dtypes.to_dict() == expected.dtypes.to_dict()
    means = [col for col in expected.columns if col.startswith("monetary_value")]
    for col in expected.columns:
        if col not in means:
            pd.testing.assert_series_equal(actual[col], expected[col], check_exact=True)
    if not means:
        return
    assert log is not None, f"{means}: pass the transactions that were summarised"
    attrs = expected.attrs
    sums = transaction_sums(log, attrs["customer_col"], attrs["value_col"])
    sums = sums.reindex(expected.index)
    assert sums.notna().all(axis=None), "a summarised customer has no transaction in the log"
    for col in means:
        periods = expected[col.replace("monetary_value", "frequency")].to_numpy()
        tolerance = summation_tolerance(sums["abs_sum"], sums["count"], periods)
        difference = np.abs(actual[col].to_numpy() - expected[col].to_numpy())
        worst = int(np.argmax(difference - tolerance))
        assert np.all(difference <= tolerance), (
            f"{col}: customer {expected.index[worst]!r}: {actual[col].iloc[worst]!r} (actual) vs "
            f"{expected[col].iloc[worst]!r} (expected), beyond the summation bound "
            f"{tolerance[worst]:.3g} ({sums['count'].iloc[worst]} values, "
            f"sum of |x| {sums['abs_sum'].iloc[worst]:.6g})"
        )
