"""The exceptions and warnings of clvmodels, in one module that imports nothing else.

Every error the package raises for bad input is a :class:`ValueError` subclass that
names what is wrong, where and how many; every state error a :class:`RuntimeError`.
Keeping them here lets any module raise them without importing another module's
internals (and without import cycles).
"""

from __future__ import annotations

__all__ = [
    "ConvergenceError",
    "DataValidationError",
    "ModelFileError",
    "NotFittedError",
    "SamplingWarning",
]


class DataValidationError(ValueError):
    """Input data that cannot be used as given.

    The message names the column, how many rows are affected and the first
    offending customer ids (or row labels), so the problem can be found at once.
    """


class ModelFileError(ValueError):
    """A saved model file that cannot be loaded: unreadable, of an unknown kind, or
    holding values that would make an invalid model. The message names the file and
    the field."""


class NotFittedError(RuntimeError):
    """Raised when a method that needs fitted parameters is called before ``fit``."""


class ConvergenceError(RuntimeError):
    """Raised when the likelihood could not be maximised."""


class SamplingWarning(UserWarning):
    """MCMC diagnostics (R-hat, effective sample size, divergences) flag a problem."""
