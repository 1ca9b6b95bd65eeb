"""URLs that may hold credentials (Redis, OCI registries): ``${NAME}`` in one is the
environment variable NAME, so a password need not be written on a command line, and a
URL shown in a log or a message has its literal password replaced by ``***``."""

from __future__ import annotations

import os
import re
from urllib.parse import quote

from geocdn.errors import GeocdnError

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class UnsetVariable(GeocdnError, ValueError):
    """A URL names an environment variable that is not set."""


def redacted(url: str) -> str:
    """`url` for logs and messages: a literal password replaced by `***`."""
    return re.sub(r"(://[^:/@]*:)(?!\$\{)[^/]*@", r"\1***@", url)


def expand(url: str, what: str = "the URL") -> str:
    """`url` with each ``${NAME}`` replaced by the environment variable NAME: in the
    credentials percent-encoded (a password may hold any character), elsewhere (a host,
    a unix socket's path) as it is. `what` names the URL in the error."""

    def substitute(text: str, encode: bool) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise UnsetVariable(f"{what} names ${{{name}}}, which is not set")
            return quote(os.environ[name], safe="") if encode else os.environ[name]

        return _VARIABLE.sub(value, text)

    scheme, sep, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    credentials = authority.rpartition("@")[0] + "@" if "@" in authority else ""
    return (substitute(scheme, False) + sep + substitute(credentials, True)
            + substitute(rest[len(credentials):], False))
