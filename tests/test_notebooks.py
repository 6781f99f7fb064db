"""The notebooks run top to bottom on the bundled data (with small draws), and are stored clean.

Each notebook is executed with nbclient in a kernel of this very Python (a kernelspec in a
temporary folder, so whatever kernels the machine has do not matter), with
``CLVMODELS_NOTEBOOK_FAST=1`` for small draws. nbclient, nbformat and ipykernel are dev
dependencies: without them these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["01_quickstart", "02_bayesian_hierarchical", "03_model_comparison", "04_covariates"]
KERNEL = "clvmodels-test-python"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A kernelspec for sys.executable, found first through JUPYTER_PATH."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "clvmodels tests",
                "language": "python",
            }
        )
    )
    return root


def _execute(name, kernel_env, workdir, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_env))
    monkeypatch.setenv("CLVMODELS_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("CLVMODELS_NOTEBOOK_OUTPUT", str(workdir))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        book,
        kernel_name=KERNEL,
        timeout=600,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return book


def _outputs(book):
    return [out for cell in book.cells if cell.cell_type == "code" for out in cell.outputs]


def _text(book):
    parts = []
    for out in _outputs(book):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        for mime in ("text/plain", "text/html"):
            if mime in out.get("data", {}):
                parts.append(out["data"][mime])
    return "\n".join(parts)


def _images(book):
    return sum("image/png" in out.get("data", {}) for out in _outputs(book))


@pytest.mark.parametrize("name", NAMES)
def test_stored_without_outputs(name):
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(book)
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)
    # The notebooks use the bundled data, never a local file.
    source = "\n".join(cell.source for cell in book.cells)
    assert ("load_cdnow()" in source or "load_apparel()" in source) and "read_csv" not in source


def test_quickstart_runs(kernel_env, tmp_path, monkeypatch):
    book = _execute("01_quickstart", kernel_env, tmp_path, monkeypatch)
    text = _text(book)
    assert "6,919 transactions of 2,357 customers" in text
    assert "top value" in text
    assert _images(book) == 2  # the two maps; CLV by rank with the tiers
    assert "'r': 0.2" in text  # the reloaded model's parameters


def test_covariates_runs(kernel_env, tmp_path, monkeypatch):
    book = _execute("04_covariates", kernel_env, tmp_path, monkeypatch)
    text = _text(book)
    # CLVTools' vignette (version 0.5.0): LL -3481.6392 with gender and channel
    assert "log-likelihood -3481.6392" in text
    assert "purchase:channel[online]" in text and "spend:channel[online]" in text
    assert "worth 22% more over the next 12 months" in text


@pytest.mark.slow
def test_bayesian_hierarchical_runs(kernel_env, tmp_path, monkeypatch):
    book = _execute("02_bayesian_hierarchical", kernel_env, tmp_path, monkeypatch)
    text = _text(book)
    assert "1997-01" in text and "1997-03" in text
    assert "max R-hat" in text and "divergences" in text
    assert _images(book) >= 3  # trace, group parameters, tracking


@pytest.mark.slow
def test_model_comparison_runs(kernel_env, tmp_path, monkeypatch):
    book = _execute("03_model_comparison", kernel_env, tmp_path, monkeypatch)
    text = _text(book)
    assert "1,882 in the 39-week holdout" in text
    assert "0.225" in text and "6.157" in text
    # The model average: weights from a backtest inside the calibration window, and why
    # the family with a Bayesian model has none by default.
    assert "refitted on the log up to 1997-07-01" in text and "model average" in text
    assert "No model average: its backtest weights would refit ['Bayesian BG/NBD']" in text
    report = tmp_path / "cdnow_report.html"
    html = report.read_text(encoding="utf-8")
    # The report compared the MLE with the Bayesian fit and checked its sampler.
    for section in ("Holdout comparison", "ELPD-LOO", "Sampler diagnostics", "max R-hat"):
        assert section in html
    # Long steps show an HTML progress bar in the notebook.
    assert "<progress" in text
