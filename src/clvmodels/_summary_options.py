"""The opt-in summary columns, shared by the pandas, DuckDB and Spark engines.

``rfm_summary(..., log_spend=True)`` adds :data:`LOG_SPEND_COLUMN`, the mean natural
log of the repeat purchase periods' values (0 without repeat purchases, NaN where a
repeat period's net value is <= 0 or within the rounding of its sum, ``n * eps *
sum(|x|)`` over its ``n`` transactions), and ``regularity=True`` adds
:data:`REGULARITY_COLUMN`, the sum of the natural logs of the times between
consecutive purchase periods (0 without repeat purchases). The engines compute them
alike; this module holds what they share: the names, the argument checks and the count
recorded in ``attrs``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "LOG_SPEND_COLUMN",
    "NONPOSITIVE_ATTR",
    "REGULARITY_COLUMN",
    "check_log_options",
    "log_attrs",
    "summary_options_for",
]

#: Column added by ``log_spend=True``: mean log value of the repeat purchase periods.
LOG_SPEND_COLUMN = "monetary_log_mean"
#: Column added by ``regularity=True``: sum of the logs of the inter-purchase times.
REGULARITY_COLUMN = "log_interpurchase_sum"
#: ``attrs`` key: repeat buyers whose :data:`LOG_SPEND_COLUMN` is NaN.
NONPOSITIVE_ATTR = "n_customers_nonpositive_repeat_period"


def check_log_options(value_col: Any, log_spend: Any, regularity: Any, context: str) -> None:
    """Both flags must be booleans, and ``log_spend`` needs values.

    Examples
    --------
    >>> check_log_options(None, True, False, "rfm_summary")
    Traceback (most recent call last):
    ...
    ValueError: rfm_summary: log_spend=True adds 'monetary_log_mean', the mean log value of the repeat purchase periods, which needs value_col
    """  # noqa: E501
    for name, flag in (("log_spend", log_spend), ("regularity", regularity)):
        if not isinstance(flag, bool | np.bool_):
            raise ValueError(f"{context}: {name} must be True or False, got {flag!r}")
    if log_spend and value_col is None:
        raise ValueError(
            f"{context}: log_spend=True adds '{LOG_SPEND_COLUMN}', the mean log value of the "
            "repeat purchase periods, which needs value_col"
        )


def log_attrs(frame: pd.DataFrame) -> dict[str, int]:
    """``{NONPOSITIVE_ATTR: count}`` for a summary with :data:`LOG_SPEND_COLUMN`, else
    ``{}`` (summaries without the column keep their ``attrs`` unchanged)."""
    if LOG_SPEND_COLUMN not in frame.columns:
        return {}
    no_log = frame[LOG_SPEND_COLUMN].isna().to_numpy() & (frame["frequency"].to_numpy() > 0)
    return {NONPOSITIVE_ATTR: int(np.count_nonzero(no_log))}


def summary_options_for(columns: Any) -> dict[str, bool]:
    """The opt-in summary options that give ``columns`` (e.g. the ``data_columns`` of
    the models that will read the summary).

    Examples
    --------
    >>> summary_options_for(["frequency", "recency", "T", "log_interpurchase_sum"])
    {'log_spend': False, 'regularity': True}
    """
    wanted = set(columns)
    return {"log_spend": LOG_SPEND_COLUMN in wanted, "regularity": REGULARITY_COLUMN in wanted}
