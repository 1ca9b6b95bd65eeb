"""The root of the `geocdn` package's errors."""


class GeocdnError(Exception):
    """Every error of the shared pieces (tokens, HOST:PORT)."""
