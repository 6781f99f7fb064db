"""Collection rules for the docstring examples under src/ (tests live in tests/)."""

import importlib.util

# Running the module would start the command line.
collect_ignore = ["src/clvmodels/__main__.py"]
if importlib.util.find_spec("pyspark") is None:
    collect_ignore.append("src/clvmodels/spark.py")
