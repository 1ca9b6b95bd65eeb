"""A zone's steering: its pools, its nets overrides, the decision cache, explanations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .addresses import BITS, Normalized, normalize
from .config import Report, parse_nets, parse_pools
from .decide import Decision, decide
from .explain import explanation, format_text
from .geoip import GeoDB, shared
from .health import AllUp, HealthView
from .locate import Locator, client_address, grain_address
from .model import Client, Pool, PoolAnswer
from .nets import NetTable

_FAMILY = {"A": 4, "AAAA": 6}
EXPLAIN_LABEL = "_explain."  # `_explain.NAME TXT`: the decision for NAME, as text


class DecisionCache:
    """Decisions per (pool, asked family, client network at the decision's prefix).

    A decision that holds for a /16 is stored once under that /16; a lookup tries
    the prefixes seen so far for the pool (usually one or two). Answers that also
    depend on the resolver's source address (`PoolAnswer.by_source` with a usable
    ECS) are kept per source /24 or /56 under their ECS network. The whole cache is
    dropped when the generation (health, load, GeoIP database) changes.
    """

    LIMIT = 200_000  # entries; past it the cache starts over (a burst of new networks)

    def __init__(self) -> None:
        self.generation: int | None = None
        self._entries: dict[tuple, Any] = {}
        self._prefixes: dict[tuple, list[int]] = {}

    def clear(self, generation: int) -> None:
        self._entries.clear()
        self._prefixes.clear()
        self.generation = generation

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _source_key(client: Client) -> tuple[int, int]:
        s = grain_address(normalize(client.source))
        return s.version, int(s)

    def get(self, base: tuple, n: Normalized, client: Client) -> PoolAnswer | None:
        bits, a = BITS[n.family], int(n.address)
        for p in self._prefixes.get(base, ()):
            e = self._entries.get((base, p, a >> (bits - p)))
            if e is not None:
                return e.get(self._source_key(client)) if isinstance(e, dict) else e
        return None

    def put(self, base: tuple, n: Normalized, client: Client, d: Decision, ecs: bool) -> None:
        if len(self._entries) >= self.LIMIT:
            self.clear(self.generation or 0)
        p = d.prefix
        prefixes = self._prefixes.setdefault(base, [])
        if p not in prefixes:
            prefixes.append(p)
            prefixes.sort()
        key = (base, p, int(n.address) >> (BITS[n.family] - p))
        if ecs and d.answer.by_source:
            by_source = self._entries.get(key)
            if not isinstance(by_source, dict):
                by_source = self._entries[key] = {}
            by_source[self._source_key(client)] = d.answer
        else:
            self._entries[key] = d.answer


@dataclass
class ZoneSteering:
    zone: str
    pools: dict[str, Pool]
    health: HealthView = field(default_factory=AllUp)
    nets: NetTable = field(default_factory=lambda: NetTable([]))
    geoip: GeoDB = field(default_factory=shared)
    cache: DecisionCache = field(default_factory=DecisionCache, repr=False)
    _swaps: int = field(default=0, repr=False)  # views or databases handed in so far

    @property
    def pool_names(self) -> set[str]:
        return set(self.pools)

    def set_health(self, view: HealthView) -> None:
        """Called by the server once its health service runs (or on each reload). Two
        views' generations are unrelated numbers, so a swap is a change of its own."""
        self.health = view
        self._swaps += 1

    def set_geoip(self, db: GeoDB) -> None:
        self.geoip = db
        self._swaps += 1

    @property
    def generation(self) -> int:
        """Changes whenever an answer may change (health, load, GeoIP database, or
        either of them replaced)."""
        # Read on every cached answer the server sends, hence plain integer arithmetic.
        return (self.health.generation << 32) + (self.geoip.generation << 16) + self._swaps

    def decide(self, pool: str, qtype: str, client: Client) -> Decision:
        """The full decision, uncached (what `answer` caches and `explain` shows)."""
        p = self.pools[pool]
        located = Locator(self.nets, self.geoip).locate(client, p.accuracy_km)
        return decide(p, _FAMILY[qtype], located, self.health, self.nets.has_members)

    def answer(self, pool: str, qtype: str, client: Client) -> PoolAnswer:
        gen = self.generation
        if gen != self.cache.generation:
            self.cache.clear(gen)
        n, ecs = client_address(client)
        state = 0 if client.ecs is None else 2 if ecs else 1
        base = (pool, qtype, n.family, n.offset, state)
        hit = self.cache.get(base, n, client)
        if hit is not None:
            return hit
        d = self.decide(pool, qtype, client)
        self.cache.put(base, n, client, d, ecs)
        return d.answer

    def explain(self, pool: str, qtype: str, client: Client) -> dict[str, Any]:
        """A JSON-ready account of the decision for this client (see `explain`)."""
        d = self.decide(pool, qtype, client)
        return explanation(self.zone, pool, qtype, client, d, self.geoip)

    def explain_txt(self, name: str, pool: str, client: Client) -> tuple[list[bytes], int]:
        """The A decision for `name` as TXT strings (one per line, at most 255 octets
        each) and its ECS scope: the answer to `_explain.NAME TXT`."""
        e = {"name": name, **self.explain(pool, "A", client)}
        lines = [line.strip().encode()[:255] for line in format_text(e).splitlines()]
        return [line for line in lines if line], e["scope"]


def load_steering(zone: str, pools: Any, nets: Any, report: Report) -> ZoneSteering:
    """Parse a zone's `pools:` (and `nets:`) sections; every problem goes to `report`."""
    parsed = parse_pools(zone, pools, report)
    overrides = parse_nets(nets, parsed, report)
    return ZoneSteering(zone=zone, pools=parsed, nets=NetTable(overrides))

