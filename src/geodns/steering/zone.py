"""A zone's steering: its pools, its nets overrides, the decision cache, explanations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .addresses import BITS, Normalized, grain_network
from .config import Report, parse_nets, parse_pools
from .decide import Decision, decide
from .explain import explanation, format_text
from .geoip import GeoDB, shared
from .health import AllUp, HealthView
from .locate import Locator, client_address
from .measured import LatencyView, NoLatency
from .model import Client, IPNetwork, Pool, PoolAnswer
from .nets import NetTable

_FAMILY = {"A": 4, "AAAA": 6}
EXPLAIN_LABEL = "_explain."  # `_explain.NAME TXT`: the decision for NAME, as text


class DecisionCache:
    """Answers by the key their decision derived from what it read (`PoolAnswer.key`).

    A decision that holds for a /16 is stored once under that /16; a lookup tries
    the prefixes seen so far for (pool, family, client family, ...) (usually one or
    two), and the source network for answers that consulted the packet's source. Not
    settled decisions are not kept (the settle window ends without a state change).
    The whole cache is dropped when the generation (health, load, GeoIP database)
    changes.
    """

    LIMIT = 200_000  # entries; past it the cache starts over (a burst of new networks)

    def __init__(self) -> None:
        self.generation: int | None = None
        self._entries: dict[tuple, PoolAnswer] = {}
        self._prefixes: dict[tuple, list[tuple[int, bool]]] = {}

    def clear(self, generation: int) -> None:
        self._entries.clear()
        self._prefixes.clear()
        self.generation = generation

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, base: tuple, n: Normalized, source: tuple[int, int]) -> PoolAnswer | None:
        bits, a = BITS[n.family], int(n.address)
        for p, by_source in self._prefixes.get(base, ()):
            hit = self._entries.get((*base, p, a >> (bits - p), source if by_source else None))
            if hit is not None:
                return hit
        return None

    def put(self, answer: PoolAnswer) -> None:
        if answer.settling:
            return
        if len(self._entries) >= self.LIMIT:
            self.clear(self.generation or 0)
        base, (p, _, source) = answer.key[:5], answer.key[5:]
        prefixes = self._prefixes.setdefault(base, [])
        if (p, source is not None) not in prefixes:
            prefixes.append((p, source is not None))
            prefixes.sort()
        self._entries[answer.key] = answer


@dataclass
class ZoneSteering:
    zone: str
    pools: dict[str, Pool]
    health: HealthView = field(default_factory=AllUp)
    nets: NetTable = field(default_factory=lambda: NetTable([]))
    geoip: GeoDB = field(default_factory=shared)
    latency: LatencyView = field(default_factory=NoLatency)
    cache: DecisionCache = field(default_factory=DecisionCache, repr=False)
    # Who may read `_explain.NAME TXT` (the source address; `geodns serve --explain-from`):
    # nobody by default, since the text names members, health, load and the database.
    explain_from: tuple[IPNetwork, ...] = ()
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

    def set_latency(self, view: LatencyView) -> None:
        self.latency = view
        self._swaps += 1

    @property
    def generation(self) -> int:
        """Changes whenever an answer may change (health, load, GeoIP database, the
        ranking of measured latencies, or any of them replaced)."""
        # Read on every cached answer the server sends, hence plain integer arithmetic.
        return ((self.latency.generation << 64) + (self.health.generation << 32)
                + (self.geoip.generation << 16) + self._swaps)

    def decide(self, pool: str, qtype: str, client: Client) -> Decision:
        """The full decision, uncached (what `answer` caches and `explain` shows)."""
        p = self.pools[pool]
        located = Locator(self.nets, self.geoip).locate(client, p.accuracy_km)
        source = grain_network(client.source)
        return decide(p, _FAMILY[qtype], located, self.health, self.nets.has_members, source,
                      self.latency)

    def cached(self, pool: str, qtype: str, client: Client) -> PoolAnswer | None:
        """The answer the decision cache holds for this client, if any."""
        gen = self.generation
        if gen != self.cache.generation:
            self.cache.clear(gen)
        n, ecs = client_address(client)
        base = (pool, _FAMILY[qtype], n.family, n.offset, ecs)
        return self.cache.get(base, n, grain_network(client.source))

    def answer(self, pool: str, qtype: str, client: Client) -> PoolAnswer:
        hit = self.cached(pool, qtype, client)
        if hit is not None:
            return hit
        d = self.decide(pool, qtype, client)
        self.cache.put(d.answer)
        return d.answer

    def explain(self, pool: str, qtype: str, client: Client) -> dict[str, Any]:
        """A JSON-ready account of the answer this client gets, by the answer's path:
        the decision cache first (`cached`: true, and the answer is the cached one; the
        chain shown is recomputed in the same state), else a decision that is cached."""
        hit = self.cached(pool, qtype, client)
        d = self.decide(pool, qtype, client)
        if hit is None:
            self.cache.put(d.answer)
        return explanation(self.zone, pool, qtype, client, d, self.geoip, hit)

    def explain_allowed(self, client: Client) -> bool:
        return any(client.source in net for net in self.explain_from
                   if net.version == client.source.version)

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

