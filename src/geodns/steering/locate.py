"""Where the client is: ECS or source address, `nets` overrides, GeoIP, accuracy.

The client address is the ECS one when the query has ECS, else the packet's source.
Precedence (the first that gives a location wins):

1. a `nets` override holding the client address;
2. the GeoIP location of that address, if its accuracy radius is at most the pool's
   `accuracy_km` (without ECS it is used whatever its accuracy: nothing is better).
   An address in a private, loopback, CGNAT, link-local or ULA range (`addresses.
   UNUSABLE`) that the database does not place has no location for the whole range
   (at least: the recorded prefix is never shorter than the range's);
3. with ECS only, when 1-2 gave no location or only a poor one (e.g. a country
   centroid): a `nets` override on the resolver's source address, then the source's
   GeoIP location if accurate. Such a source location is taken only when it agrees
   with the poor ECS location (same country, or within its accuracy radius): it then
   refines it; one that contradicts it is ignored;
4. the poor ECS location, else no location (distance-based filters then keep the
   pool's order).

Lookups use the client's /24 or /56 (the decision grain, see `addresses`). `prefix`
records how many leading bits of the client address these lookups depend on: the
nets table's, the GeoIP network's, or the unusable range's.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .addresses import GRAIN, Normalized, grain_address, normalize, unusable_range
from .distance import haversine_km
from .geoip import GeoDB, GeoRecord
from .model import Client, IPAddress, Location
from .nets import NetMatch, NetTable


@dataclass(frozen=True, slots=True)
class Lookup:
    """One signal that was consulted, for explanations."""

    of: str  # "ecs" | "source"
    kind: str  # "nets" | "geoip" | "unusable"
    network: str  # the matched (or empty) network
    location: Location | None
    members: tuple[str, ...] | None = None
    record: dict | None = None


@dataclass
class Located:
    client: Normalized  # the address the decision is about (ECS if any, else source)
    ecs: bool  # the client address is the query's ECS network
    location: Location | None = None
    members: tuple[str, ...] | None = None  # a nets override's member list
    signal: str = "none"  # what gave `location`, in words
    prefix: int = 0  # leading bits of `client` on which the result is the same
    by_source: bool = False  # the query had ECS, but the source address took part
    lookups: list[Lookup] = field(default_factory=list)


def _net(address: IPAddress, prefix: int) -> str:
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _agrees(coarse: Location, fine: Location) -> bool:
    if coarse.country and fine.country:
        return coarse.country == fine.country
    return haversine_km(coarse.lat, coarse.lon, fine.lat, fine.lon) <= coarse.accuracy_km


def client_address(client: Client) -> tuple[Normalized, bool]:
    """The address the decision is about, and whether it is the ECS one."""
    if client.ecs is not None:
        return normalize(client.ecs.network_address, client.ecs.prefixlen), True
    return normalize(client.source), False


class Locator:
    def __init__(self, nets: NetTable, geodb: GeoDB) -> None:
        self.nets = nets
        self.geodb = geodb

    def _nets(self, address: IPAddress, of: str, out: Located) -> NetMatch:
        m = self.nets.lookup(address)
        if m.override is not None:
            o = m.override
            out.lookups.append(Lookup(of, "nets", str(o.network), o.location, o.members))
        return m

    def _geoip(self, address: IPAddress, of: str, out: Located) -> GeoRecord:
        g = self.geodb.lookup(address)
        out.lookups.append(Lookup(of, "geoip", _net(address, g.prefix), g.location, None, g.record))
        return g

    def locate(self, client: Client, accuracy_km: float) -> Located:
        primary, ecs = client_address(client)
        of = "ecs" if ecs else "source"
        out = Located(primary, ecs)
        addr = grain_address(primary)

        m = self._nets(addr, of, out)
        out.prefix = m.prefix
        if m.override is not None:
            out.members = m.override.members
            if m.override.location is not None:
                out.location, out.signal = m.override.location, f"nets {m.override.network} ({of})"
                return out
        g = self._geoip(addr, of, out)
        out.prefix = max(out.prefix, g.prefix)
        if g.location is not None and (not ecs or g.location.accuracy_km <= accuracy_km):
            out.location, out.signal = g.location, f"GeoIP {_net(addr, g.prefix)} ({of})"
            return out
        coarse = g.location
        if coarse is not None:
            out.signal = f"GeoIP {_net(addr, g.prefix)} ({of}, poor accuracy)"
        unusable = unusable_range(addr)
        if coarse is None and unusable is not None:  # and the database does not place it
            out.lookups.append(Lookup(of, "unusable", _net(addr, unusable), None))
            out.prefix = max(out.prefix, min(unusable, GRAIN[addr.version]))
            out.signal = f"none: unusable address ({_net(addr, unusable)}, {of})"
        if not ecs:
            return out

        # ECS without a good location: the resolver's address may say more.
        out.by_source = True
        source = grain_address(normalize(client.source))
        ms = self._nets(source, "source", out)
        candidates: list[tuple[Location, str]] = []
        if ms.override is not None and ms.override.location is not None:
            candidates.append((ms.override.location, f"nets {ms.override.network} (source)"))
        else:
            gs = self._geoip(source, "source", out)
            if gs.location is not None and gs.location.accuracy_km <= accuracy_km:
                candidates.append((gs.location, f"GeoIP {_net(source, gs.prefix)} (source)"))
        for loc, signal in candidates:
            if coarse is None or _agrees(coarse, loc):
                out.location, out.signal = loc, signal
                return out
        out.location = coarse
        return out
