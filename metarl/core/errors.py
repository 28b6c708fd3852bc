"""Errors that several layers raise and the command line reports without a traceback."""

from __future__ import annotations


class DatasetError(ValueError):
    """Data that is corrupt, in the wrong layout, or too small for the episodes asked of it."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """Data that is not where it was expected (tests that need it skip on this error)."""
