"""Checks of scalar settings shared by the scoring modules (CLV, segmentation).

Each returns the clean value or raises a one-line ``ValueError`` that names the setting
and repeats the value given, whatever its type (a string, NaN, a list, an overflowing
integer), so that no library error reaches the user.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["float_or_nan", "whole_number"]


def float_or_nan(value: Any) -> float:
    """``float(value)``, or NaN where that fails: not a number, a string that is not one,
    an integer beyond the float range. Checks of real-valued settings then test the
    result alone (``math.isfinite``, bounds) and repeat the value as given.

    Examples
    --------
    >>> float_or_nan("0.5"), float_or_nan(10**400), float_or_nan([1])
    (0.5, nan, nan)
    """
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def whole_number(value: Any, name: str, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]``; integral floats such as ``100.0`` pass.

    Examples
    --------
    >>> whole_number(100.0, "n_draws", 2)
    100
    >>> whole_number(float("nan"), "n_draws", 2)
    Traceback (most recent call last):
    ...
    ValueError: n_draws must be a whole number >= 2, got nan
    """
    limits = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum:,}"
    wrong = ValueError(f"{name} must be a whole number {limits}, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise wrong
    if not math.isfinite(value) or value != math.floor(value):
        raise wrong
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        raise wrong
    return number
