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

# Addresses in these ranges say nothing about where the client is (gdnsd's list). Such
# an address is still a decision input: the answer it gets holds for the whole range,
# whose prefix becomes the ECS scope. Documentation and benchmarking ranges are
# deliberately not here: they are test networks, and the demo database locates them.
UNUSABLE = tuple(
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
    # An IPv6 address that was not unwrapped: the shortest prefix of it that holds no
    # address that would be unwrapped (and so decided as IPv4). 0 for the rest.
    floor: int = 0

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
                teredo = address.teredo  # (server, client); the client is de-obfuscated
                v4 = teredo[1] if teredo is not None else None
            assert v4 is not None
            return Normalized(v4, kind, offset)
    a = int(address)
    floor = max(  # inside an embedding range only a short ECS prefix is left wrapped
        offset + GRAIN[4] if address in net else common_prefix(a, int(net.network_address), 128) + 1
        for net, _, offset in _EMBEDDINGS
    )
    return Normalized(address, floor=floor)


def unusable_range(address: IPAddress) -> int | None:
    """The prefix length of the private, loopback, CGNAT, link-local or unspecified
    range holding `address`, None when it is not in one."""
    for net in UNUSABLE:
        if net.version == address.version and address in net:
            return net.prefixlen
    return None


def grain_address(n: Normalized) -> IPAddress:
    """The network address of the client's /24 or /56: the one place that computes the
    grain that answers are decided for (lookups, hashes and cache keys use it)."""
    bits, g = BITS[n.family], GRAIN[n.family]
    a = int(n.address) >> (bits - g) << (bits - g)
    return ipaddress.IPv4Address(a) if n.family == 4 else ipaddress.IPv6Address(a)


def grain_network(address: IPAddress) -> tuple[int, int]:
    """(family, the client's /24 or /56 network address as an integer), IPv4-mapped,
    6to4 and Teredo addresses unwrapped: a hashable key for a client network."""
    a = grain_address(normalize(address))
    return a.version, int(a)


def common_prefix(a: int, b: int, bits: int) -> int:
    """Length of the common leading bits of two addresses of `bits` bits."""
    return bits - (a ^ b).bit_length()
