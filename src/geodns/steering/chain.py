"""What the filters of a selection chain work on: candidates and the decision context.

A filter is a function `(ctx, candidates, args) -> candidates`: it returns fewer or
reordered candidates, and records in `ctx` what the decision came to depend on (the
client's location, a hash of the client network) so the ECS scope can be computed,
and in `ctx.notes` a few words for explanations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .addresses import BITS
from .health import MemberHealth
from .locate import Located
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
    located: Located
    family: int  # of the asked addresses: 4 (A) or 6 (AAAA)
    uses_location: bool = False
    hash_prefix: int = 0  # the longest client prefix a hash was taken of (0: none)
    notes: list[str] = field(default_factory=list)

    @property
    def location(self) -> Location | None:
        return self.located.location

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
