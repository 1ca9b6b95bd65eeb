"""A pool's `health:` settings from its zone file: parsed, validated, defaulted.

Every field is optional; the defaults detect a dead edge within about 2.5 s, ride out
an occasional lost probe and a busy machine (docs/health.md has the arithmetic and why
each default is what it is):

=============  =========  ==================================================================
key            default    meaning
=============  =========  ==================================================================
type           (scheme)   ``http`` or ``tcp``; by default from the member's ``health_url``
                          (``http(s)://`` probes HTTP, ``tcp://host:port`` connects)
interval       0.6        seconds between two probes of one target
timeout        0.6        seconds a probe may take; at most ``interval`` so probes never queue
jitter         0.1        each interval is drawn in ``interval * (1 ± jitter)``
fall           3          failures (not necessarily consecutive) that take a member DOWN
reset          2          successes in a row that clear the failure count (gdnsd ok_thresh)
rise           3          successes in a row that bring a DOWN member back UP
expect         [200]      HTTP status codes that count as success
body           (none)     a substring the HTTP body must contain
body_regex     (none)     a regular expression the HTTP body must match
smoothing      0.3        EWMA weight of a new load / hit-rate sample (0 < a <= 1)
settle         2.0        seconds after start (or reload) before a pool whose members are
                          still UNKNOWN is answered anyway (then by its all-down policy)
min_ttl        5          answer TTL while a member of the pool is DOWN, UNKNOWN or changing
max_ttl        pool ttl   answer TTL while every member is steady
=============  =========  ==================================================================
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

Report = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class HealthSettings:
    type: str | None = None  # None: follow the health URL's scheme
    interval: float = 0.6
    timeout: float = 0.6
    jitter: float = 0.1
    fall: int = 3
    reset: int = 2
    rise: int = 3
    expect: tuple[int, ...] = (200,)
    body: str | None = None
    body_regex: str | None = None
    smoothing: float = 0.3
    settle: float = 2.0
    min_ttl: int = 5
    max_ttl: int | None = None  # None: the pool's own ttl

    def check_fields(self) -> tuple:
        """What makes two probes of one URL the same probe (everything but pacing)."""
        return (
            self.type, self.timeout, self.fall, self.reset, self.rise,
            self.expect, self.body, self.body_regex, self.smoothing,
        )


DEFAULTS = HealthSettings()
_NUMBERS: dict[str, tuple[type, float, float | None]] = {
    # key: (type, lowest allowed, highest allowed)
    "interval": (float, 0.05, 3600.0),
    "timeout": (float, 0.01, 600.0),
    "jitter": (float, 0.0, 0.5),
    "fall": (int, 1, 1000),
    "reset": (int, 1, 1000),
    "rise": (int, 1, 1000),
    "smoothing": (float, 0.01, 1.0),
    "settle": (float, 0.0, 600.0),
    "min_ttl": (int, 0, 604800),
    "max_ttl": (int, 0, 604800),
}
_KEYS = set(_NUMBERS) | {"type", "expect", "body", "body_regex"}


def parse_health_settings(raw: Any, report: Report, where: str = "health") -> HealthSettings:
    """Parse a pool's raw `health:` mapping; each problem goes to `report(path, message)`.

    A bad value is reported and replaced by its default, so the caller decides whether
    a report rejects the zone (the zone loader does) or only logs (a running checker).
    """
    if raw is None:
        return DEFAULTS
    if not isinstance(raw, dict):
        report(where, f"must be a mapping of settings, not {type(raw).__name__}")
        return DEFAULTS
    values: dict[str, Any] = {}
    for key in sorted(set(raw) - _KEYS, key=str):
        report(f"{where}.{key}", f"unknown setting; known: {', '.join(sorted(_KEYS))}")
    for key, (kind, low, high) in _NUMBERS.items():
        if key not in raw:
            continue
        value = raw[key]
        ok_type = isinstance(value, int | float) and not isinstance(value, bool)
        if kind is int and ok_type and value != int(value):
            ok_type = False
        if not ok_type:
            report(f"{where}.{key}", f"must be a {'whole ' if kind is int else ''}number")
        elif not low <= value <= high:
            report(f"{where}.{key}", f"must be between {low} and {high}, not {value}")
        else:
            values[key] = kind(value)
    if "type" in raw:
        if raw["type"] in ("http", "tcp"):
            values["type"] = raw["type"]
        else:
            report(f"{where}.type", f"must be http or tcp, not {raw['type']!r}")
    if "expect" in raw:
        codes = raw["expect"] if isinstance(raw["expect"], list) else [raw["expect"]]
        if codes and all(isinstance(c, int) and 100 <= c <= 599 for c in codes):
            values["expect"] = tuple(codes)
        else:
            report(f"{where}.expect", "must be an HTTP status code or a list of them (100..599)")
    if "body" in raw:
        if isinstance(raw["body"], str) and raw["body"]:
            values["body"] = raw["body"]
        else:
            report(f"{where}.body", "must be a non-empty string the body must contain")
    if "body_regex" in raw:
        try:
            re.compile(raw["body_regex"])
            values["body_regex"] = raw["body_regex"]
        except (re.error, TypeError) as exc:
            report(f"{where}.body_regex", f"is not a valid regular expression: {exc}")
    settings = HealthSettings(**values)
    if settings.timeout > settings.interval:
        report(f"{where}.timeout", f"({settings.timeout}) must not exceed interval "
               f"({settings.interval}): probes of one target never overlap")
        settings = HealthSettings(**{**values, "timeout": settings.interval})
    if settings.max_ttl is not None and settings.min_ttl > settings.max_ttl:
        report(f"{where}.min_ttl", f"({settings.min_ttl}) exceeds max_ttl ({settings.max_ttl})")
        settings = HealthSettings(**{**values, "min_ttl": settings.max_ttl})
    return settings


def check_health_url(url: Any, report: Report, where: str = "health_url") -> str | None:
    """Validate a member's health URL: `http(s)://host[:port]/path` or `tcp://host:port`."""
    if url is None:
        return None
    if not isinstance(url, str):
        report(where, "must be a string such as http://127.0.1.1:8000/health")
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        report(where, f"is not a valid URL: {exc}")
        return None
    if parts.scheme not in ("http", "https", "tcp") or not parts.hostname:
        report(where, f"must be http(s)://host/path or tcp://host:port, not {url!r}")
        return None
    if parts.scheme == "tcp" and port is None:
        report(where, f"a tcp:// health URL needs a port: {url!r}")
        return None
    return url
