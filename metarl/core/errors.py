"""The errors metarl raises for bad input and failed runs; the command line reports each in
one paragraph without a traceback (``--debug`` shows it) and exits with status 2, or 3 for
divergence."""

from __future__ import annotations


class DatasetError(ValueError):
    """Data that is corrupt, in the wrong layout, or too small for the episodes asked of it."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """Data that is not where it was expected (tests that need it skip on this error)."""


class UsageError(ValueError):
    """A bad flag, config value, file or path: the command line prints it without a traceback
    and exits with status 2."""


class CheckpointError(RuntimeError):
    """A checkpoint or run directory that is missing, unreadable, or of another agent."""


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, gradient or parameter."""
