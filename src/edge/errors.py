"""The root of the `edge` package's errors, and the errors shared by its parts."""


class EdgeError(Exception):
    """Every error of the edge package; the message is meant for an operator."""


class ModelError(EdgeError):
    """A model cannot be loaded, staged or activated; the message says why."""


class DistributionError(EdgeError):
    """A failure of model distribution (store, transfer, stream, origin API)."""


class DigestMismatch(ModelError, DistributionError):
    """Bytes (a model file, a downloaded artifact) do not hash to the digest announced."""
