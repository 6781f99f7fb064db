"""Simulated customer bases with a holdout, fitted by maximum likelihood, for the
coverage and calibration tests of CLV and segments.

Customers follow BG/NBD and Gamma-Gamma with the CDNOW estimates of Fader, Hardie & Lee
(2005), are observed for 27 to 39 weeks with recency rounded to whole days (as a daily
log gives), and have a holdout of ``holdout`` weeks.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from clvmodels import BetaGeo, GammaGamma
from clvmodels.simulate import simulate_customers

CDNOW_BG = {"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259}
CDNOW_GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def fitted_base(
    seed: int, n_customers: int = 3000, holdout: float = 39.0
) -> tuple[pd.DataFrame, BetaGeo, GammaGamma, np.random.Generator]:
    """The simulated summary, both fitted models and the generator (for later draws)."""
    rng = np.random.default_rng(seed)
    T = rng.integers(27 * 7, 39 * 7 + 1, n_customers) / 7
    data = simulate_customers(
        n_customers, CDNOW_BG, CDNOW_GG, T=T, holdout=holdout, random_state=rng
    )
    data["recency"] = np.minimum(np.round(data["recency"] * 7) / 7, data["T"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return data, BetaGeo().fit(data), GammaGamma().fit(data), rng


def holdout_value(data: pd.DataFrame) -> np.ndarray:
    """Each customer's realised holdout value (purchases times their mean value)."""
    return (data["frequency_holdout"] * data["monetary_value_holdout"]).to_numpy()
