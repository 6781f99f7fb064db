"""``python -m clvmodels``: the same command line as ``clvmodels``."""

from clvmodels.cli import app

app(prog_name="clvmodels")
