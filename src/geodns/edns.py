"""EDNS(0) (RFC 6891) and the options the server understands.

* Client Subnet (RFC 7871, option 8): validated as §6 asks (unknown family, prefix
  too long, non-zero SCOPE, an ADDRESS longer than SOURCE needs or with bits set past
  it are FORMERR) and echoed with the SCOPE the answer depended on.
* Cookies (RFC 7873, option 10): a client cookie of 8 octets, optionally followed by
  a server cookie of 8 to 32; any other length is FORMERR.
* NSID (RFC 5001, option 3): asked for with an empty option.
Unknown options are ignored.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from geodns.errors import GeoDNSError

OPT_ECS, OPT_COOKIE, OPT_NSID = 8, 10, 3
OUR_UDP_SIZE = 1232  # DNS flag day 2020: avoids IP fragmentation on common paths
OPT_HEAD = struct.Struct("!BHHIH")  # root name, type, class (size), ttl, rdlength


class EdnsError(GeoDNSError, ValueError):
    """A malformed OPT record or option (answered with FORMERR)."""


@dataclass(frozen=True, slots=True)
class Ecs:
    family: int
    source: int
    address: bytes  # as sent: ceil(source / 8) octets

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        size = 4 if self.family == 1 else 16
        packed = self.address + bytes(size - len(self.address))
        addr = ipaddress.ip_address(packed)
        return ipaddress.ip_network(f"{addr}/{self.source}")

    def option(self, scope: int) -> bytes:
        return option(OPT_ECS, struct.pack("!HBB", self.family, self.source, scope)
                      + self.address)


@dataclass(frozen=True, slots=True)
class Edns:
    udp_size: int
    version: int
    do: bool
    ecs: Ecs | None = None
    cookie: bytes | None = None  # the option's data: client cookie [+ server cookie]
    nsid: bool = False


def _ecs(data: bytes) -> Ecs:
    if len(data) < 4:
        raise EdnsError("client subnet option shorter than 4 octets")
    family, source, scope = struct.unpack_from("!HBB", data)
    address = data[4:]
    if family not in (1, 2):
        raise EdnsError(f"client subnet family {family} is not IPv4 (1) or IPv6 (2)")
    bits = 32 if family == 1 else 128
    if source > bits:
        raise EdnsError(f"client subnet source prefix /{source} is longer than /{bits}")
    if scope != 0:
        raise EdnsError("client subnet scope prefix must be 0 in a query")
    if len(address) != (source + 7) // 8:
        raise EdnsError(f"client subnet address is {len(address)} octets for /{source}")
    if source % 8 and address[-1] & (0xFF >> (source % 8)):
        raise EdnsError("client subnet address has bits set beyond the source prefix")
    return Ecs(family, source, address)


def parse_opt(rclass: int, ttl: int, rdata: bytes) -> Edns:
    """Decode an OPT record's fields and options (the caller checked owner and count)."""
    ecs = cookie = None
    nsid = False
    pos = 0
    while pos < len(rdata):
        if pos + 4 > len(rdata):
            raise EdnsError("EDNS option header runs past the record")
        code, length = struct.unpack_from("!HH", rdata, pos)
        value = rdata[pos + 4 : pos + 4 + length]
        if len(value) != length:
            raise EdnsError("EDNS option runs past the record")
        pos += 4 + length
        if code == OPT_ECS:
            if ecs is not None:
                raise EdnsError("two client subnet options")
            ecs = _ecs(value)
        elif code == OPT_COOKIE:
            if cookie is not None:
                raise EdnsError("two cookie options")
            if length != 8 and not 16 <= length <= 40:
                raise EdnsError(f"cookie option of {length} octets (8, or 16 to 40)")
            cookie = value
        elif code == OPT_NSID:
            nsid = True
    return Edns(
        udp_size=max(rclass, 512),
        version=(ttl >> 16) & 0xFF,
        do=bool(ttl & 0x8000),
        ecs=ecs,
        cookie=cookie,
        nsid=nsid,
    )


def build_opt(options: bytes = b"", ext_rcode: int = 0, do: bool = False) -> bytes:
    """Our OPT record: UDP size 1232, version 0, the upper rcode bits, the options."""
    ttl = (ext_rcode << 24) | (0x8000 if do else 0)
    return OPT_HEAD.pack(0, 41, OUR_UDP_SIZE, ttl, len(options)) + options


def option(code: int, value: bytes) -> bytes:
    return struct.pack("!HH", code, len(value)) + value
