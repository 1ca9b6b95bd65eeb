"""The one HOST:PORT parser of the project.

`parse_host_port("127.0.0.1:5353")` -> `("127.0.0.1", 5353)`; IPv6 addresses are written
in brackets (`[::1]:5353` -> `("::1", 5353)`); with `default_port`, the port may be left
out (`localhost` -> `("localhost", default_port)`). Anything else raises `HostPortError`
with a message that says what was expected. `host_port_type` wraps it for argparse.
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Callable

from geocdn.errors import GeocdnError


class HostPortError(GeocdnError, ValueError):
    """The text is not HOST:PORT; the message says why."""


def parse_host_port(text: str, default_port: int | None = None) -> tuple[str, int]:
    host, port, problem = _split(text.strip())
    if not problem and port is None:
        if default_port is not None:
            return host, default_port
        problem = "no port"
    if not problem and not (port and port.isdigit() and 0 < int(port) < 65536):
        problem = "the port must be a number from 1 to 65535"
    if problem or port is None:
        raise HostPortError(f"{text!r} is not HOST:PORT: {problem} "
                            "(e.g. 127.0.0.1:5353, localhost:8000 or [::1]:5353)")
    return host, int(port)


def _split(value: str) -> tuple[str, str | None, str]:
    """(host, port or None, what is wrong or "")."""
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket:
            return host, None, "an IPv6 address needs its closing ']'"
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return host, None, f"{host!r} in brackets is not an IPv6 address"
        if rest and not rest.startswith(":"):
            return host, None, "expected ':PORT' after ']'"
        return host, rest[1:] if rest else None, ""
    if value.count(":") > 1:
        return value, None, "write an IPv6 address in brackets, as [::1]:5353"
    host, colon, port = value.partition(":")
    return host, port if colon else None, "" if host else "no host"


def format_host_port(host: str, port: int) -> str:
    """The inverse of `parse_host_port`: brackets around an IPv6 host."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def host_port_type(default_port: int | None = None) -> Callable[[str], tuple[str, int]]:
    """An argparse `type=` that parses HOST:PORT and reports errors as usage errors."""

    def parse(text: str) -> tuple[str, int]:
        try:
            return parse_host_port(text, default_port)
        except HostPortError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse
