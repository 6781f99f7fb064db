"""Fixtures of the model tests: CDNOW with covariates derived from its own log."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def cdnow_covariates(cdnow_transactions, cdnow_summary):
    """The CDNOW calibration summary with covariates from the log itself: the number of
    CDs in the first order (``first_cds``), whether it was more than one (``multi_cd``,
    numeric 0/1) and a made-up three-level ``channel`` (customer id modulo 3)."""
    tx = cdnow_transactions.sort_values(["customer_id", "date"], kind="stable")
    first = tx.groupby("customer_id")["quantity"].first().reindex(cdnow_summary.index)
    frame = cdnow_summary.copy()
    frame["first_cds"] = first.astype(float)
    frame["multi_cd"] = (first > 1).astype(float)
    frame["channel"] = np.array(["web", "store", "email"], dtype=object)[
        np.asarray(frame.index) % 3
    ]
    return frame
