"""Shared fixtures: the CDNOW frames of Fader, Hardie and Lee (2005).

Session-scoped and read-only by convention: a test that needs to change one takes
a ``.copy()`` first.
"""

import pytest

from clvmodels.data import calibration_holdout_split, rfm_summary
from clvmodels.datasets import load_cdnow

CALIBRATION_END = "1997-09-30"
OBSERVATION_END = "1998-06-30"


@pytest.fixture(scope="session")
def cdnow_transactions():
    """The CDNOW 1/10 sample: 6,919 transactions of 2,357 customers."""
    return load_cdnow(sample=True)


@pytest.fixture(scope="session")
def cdnow_summary(cdnow_transactions):
    """Calibration summary at 1997-09-30 in weeks, with monetary_value (FHL 2005 data)."""
    return rfm_summary(
        cdnow_transactions,
        "customer_id",
        "date",
        "amount",
        observation_end=CALIBRATION_END,
    )


@pytest.fixture(scope="session")
def cdnow_split(cdnow_transactions):
    """Calibration to 1997-09-30 and holdout to 1998-06-30, in weeks, with values."""
    return calibration_holdout_split(
        cdnow_transactions,
        "customer_id",
        "date",
        "amount",
        calibration_end=CALIBRATION_END,
        observation_end=OBSERVATION_END,
    )
