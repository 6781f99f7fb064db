"""Numba is loaded when a compiled loop first runs, not when clvmodels is imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from clvmodels.models._hypergeometric import hyp_series_value


def test_numba_loads_on_the_first_compiled_loop_not_on_import_or_fit():
    script = textwrap.dedent(
        """
        import sys
        import clvmodels
        from clvmodels import BetaGeo, GammaGamma, ParetoNBD, customer_lifetime_value
        from clvmodels.datasets import load_cdnow
        data = clvmodels.rfm_summary(load_cdnow(), "customer_id", "date", "amount",
                                     observation_end="1997-09-30")
        bg, gg = BetaGeo().fit(data), GammaGamma().fit(data[data.frequency > 0])
        bg.probability_alive(data)
        print("numba" in sys.modules, "llvmlite" in sys.modules)
        ParetoNBD().fit(data).probability_alive(data)
        print("numba" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.split() == ["False", "False", "True"]


def test_the_deferred_function_is_the_compiled_one():
    # A compiled loop runs the same arithmetic as its Python source; the wrapper passes
    # arguments through and keeps the function's name for Numba's on-disk cache.
    a, c, z = np.array([0.5, 3.0]), np.array([1.5, 7.0]), np.array([0.3, 0.85])
    python_result = hyp_series_value.__wrapped__(a, c, z, 600)
    np.testing.assert_array_equal(hyp_series_value(a, c, z, 600), python_result)
    assert hyp_series_value.__name__ == "hyp_series_value"
