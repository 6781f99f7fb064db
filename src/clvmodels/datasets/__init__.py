"""Data sets bundled with clvmodels.

The CDNOW transaction logs of Fader, Hardie and Lee (2005), as distributed by Bruce
Hardie, and the simulated apparel retailer of R's CLVTools with its customer
covariates; see ``README.md`` in this folder for the sources and the citations.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd

__all__ = ["load_apparel", "load_apparel_covariates", "load_apparel_dynamic", "load_cdnow"]

_FILES = {True: "cdnow_sample.csv.gz", False: "cdnow_master.csv.gz"}


@lru_cache(maxsize=2)
def _read(name: str) -> pd.DataFrame:
    with resources.files(__name__).joinpath(name).open("rb") as fh:
        frame = pd.read_csv(
            fh,
            compression="gzip",
            dtype={"customer_id": "int64", "quantity": "int64", "amount": "float64"},
        )
    frame["date"] = pd.to_datetime(frame["date"], format="%Y-%m-%d")
    return frame[["customer_id", "date", "quantity", "amount"]]


def load_cdnow(sample: bool = True) -> pd.DataFrame:
    """CDNOW transactions, 1997-01-01 to 1998-06-30.

    Every customer made a first purchase at the online music retailer CDNOW in the
    first quarter of 1997; the log follows the cohort for 78 weeks. This is the data
    of Fader, Hardie and Lee (2005): calibrate on the weeks up to 1997-09-30 and
    forecast the rest.

    Parameters
    ----------
    sample : bool, default True
        The 1/10 systematic sample used in the paper (2,357 customers, 6,919
        transactions; customer ids 1 to 2,357 follow the paper's numbering) when
        True; the full cohort (23,570 customers, 69,659 transactions) when False.

    Returns
    -------
    DataFrame
        One row per transaction line: ``customer_id`` (int), ``date``
        (datetime64), ``quantity`` (number of CDs, int) and ``amount`` (US dollars,
        float). Some customers have several lines on one day; a handful of lines
        have amount 0. A fresh copy on each call.

    Examples
    --------
    >>> from clvmodels import load_cdnow
    >>> log = load_cdnow()
    >>> log.shape, log["customer_id"].nunique()
    ((6919, 4), 2357)
    >>> log.head(3)
       customer_id       date  quantity  amount
    0            1 1997-01-01         2   29.33
    1            1 1997-01-18         2   29.73
    2            1 1997-08-02         1   14.96
    """
    return _read(_FILES[bool(sample)]).copy()


@lru_cache(maxsize=2)
def _read_apparel(name: str) -> pd.DataFrame:
    with resources.files(__name__).joinpath(name).open("rb") as fh:
        return pd.read_csv(fh, compression="gzip")


def load_apparel() -> pd.DataFrame:
    """The apparel retailer's transactions, 2005-01-03 to 2006-07-16 (simulated).

    The example data of R's CLVTools (``apparelTrans``): 250 customers, each making a
    first purchase on 3 January 2005, and their 3,648 purchases over 80 weeks.
    CLVTools' vignette fits the Pareto/NBD on the first 40 weeks (up to 2005-10-10),
    with and without the covariates of :func:`load_apparel_covariates`; the tests of
    clvmodels reproduce its published estimates.

    Returns
    -------
    DataFrame
        One row per purchase: ``customer_id`` (int), ``date`` (datetime64) and
        ``amount`` (the price paid, float). A fresh copy on each call.

    Examples
    --------
    >>> from clvmodels import load_apparel
    >>> log = load_apparel()
    >>> log.shape, log["customer_id"].nunique(), str(log["date"].min().date())
    ((3648, 3), 250, '2005-01-03')
    """
    frame = _read_apparel("apparel_transactions.csv.gz").copy()
    frame["date"] = pd.to_datetime(frame["date"], format="%Y-%m-%d")
    return frame


def load_apparel_covariates() -> pd.DataFrame:
    """Time-invariant covariates of the apparel retailer's customers (simulated).

    CLVTools' ``apparelStaticCov``: one row per customer of :func:`load_apparel`.

    Returns
    -------
    DataFrame
        Indexed by ``customer_id``, with ``gender`` (0 male, 1 female) and
        ``channel`` (acquisition channel: 0 online, 1 offline), both int. Join it to a
        summary to use them as covariates. A fresh copy on each call.

    Examples
    --------
    >>> from clvmodels import load_apparel, load_apparel_covariates, rfm_summary
    >>> summary = rfm_summary(load_apparel(), "customer_id", "date",
    ...                       observation_end="2005-10-10").join(load_apparel_covariates())
    >>> summary[["gender", "channel"]].mean().round(3).tolist()
    [0.712, 0.42]
    """
    return _read_apparel("apparel_covariates.csv.gz").set_index("customer_id")


def load_apparel_dynamic() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The apparel retailer with weekly time-varying covariates (simulated).

    The data behind CLVTools' reference fit of the Pareto/NBD with dynamic covariates
    (its test fixture ``fitted_dyncov.rds`` of version 0.6.0): 250 customers, their
    purchases from 2005-01-03 to 2006-07-16 (one row per customer and day: 2,257), and
    for every customer and week a covariate row. A different draw of the simulated
    retailer than :func:`load_apparel`. CLVTools fits the first 38 weeks (up to
    2005-09-26); the tests of clvmodels reproduce its log-likelihood there.

    Returns
    -------
    transactions : DataFrame
        ``customer_id`` (int), ``date`` (datetime64) and ``amount`` (float).
    covariates : DataFrame
        One row per customer and week (81 weeks starting on Sundays, 2005-01-02 to
        2006-07-16): ``customer_id``, ``period`` (the week's first day, datetime64),
        ``marketing`` (direct-marketing contacts that week, 0 to 4), ``gender`` (0
        male, 1 female) and ``channel`` (0 online, 1 offline), all int. Fresh copies
        on each call.

    Examples
    --------
    >>> from clvmodels import load_apparel_dynamic
    >>> log, covariates = load_apparel_dynamic()
    >>> log.shape, covariates.shape, covariates["customer_id"].nunique()
    ((2257, 3), (20250, 5), 250)
    >>> covariates.head(2)
       customer_id     period  marketing  gender  channel
    0            1 2005-01-02          1       0        0
    1            1 2005-01-09          0       0        0
    """
    log = _read_apparel("apparel_dynamic_transactions.csv.gz").copy()
    log["date"] = pd.to_datetime(log["date"], format="%Y-%m-%d")
    table = _read_apparel("apparel_dynamic_covariates.csv.gz").copy()
    table["period"] = pd.to_datetime(table["period"], format="%Y-%m-%d")
    return log, table
