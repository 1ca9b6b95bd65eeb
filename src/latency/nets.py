"""The client network that measurements are aggregated for: the /24 or the /48."""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PREFIX = {4: 24, 6: 48}


def measured_network(address: str | IPAddress) -> IPNetwork:
    """The client's /24 (IPv4, also for IPv4-mapped IPv6) or /48; ValueError when
    `address` is not an IP address."""
    a = ipaddress.ip_address(address)
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return ipaddress.ip_network(f"{a}/{PREFIX[a.version]}", strict=False)


def covering(network: IPNetwork, prefix: int) -> IPNetwork:
    return network.supernet(new_prefix=prefix)
