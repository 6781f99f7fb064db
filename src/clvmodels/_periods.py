"""Period and time-unit conventions shared by the in-memory and out-of-core summaries.

``freq`` is the period of aggregation (purchases in one period count once); the time
unit is what recency and T are measured in. Both engines (pandas in
:mod:`clvmodels.data`, DuckDB in :mod:`clvmodels.outofcore`, and Spark) use these
definitions, so their summaries agree exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Exact lengths in hours, so that e.g. days -> weeks is a single correctly rounded division.
UNIT_HOURS = {"h": 1.0, "D": 24.0, "W": 168.0, "M": 730.5, "Y": 8766.0}
# Periods of fixed length (hours) and calendar periods (months).
FIXED_PERIOD_HOURS = {"h": 1.0, "D": 24.0, "W": 168.0}
CALENDAR_PERIOD_MONTHS = {"M": 1, "Q": 3, "Y": 12}
WEEK_ANCHORS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def freq_base(freq: str) -> str:
    """Validate ``freq`` and return its base unit ("h", "D", "W", "M", "Q" or "Y")."""
    if not isinstance(freq, str):
        raise ValueError(f"freq must be a string, got {freq!r}")
    if freq in ("h", "D", "W", "M", "Q", "Y"):
        return freq
    if freq.startswith("W-") and freq[2:] in WEEK_ANCHORS:
        return "W"
    raise ValueError(
        f"freq={freq!r} is not supported: use 'h', 'D', 'W' (or an anchored week such as "
        "'W-MON'), 'M', 'Q' or 'Y'"
    )


def check_time_unit(time_unit: str) -> None:
    if time_unit not in UNIT_HOURS:
        raise ValueError(
            f"time_unit={time_unit!r} is not supported: use one of {list(UNIT_HOURS)} "
            "(hours, days, weeks, months of 365.25/12 days, years of 365.25 days)"
        )


def iso(moment: np.datetime64) -> str:
    stamp = pd.Timestamp(moment)
    if stamp == stamp.normalize():
        return stamp.date().isoformat()
    return stamp.isoformat()


def mean_or_zero(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    out = np.zeros(total.shape, dtype=np.float64)
    np.divide(total, count, out=out, where=count > 0)
    return out
