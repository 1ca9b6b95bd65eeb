"""The root of the `cdn` package's errors: a `CdnError` message is meant for the user."""


class CdnError(Exception):
    """Something the user can fix; the message says what and how."""
