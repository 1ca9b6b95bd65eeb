"""What the filters of a selection chain work on: candidates and the decision context.

A filter is a function `(ctx, candidates, args) -> candidates`: it returns fewer or
reordered candidates, and adds a few words for explanations to `ctx.notes`.

A filter reads its inputs only through the context, which records what was read:

* about the client: `ctx.location`, `ctx.distance(c)`, `ctx.score(c)` and
  `ctx.nets_members` (all depend on where the client is: the recorded dependency is
  the prefix of the client address that the location lookups held for, including
  "no location" and an unusable address's range); `ctx.client_family`; and
  `ctx.client_hash(prefix, salt)` (the recorded dependency is that prefix);
* about the state: `ctx.state(c)` (health, load, hit rate; the decision cache is
  keyed on the state's generation, and the members read are recorded);
* measured latency: `ctx.measured()` (the figures for the client's network; the
  recorded dependency is the client prefix the view says they hold for).

`decide` turns the record into the decision's prefix, cache key and ECS scope, so a
filter cannot make an answer that leaks to clients it does not hold for. Never read
a candidate's `health`, `km`, `effective_km` or `score` directly in a filter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .addresses import BITS, GRAIN
from .health import MemberHealth
from .locate import Located
from .measured import LatencyView, Measured, NoLatency
from .model import Location, Member, Pool


@dataclass(slots=True)
class Candidate:
    member: Member
    health: MemberHealth
    km: float | None  # great-circle distance to the client; None if either is unknown
    effective_km: float | None  # km minus the member's bias, never below 0
    score: float

    @property
    def name(self) -> str:
        return self.member.name


@dataclass
class Context:
    pool: Pool
    located: Located  # read it through the properties below, which record the reads
    family: int  # of the asked addresses: 4 (A) or 6 (AAAA)
    uses_location: bool = False  # the location (or its absence) was read
    hash_prefix: int = 0  # the longest client prefix a hash was taken of (0: none)
    state_read: set[str] = field(default_factory=set)  # members whose state was read
    fence: set[str] | None = None  # a strict geofence: the only members that may answer
    latency: LatencyView = field(default_factory=NoLatency)  # read it through measured()
    latency_prefix: int = 0  # the client prefix measured figures were read for (0: none)
    notes: list[str] = field(default_factory=list)

    @property
    def location(self) -> Location | None:
        self.uses_location = True
        return self.located.location

    @property
    def nets_members(self) -> tuple[str, ...] | None:
        self.uses_location = True
        return self.located.members

    @property
    def client_family(self) -> int:
        """4 or 6: the family of the client address (after unwrapping). Always part of
        the decision's key, so reading it records nothing."""
        return self.located.client.family

    @property
    def ecs(self) -> bool:
        """True when the client is the query's ECS network, False when it is the
        resolver (which may stand for many clients). Part of the key: records nothing."""
        return self.located.ecs

    @property
    def grain(self) -> int:
        """The client network grain of its family: /24 or /56."""
        return GRAIN[self.client_family]

    def distance(self, c: Candidate) -> float | None:
        """The effective distance (bias subtracted) to the client, None if unknown."""
        self.uses_location = True
        return c.effective_km

    def score(self, c: Candidate) -> float:
        self.uses_location = True
        return c.score

    def state(self, c: Candidate) -> MemberHealth:
        self.state_read.add(c.name)
        return c.health

    def measured(self) -> Measured | None:
        """The latency figures measured from the client's network (or the nearest
        covering network with figures); None when this server collects none."""
        m = self.latency.lookup(self.located.client.address)
        if m is not None:
            self.latency_prefix = max(self.latency_prefix, m.prefix)
        return m

    def client_hash(self, prefix: int, salt: str) -> float:
        """A number in [0, 1) fixed for the client's network at `prefix` bits.

        Deterministic, so every client of one network (one resolver cache entry)
        gets the same answer, and a resolver asking twice gets the same answer.
        """
        address = self.located.client.address
        prefix = min(prefix, BITS[address.version])
        self.hash_prefix = max(self.hash_prefix, prefix)
        net = int(address) >> (BITS[address.version] - prefix)
        key = f"{address.version}/{prefix}/{net}/{salt}".encode()
        digest = hashlib.blake2b(key, digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64


FilterFn = Callable[[Context, list[Candidate], Any], list[Candidate]]
ArgsParser = Callable[[Any], Any]  # raises ValueError with an operator-facing message


@dataclass(frozen=True, slots=True)
class Filter:
    run: FilterFn
    parse: ArgsParser
