"""clvmodels: customer lifetime value from a transaction log.

BG/NBD and Gamma-Gamma by maximum likelihood, hierarchical Bayesian variants in
PyMC, discounted CLV with uncertainty intervals, and segmentation; the whole flow
from settings in :func:`run_pipeline`.

Examples
--------
>>> from clvmodels import BetaGeo, GammaGamma, load_cdnow, rfm_summary
>>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
...                       observation_end="1997-09-30")
>>> BetaGeo().fit(summary).params_.round(3).to_dict()
{'r': 0.243, 'alpha': 4.414, 'a': 0.793, 'b': 2.426}
"""

from clvmodels.clv import CLVForecast, customer_lifetime_value
from clvmodels.data import (
    calibration_holdout_split,
    compress,
    rfm_summary,
    validate_summary,
)
from clvmodels.datasets import (
    load_apparel,
    load_apparel_covariates,
    load_apparel_dynamic,
    load_cdnow,
)
from clvmodels.errors import ConvergenceError, DataValidationError, ModelFileError, NotFittedError
from clvmodels.evaluation import compare
from clvmodels.models.base import load
from clvmodels.models.beta_geo import BetaGeo
from clvmodels.models.beta_geo_cnbd import BetaGeoCNBD, add_log_interpurchase_sum
from clvmodels.models.gamma_gamma import GammaGamma
from clvmodels.models.gamma_gamma_transactions import GammaGammaTransactions
from clvmodels.models.modified_beta_geo import ModifiedBetaGeo
from clvmodels.models.modified_beta_geo_cnbd import ModifiedBetaGeoCNBD
from clvmodels.models.pareto_nbd import ParetoNBD
from clvmodels.models.pareto_nbd_dyncov import (
    ParetoNBDDynamicCovariates,
    dynamic_covariate_data,
)
from clvmodels.pipeline import PipelineResult, PipelineSettings, run_pipeline
from clvmodels.report import build_report
from clvmodels.segmentation import rfm_segments, segment
from clvmodels.simulate import simulate_bgnbd, simulate_customers

# The Bayesian models pull in PyMC (seconds to import), so they load on first use.
_LAZY = {
    "HierarchicalBetaGeo": "clvmodels.models.hierarchical",
    "HierarchicalGammaGamma": "clvmodels.models.hierarchical",
    "bayesian": "clvmodels.models.bayes",
    "compare_loo": "clvmodels.models.bayes",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clvmodels' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "BetaGeo",
    "BetaGeoCNBD",
    "CLVForecast",
    "ConvergenceError",
    "DataValidationError",
    "GammaGamma",
    "GammaGammaTransactions",
    "HierarchicalBetaGeo",
    "HierarchicalGammaGamma",
    "ModelFileError",
    "ModifiedBetaGeo",
    "ModifiedBetaGeoCNBD",
    "NotFittedError",
    "ParetoNBD",
    "ParetoNBDDynamicCovariates",
    "PipelineResult",
    "PipelineSettings",
    "add_log_interpurchase_sum",
    "bayesian",
    "build_report",
    "calibration_holdout_split",
    "compare",
    "compare_loo",
    "compress",
    "customer_lifetime_value",
    "dynamic_covariate_data",
    "load",
    "load_apparel",
    "load_apparel_covariates",
    "load_apparel_dynamic",
    "load_cdnow",
    "rfm_segments",
    "rfm_summary",
    "run_pipeline",
    "segment",
    "simulate_bgnbd",
    "simulate_customers",
    "validate_summary",
]
__version__ = "0.1.0"
