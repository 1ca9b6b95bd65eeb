"""Exceptions of the distribution package, named after the failure."""

from __future__ import annotations

from edge.errors import DistributionError


class InvalidName(DistributionError, ValueError):
    """A model name, version or digest is not in the strict accepted form."""


class NotFound(DistributionError, LookupError):
    """No such model, version or blob in the store."""


class Conflict(DistributionError):
    """The request contradicts the store (e.g. a version re-published with other bytes)."""


class TransferFailed(DistributionError):
    """No transfer variant of a file could be downloaded and verified."""
