"""Domain names as the zone loader and the server handle them.

Inside the server a name is a lowercase absolute string with its trailing dot
("www.cdn.example."); the root is ".". The query's own letter case never reaches
this form: responses echo the question bytes as they came (0x20). A query may carry
any octet in a label, a dot included: `label_text` writes every octet that is not a
printable ASCII character, and "." and "\\", as a \\DDD escape, so a label never holds
a literal dot and names split on "." exactly where the wire has label boundaries;
`wire_labels` turns such a name back into its octets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import TypeVar

from geodns.errors import GeoDNSError

T = TypeVar("T")

MAX_LABEL = 63
MAX_NAME = 255  # octets in wire form, including the length octets and the root


# Octets written as themselves in a name: printable ASCII but the dot and the backslash.
_PLAIN_OCTETS = bytes(b for b in range(0x21, 0x7F) if b not in b".\\")
_ESCAPE = re.compile(r"\\(\d{3})")


def label_text(label: bytes) -> str:
    """A wire label as text: plain octets as they are, any other as \\DDD."""
    if not label.translate(None, _PLAIN_OCTETS):
        return label.decode("ascii")
    return "".join(chr(b) if b in _PLAIN_OCTETS else f"\\{b:03d}" for b in label)


@lru_cache(maxsize=4096)
def wire_labels(name: str) -> tuple[bytes, ...]:
    """The labels of a name as octets on the wire (\\DDD escapes undone)."""
    if name == ".":
        return ()
    return tuple(_ESCAPE.sub(lambda m: chr(int(m[1])), label).encode("latin-1")
                 for label in name[:-1].split("."))


class NameError_(GeoDNSError, ValueError):
    """A name that cannot exist in the DNS (empty label, too long, bad character)."""


def absolute(name: str, origin: str) -> str:
    """Resolve a zone-file name: '@' is the origin, a trailing dot means absolute."""
    if name == "@":
        return origin
    if name.endswith("."):
        return name.lower() if name != "." else "."
    return (name + "." + origin if origin != "." else name + ".").lower()


_PLAIN = re.compile(r'(?:[^\s"();\\.]{1,63}\.)+')  # labels of allowed characters


def check(name: str) -> str:
    """Validate an absolute name; return it, or raise NameError_ saying what is wrong."""
    if name == "." or (len(name) < MAX_NAME and name.isascii() and _PLAIN.fullmatch(name)):
        return name  # the common case, at once; the checks below say what is wrong
    if not name.isascii():
        raise NameError_(f"name {name!r} is not ASCII: write it in its IDNA form (xn--...)")
    labels = name[:-1].split(".")
    wire = 1
    for label in labels:
        if not label:
            raise NameError_(f"name {name!r} has an empty label")
        size = len(label.encode())
        if size > MAX_LABEL:
            raise NameError_(f"label {label[:20]!r}... is {size} octets (max {MAX_LABEL})")
        if any(c.isspace() or c in '"();\\' for c in label):
            raise NameError_(f"label {label!r} holds a character not allowed in a name")
        wire += size + 1
    if wire > MAX_NAME:
        raise NameError_(f"name is {wire} octets long in wire form (max {MAX_NAME})")
    return name


def is_subdomain(name: str, origin: str) -> bool:
    """True when `name` is `origin` or below it."""
    return origin == "." or name == origin or name.endswith("." + origin)


def parent(name: str) -> str:
    """The name one label up ('.' stays '.')."""
    if name == ".":
        return "."
    rest = name.split(".", 1)[1]
    return rest or "."


def descent(name: str, origin: str) -> list[str]:
    """Names from just below `origin` down to `name` itself (empty when name == origin)."""
    out = []
    while name != origin and name != ".":
        out.append(name)
        name = parent(name)
    out.reverse()
    return out


def find_zone(zones: Mapping[str, T], name: str) -> T | None:
    """The zone (by origin) closest above `name`, the root included; None if none holds it."""
    while True:
        zone = zones.get(name)
        if zone is not None or name == ".":
            return zone
        name = parent(name)
