"""The package namespace: eager for the core, lazy for the PyMC models."""

from __future__ import annotations

import subprocess
import sys

import pytest

import clvmodels


def test_bayesian_models_are_exported_lazily():
    from clvmodels.models.hierarchical import (
        HierarchicalBetaGeo,
        HierarchicalGammaGamma,
        compare_loo,
    )

    assert clvmodels.HierarchicalBetaGeo is HierarchicalBetaGeo
    assert clvmodels.HierarchicalGammaGamma is HierarchicalGammaGamma
    assert clvmodels.compare_loo is compare_loo
    assert {"HierarchicalBetaGeo", "compare_loo"} <= set(dir(clvmodels))
    assert set(clvmodels.__all__) <= set(dir(clvmodels))
    with pytest.raises(AttributeError, match="no attribute 'Pareto'"):
        clvmodels.Pareto  # noqa: B018


def test_importing_the_package_does_not_import_pymc():
    code = "import sys, clvmodels; print('pymc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
