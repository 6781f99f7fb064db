"""MBG/CNBD-k: the modified beta-geometric / condensed negative binomial model.

Reutterer, T., Platzer, M. and Schröder, N. (2021), "Leveraging purchase regularity
for predicting customer behavior the easy way", *International Journal of Research in
Marketing* 38(1), 194-215: the MBG/NBD (customers may also drop out right after their
first purchase) with Erlang-k inter-purchase times. It is
:class:`~clvmodels.models.beta_geo_cnbd.BetaGeoCNBD` with ``modified=True``; this
module gives that variant a name of its own, so that it is a member of the model
family (:func:`clvmodels.compare`, the report) and can be named wherever a model is
named by class (``clvmodels report --model ModifiedBetaGeoCNBD``, model files,
``bayesian(ModifiedBetaGeoCNBD)``).
"""

from __future__ import annotations

from typing import Any

from clvmodels.models.beta_geo_cnbd import BetaGeoCNBD

__all__ = ["ModifiedBetaGeoCNBD"]


class ModifiedBetaGeoCNBD(BetaGeoCNBD):
    """MBG/CNBD-k fitted by maximum likelihood: ``BetaGeoCNBD(modified=True)``.

    Parameters
    ----------
    k : int, optional
        Regularity (Erlang-k inter-purchase times); None (default) estimates it by
        profile likelihood over ``1..max_k``.
    penalizer : float, default 0
        Optional ridge penalty on the log-parameters.
    max_k : int, default 12
        Largest ``k`` tried when ``k`` is estimated.

    See :class:`~clvmodels.models.beta_geo_cnbd.BetaGeoCNBD` for the attributes and
    the data the fit needs (``log_interpurchase_sum`` to estimate ``k``).

    Examples
    --------
    On CDNOW the profile likelihood finds no regularity, and the fit is BTYDplus's
    MBG/NBD (``k = 1``; r 0.525, alpha 6.183, a 0.891, b 1.614):

    >>> from clvmodels import load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
    ...                       observation_end="1997-09-30", regularity=True)
    >>> model = ModifiedBetaGeoCNBD().fit(summary)
    >>> model.k_, model.params_.round(3).to_dict()
    (1, {'r': 0.525, 'alpha': 6.183, 'a': 0.891, 'b': 1.614})
    """

    model_settings = ("k", "max_k")
    # A class attribute too, so that the Bayesian version (which sets only the
    # model_settings) is modified as well.
    modified = True

    def __init__(self, k: int | None = None, penalizer: float = 0.0, max_k: int = 12) -> None:
        super().__init__(k=k, modified=True, penalizer=penalizer, max_k=max_k)

    def _check_settings(self) -> None:
        super()._check_settings()
        if self.modified is not True:
            raise ValueError(
                f"{type(self).__name__} is the modified variant (modified=True); "
                "for BG/CNBD-k use BetaGeoCNBD"
            )

    def _settings(self) -> dict[str, Any]:
        settings = super()._settings()
        del settings["modified"]  # fixed by the class
        return settings
