"""The root of the `healthcheck` package's errors."""


class HealthcheckError(Exception):
    """Every error of the healthcheck package (zone files, overrides)."""
