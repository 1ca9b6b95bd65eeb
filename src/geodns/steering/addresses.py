"""Client addresses: unwrapping IPv4 inside IPv6, the decision grain, unlocatable ranges.

Decisions are made per /24 (IPv4) or /56 (IPv6): the finest networks that resolvers
send in ECS (RFC 7871 recommends these as the longest source prefixes), and the key of
the server's response cache. Every answer is therefore a function of the client's
/24 or /56, and the ECS scope never needs to be narrower.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .model import IPAddress

GRAIN = {4: 24, 6: 56}
BITS = {4: 32, 6: 128}

_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_6TO4 = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")
_EMBEDDINGS = ((_MAPPED, "mapped", 96), (_6TO4, "6to4", 16), (_TEREDO, "teredo", 96))

# ECS addresses in these ranges say nothing about where the client is, so they are
# treated as absent. Documentation and benchmarking ranges are deliberately not here:
# they are test networks, and the demo database locates them.
_UNLOCATABLE = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "::/128",
        "::1/128",
        "fc00::/7",  # unique local
        "fe80::/10",
    )
)


@dataclass(frozen=True, slots=True)
class Normalized:
    """The address that is located, and how it sits inside the address that was given.

    `offset` is the number of bits before the embedded IPv4 address in the original
    IPv6 address (mapped and Teredo 96, 6to4 16), 0 when nothing was unwrapped: a
    prefix of the located IPv4 address is `offset + p` in the original address.
    """

    address: IPAddress
    embedded: str | None = None  # "mapped" | "6to4" | "teredo"
    offset: int = 0

    @property
    def family(self) -> int:
        return self.address.version


def normalize(address: IPAddress, known_bits: int | None = None) -> Normalized:
    """Unwrap IPv4-mapped, 6to4 and Teredo addresses to the IPv4 address they carry.

    `known_bits` is the ECS source prefix: an embedded address is only used when at
    least its /24 is inside the part of the address that the client sent.
    """
    if address.version == 4:
        return Normalized(address)
    for net, kind, offset in _EMBEDDINGS:
        if address in net:
            if known_bits is not None and known_bits < offset + GRAIN[4]:
                break
            if kind == "mapped":
                v4 = address.ipv4_mapped
            elif kind == "6to4":
                v4 = address.sixtofour
            else:
                teredo = address.teredo
                assert teredo is not None  # the address is in the Teredo prefix
                v4 = teredo[1]  # (server, client); the client is de-obfuscated
            assert v4 is not None
            return Normalized(v4, kind, offset)
    return Normalized(address)


def locatable(address: IPAddress) -> bool:
    """False for private, loopback, link-local and unspecified addresses."""
    return not any(address in net for net in _UNLOCATABLE if net.version == address.version)


def common_prefix(a: int, b: int, bits: int) -> int:
    """Length of the common leading bits of two addresses of `bits` bits."""
    return bits - (a ^ b).bit_length()
