"""clvmodels: customer lifetime value from a transaction log.

BG/NBD and Gamma-Gamma by maximum likelihood, hierarchical Bayesian variants in
PyMC, discounted CLV with uncertainty intervals, and segmentation.

Examples
--------
>>> from clvmodels import BetaGeo, GammaGamma, load_cdnow, rfm_summary
>>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
...                       observation_end="1997-09-30")
>>> BetaGeo().fit(summary).params_.round(3).to_dict()
{'r': 0.243, 'alpha': 4.414, 'a': 0.793, 'b': 2.426}
"""

from clvmodels.data import (
    DataValidationError,
    calibration_holdout_split,
    compress,
    rfm_summary,
    validate_summary,
)
from clvmodels.datasets import load_cdnow
from clvmodels.models.base import ConvergenceError, NotFittedError, load
from clvmodels.models.beta_geo import BetaGeo
from clvmodels.models.gamma_gamma import GammaGamma
from clvmodels.simulate import simulate_bgnbd, simulate_customers

__all__ = [
    "BetaGeo",
    "ConvergenceError",
    "DataValidationError",
    "GammaGamma",
    "NotFittedError",
    "calibration_holdout_split",
    "compress",
    "load",
    "load_cdnow",
    "rfm_summary",
    "simulate_bgnbd",
    "simulate_customers",
    "validate_summary",
]
__version__ = "0.1.0"
