"""Collection rules for the docstring examples under src/ (tests live in tests/)."""

# Running the module would start the command line.
collect_ignore = ["src/clvmodels/__main__.py"]
