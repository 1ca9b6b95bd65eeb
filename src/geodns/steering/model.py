"""The data of steering: clients, answers, members, pools and client locations."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Client:
    source: IPAddress  # the packet's source address
    ecs: IPNetwork | None = None  # validated ECS, SOURCE > 0


@dataclass(frozen=True, slots=True)
class PoolAnswer:
    addresses: tuple[str, ...]  # of the asked family (A: v4, AAAA: v6); empty = NODATA
    ttl: int
    scope: int = 0  # ECS SCOPE PREFIX-LENGTH for the response
    cname: str | None = None  # absolute name: the all-down fallback CNAME, answered instead
    # True when the query carried ECS but the client was located by the packet's source
    # (the ECS network had no usable location): the answer then also depends on the
    # resolver's address, so a cache keyed on the ECS network alone must not keep it.
    by_source: bool = False
    # Hashable: the client network (and everything else) this answer holds for, the
    # key of the decision cache; the engine may key cached response bytes on it.
    key: tuple = ()
    settling: bool = False  # the pool's health has not settled: answer SERVFAIL
    # Accounting only (the answers-per-member counter): the members answered and the
    # client's region (city, else country, else continent; "" when not located).
    picked: tuple[str, ...] = ()
    region: str = ""


@dataclass(frozen=True, slots=True)
class Location:
    """Where a client (or a nets override) is. accuracy_km: GeoIP's accuracy radius."""

    lat: float
    lon: float
    accuracy_km: float = 0.0
    country: str | None = None
    continent: str | None = None
    city: str | None = None


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()
    health_url: str | None = None  # http(s)://... or tcp://host:port; None = not probed
    lat: float | None = None
    lon: float | None = None
    country: str | None = None
    continent: str | None = None
    weight: float = 1.0  # capacity share: `weighted` and the spread of shed clients
    bias_km: float = 0.0  # Route 53 style bias: distances to this member count bias_km less
    priority: int = 1  # `priority` keeps the lowest level that has candidates

    @property
    def location(self) -> Location | None:
        if self.lat is None or self.lon is None:
            return None
        return Location(self.lat, self.lon, 0.0, self.country, self.continent)

    def addresses(self, family: int) -> tuple[str, ...]:
        return self.ipv4 if family == 4 else self.ipv6


@dataclass(frozen=True, slots=True)
class ScoreWeights:
    distance: float = 0.5
    load: float = 0.3
    hit_rate: float = 0.2
    # Proximity first: the score may reorder only the members within
    # max(nearest + within_km, within_factor x nearest) of the client; the others
    # follow, nearest first (within_km 40075 lets the score order every member).
    within_km: float = 1000.0
    within_factor: float = 1.3

    def budget_km(self, nearest_km: float) -> float:
        return max(nearest_km + self.within_km, self.within_factor * nearest_km)


@dataclass(frozen=True, slots=True)
class Watermarks:
    """Load shedding of the leading member (`shedding`): nothing while its offered load
    is at or below `low`; the load it keeps stays between `low` and `high`; members at
    or above `high` receive no shed clients."""

    low: float = 0.7
    high: float = 0.9
    spread: int = 1  # how many of the nearest members with spare capacity share them


@dataclass(frozen=True, slots=True)
class AllDown:
    """What a pool answers when its chain leaves no candidate."""

    policy: str = "all"  # all | cname | nodata
    cname: str | None = None


@dataclass(frozen=True, slots=True)
class ChainStep:
    name: str
    args: Any = None


DEFAULT_CHAIN = (ChainStep("score"), ChainStep("shed"), ChainStep("healthy"), ChainStep("first_n"))


@dataclass
class Pool:
    name: str
    ttl: int
    members: list[Member] = field(default_factory=list)
    health: dict = field(default_factory=dict)  # the pool's raw `health:` settings
    answers: int = 1
    chain: tuple[ChainStep, ...] = DEFAULT_CHAIN
    score: ScoreWeights = field(default_factory=ScoreWeights)
    watermarks: Watermarks = field(default_factory=Watermarks)
    all_down: AllDown = field(default_factory=AllDown)
    accuracy_km: float = 500.0  # a GeoIP location less accurate than this is "poor"


@dataclass(frozen=True, slots=True)
class NetOverride:
    """A `nets:` entry: this network's clients are at `location` and/or use `members`."""

    network: IPNetwork
    location: Location | None = None
    members: tuple[str, ...] | None = None
