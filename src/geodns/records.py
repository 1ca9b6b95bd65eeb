"""Record data: the types a zone may hold, parsed from BIND presentation format.

Each parser turns one value string of a zone file into record data and raises
RecordError with an operator-readable message when the value is wrong. Types without
names inside (A, AAAA, TXT, CAA) are compiled to their wire octets (bytes: small, and
quick to hand from the process that loads a zone to the one that serves it);
types with names (CNAME, NS, PTR, MX, SRV) stay dnslib objects, whose names the
encoder compresses. Names inside record data are relative to the zone unless they
end with a dot.
"""

from __future__ import annotations

import shlex
import socket
from collections.abc import Callable
from typing import TypeAlias

from dnslib import CAA, CNAME, MX, NS, PTR, QTYPE, RD, SRV, TXT
from dnslib.label import DNSBuffer

from geodns.errors import GeoDNSError
from geodns.names import NameError_, absolute, check

MAX_RDATA = 65535  # octets of one record's data (RDLENGTH is 16 bits)
MAX_MESSAGE = 65535  # octets of a DNS message over TCP (a 16-bit length prefix)


class RecordError(GeoDNSError, ValueError):
    """A record value that does not parse; the message says what is expected."""


Rdata: TypeAlias = RD | bytes  # bytes: the record data's wire octets


def _wire(rd: RD) -> bytes:
    buf = DNSBuffer()
    rd.pack(buf)
    return bytes(buf.data)


def _name(text: str, origin: str) -> str:
    try:
        return check(absolute(text, origin))
    except NameError_ as e:
        raise RecordError(str(e)) from None


def _fields(text: str, count: int, shape: str) -> list[str]:
    parts = text.split()
    if len(parts) != count:
        raise RecordError(f"expected {shape!r}, got {text!r}")
    return parts


def _uint(text: str, bits: int, what: str) -> int:
    if not text.isdigit() or int(text) >= 1 << bits:
        raise RecordError(f"{what} must be an integer from 0 to {(1 << bits) - 1}, got {text!r}")
    return int(text)


def _address(family: socket.AddressFamily, text: str) -> bytes:
    try:
        return socket.inet_pton(family, text.strip())
    except OSError:
        version = 4 if family == socket.AF_INET else 6
        raise RecordError(f"{text!r} is not an IPv{version} address") from None


def _a(text: str, origin: str) -> bytes:
    return _address(socket.AF_INET, text)


def _aaaa(text: str, origin: str) -> bytes:
    return _address(socket.AF_INET6, text)


def _mx(text: str, origin: str) -> RD:
    pref, host = _fields(text, 2, "PREFERENCE HOST")
    return MX(_name(host, origin), _uint(pref, 16, "MX preference"))


def _srv(text: str, origin: str) -> RD:
    prio, weight, port, target = _fields(text, 4, "PRIORITY WEIGHT PORT TARGET")
    return SRV(
        _uint(prio, 16, "SRV priority"),
        _uint(weight, 16, "SRV weight"),
        _uint(port, 16, "SRV port"),
        _name(target, origin),
    )


def _strings(text: str) -> list[bytes]:
    try:
        parts = shlex.split(text, posix=True)
    except ValueError as e:
        raise RecordError(f"cannot split {text!r} into strings: {e}") from None
    if not parts:
        raise RecordError("empty TXT value")
    out = [p.encode() for p in parts]
    for p in out:
        if len(p) > 255:
            raise RecordError(
                f"a character-string is {len(p)} octets (max 255); split it into several "
                "quoted strings"
            )
    return out


def _txt(text: str, origin: str) -> bytes:
    """Quoted strings as in a zone file; a value without quotes is one string (split
    into 255-octet pieces when longer, as TXT readers join them back)."""
    if '"' in text:
        strings = _strings(text)
    else:
        raw = text.encode()
        if not raw:
            raise RecordError("empty TXT value")
        strings = [raw[i : i + 255] for i in range(0, len(raw), 255)]
    size = sum(len(s) + 1 for s in strings)
    if size > MAX_RDATA:
        raise RecordError(f"TXT data of {size:,} octets (a record holds at most {MAX_RDATA:,})")
    return _wire(TXT(strings))


def _caa(text: str, origin: str) -> bytes:
    parts = text.split(None, 2)
    if len(parts) != 3:
        raise RecordError(f"expected 'FLAGS TAG \"VALUE\"', got {text!r}")
    flags, tag, value = parts
    if not tag.isalnum():
        raise RecordError(f"CAA tag {tag!r} must be letters and digits")
    (value_str,) = _strings(value) if value.strip() else (b"",)
    return _wire(CAA(_uint(flags, 8, "CAA flags"), tag.lower(), value_str.decode()))


def _single_name(cls: type) -> Callable[[str, str], RD]:
    def parse(text: str, origin: str) -> RD:
        (host,) = _fields(text, 1, "NAME")
        return cls(_name(host, origin))

    return parse


PARSERS: dict[str, Callable[[str, str], Rdata]] = {
    "A": _a,
    "AAAA": _aaaa,
    "CNAME": _single_name(CNAME),
    "NS": _single_name(NS),
    "PTR": _single_name(PTR),
    "MX": _mx,
    "TXT": _txt,
    "SRV": _srv,
    "CAA": _caa,
}
"""Types written under `records:` (SOA has its own `soa:` section)."""

TYPE_CODES: dict[str, int] = {name: getattr(QTYPE, name) for name in [*PARSERS, "SOA"]}


def parse(rtype: str, text: str, origin: str) -> Rdata:
    """Parse one value of type `rtype` (a key of PARSERS)."""
    return PARSERS[rtype](text, origin)


ADDITIONAL_TYPES = frozenset({QTYPE.NS, QTYPE.MX, QTYPE.SRV})
"""Types whose targets' addresses go to the additional section (RFC 1035 3.3)."""


def target(rtype: int, rd: Rdata) -> str | None:
    """The host name a NS, MX or SRV record points at, lowercase absolute."""
    if isinstance(rd, bytes):
        return None
    if rtype in (QTYPE.NS, QTYPE.MX):
        return str(rd.label).lower()
    if rtype == QTYPE.SRV:
        return str(rd.target).lower()
    return None
