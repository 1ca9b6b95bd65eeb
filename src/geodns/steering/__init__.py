"""Geo steering: the answer for a pool-bound name, chosen per client.

Contract with the zone loader and the server (`geodns.zones`, `geodns.server`):

* The loader hands a zone file's top-level `pools:` and `nets:` nodes (plain YAML
  values, or None) to `load_steering()`, with a `report(where, message)` callback for
  errors (`where` is a path inside the file such as "pools.edges.members[2].lat").
  Records bind an owner name to a pool with `{pool: NAME}`; the loader checks NAME
  against `ZoneSteering.pool_names` and that the owner holds no A, AAAA or CNAME.
* Per query the server builds a `Client` and calls `ZoneSteering.answer()`. The
  result is a pure function of (pool, qtype, client network at `scope`, health
  `generation`), so the server may cache the response bytes on exactly that key.

This module's first version answers every member's addresses with SCOPE 0; the geo
steering issue replaces the body, keeping these names and signatures.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from healthcheck.state import AllUp, HealthView

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Report = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class Client:
    source: IPAddress  # the packet's source address
    ecs: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None  # validated ECS, SOURCE > 0


@dataclass(frozen=True, slots=True)
class PoolAnswer:
    addresses: tuple[str, ...]  # of the asked family (A: v4, AAAA: v6); empty = NODATA
    ttl: int
    scope: int = 0  # ECS SCOPE PREFIX-LENGTH for the response
    cname: str | None = None  # absolute name: the all-down fallback CNAME, answered instead


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()
    health_url: str | None = None  # http(s)://... or tcp://host:port; None = not probed


@dataclass
class Pool:
    name: str
    ttl: int
    members: list[Member] = field(default_factory=list)
    health: dict = field(default_factory=dict)  # the pool's raw `health:` settings


@dataclass
class ZoneSteering:
    zone: str
    pools: dict[str, Pool]
    health: HealthView = field(default_factory=AllUp)

    @property
    def pool_names(self) -> set[str]:
        return set(self.pools)

    def set_health(self, view: HealthView) -> None:
        """Called by the server once its health service runs (or on each reload)."""
        self.health = view

    @property
    def generation(self) -> int:
        """Changes whenever an answer may change (health, load, overrides)."""
        return self.health.generation

    def answer(self, pool: str, qtype: str, client: Client) -> PoolAnswer:
        p = self.pools[pool]
        family = "ipv4" if qtype == "A" else "ipv6"
        addrs = tuple(a for m in p.members for a in getattr(m, family))
        return PoolAnswer(addresses=addrs, ttl=p.ttl, scope=0)


def load_steering(zone: str, pools: Any, nets: Any, report: Report) -> ZoneSteering:
    """Parse a zone's `pools:` (and `nets:`) sections; every problem goes to `report`."""
    parsed: dict[str, Pool] = {}
    for name, spec in (pools or {}).items():
        members = []
        for i, m in enumerate(spec.get("members", [])):
            if "name" not in m:
                report(f"pools.{name}.members[{i}]", "member has no name")
                continue
            v4 = m.get("ipv4", ())
            v6 = m.get("ipv6", ())
            members.append(
                Member(
                    m["name"],
                    tuple([v4] if isinstance(v4, str) else v4),
                    tuple([v6] if isinstance(v6, str) else v6),
                    m.get("health_url"),
                )
            )
        parsed[name] = Pool(
            name=name,
            ttl=int(spec.get("ttl", 30)),
            members=members,
            health=dict(spec.get("health") or {}),
        )
    return ZoneSteering(zone=zone, pools=parsed)
