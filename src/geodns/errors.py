"""The root of the `geodns` package's errors."""


class GeoDNSError(Exception):
    """Every error of the geodns package (zones, messages, GeoIP, explain)."""
