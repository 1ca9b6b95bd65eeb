"""`FigureTable`: the latency figures one DNS server steers by (a `LatencyView`).

Samples arrive per (client network, edge, source) -- from Redis (`store.Follower`)
or directly (`add`) -- and `refresh()` turns them into figures:

* a figure is the decay-weighted lower quartile (`quantile`) of the samples younger
  than `expiry_s` (weights halve every `half_life_s`), usable once `min_samples` stand
  behind it: a busy client, Wi-Fi or queueing only ever add time, so a low quantile
  is the route's figure with their noise trimmed off, while a route that really slows
  down moves every sample and so the figure;
* sources: `beacon` (clients' timed fetches) is preferred; `tcp` (the edges' kernel
  RTT of client connections) is used for a network that has no usable beacon figure;
* a covering network (/20 and /16, /40 and /32) has, per edge, the median of its
  networks' figures, one vote per network, and only when two or more networks vote;
* `generation` changes when some network's ranking of edges changes, or one of its
  figures moves by more than `DRIFT` (5%, at least 1 ms) from the figure it had at the
  last change: the decision cache survives figures that wobble, while a figure that
  moves by a filter's margin is seen.

Memory is bounded by `max_networks`: past it the least recently updated network is
dropped (`evicted` counts them).
"""

from __future__ import annotations

import ipaddress
import statistics
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from geodns.steering.measured import Figure, Measured
from geodns.steering.model import IPAddress

from .nets import covering, measured_network
from .settings import LatencySettings

Sample = tuple[float, float]  # (unix time, milliseconds)
SOURCES = ("beacon", "tcp")
DRIFT = 0.05


def decayed_quantile(samples: Iterable[Sample], now: float, half_life_s: float,
                     q: float = 0.5) -> float:
    """The weighted `q`-quantile of the samples' milliseconds, weight 2^(-age/half_life)."""
    weighted = sorted((ms, 0.5 ** (max(0.0, now - t) / half_life_s)) for t, ms in samples)
    bar = sum(w for _, w in weighted) * q
    acc = 0.0
    for ms, w in weighted:
        acc += w
        if acc >= bar:
            return ms
    return weighted[-1][0]


class FigureTable:
    def __init__(self, settings: LatencySettings | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or LatencySettings()
        self.clock = clock
        self.generation = 0
        self.evicted = 0
        # network -> (edge, source) -> samples, least recently updated network first
        self._samples: OrderedDict[str, dict[tuple[str, str], list[Sample]]] = OrderedDict()
        self._figures: dict[str, dict[str, Figure]] = {}  # usable figures per network
        self._cover: dict[str, dict[str, Figure]] = {}  # covering network -> figures
        self._children: dict[str, set[str]] = {}  # covering network -> its networks
        self._dirty: set[str] = set()
        # Figures as of the last generation change, per network and covering network.
        self._basis: dict[str, dict[str, Figure]] = {}

    # -- input -----------------------------------------------------------------

    def replace(self, network: str, edge: str, source: str, samples: list[Sample]) -> None:
        """Set the samples of one (network, edge, source), as read from the store."""
        entry = self._samples.get(network)
        if entry is None:
            entry = self._samples[network] = {}
            self._track(network)
        else:
            self._samples.move_to_end(network)
        entry[(edge, source)] = samples[-self.settings.max_samples:]
        self._dirty.add(network)

    def add(self, address: str, edge: str, ms: float, source: str = "beacon",
            t: float | None = None) -> None:
        """One sample from a client address (a server without a store, and tests)."""
        network = str(measured_network(address))
        current = list(self._samples.get(network, {}).get((edge, source), []))
        current.append((self.clock() if t is None else t, ms))
        self.replace(network, edge, source, current)

    def _track(self, network: str) -> None:
        for parent in self._parents(network):
            self._children.setdefault(parent, set()).add(network)
        while len(self._samples) > self.settings.max_networks:
            old, _ = self._samples.popitem(last=False)
            self.evicted += 1
            self._forget(old)

    def _forget(self, network: str) -> None:
        self._samples.pop(network, None)
        self._figures.pop(network, None)  # its basis goes at the refresh (a change)
        for parent in self._parents(network):
            children = self._children.get(parent)
            if children is not None:
                children.discard(network)
                if not children:
                    del self._children[parent]
        self._dirty.add(network)

    def _parents(self, network: str) -> list[str]:
        net = ipaddress.ip_network(network)
        return [str(covering(net, p)) for p in self.settings.cover(net.version)]

    # -- figures -----------------------------------------------------------------

    @property
    def networks(self) -> int:
        return len(self._samples)

    def refresh(self, everything: bool = False) -> None:
        """Recompute the figures of the networks updated since the last call (all of
        them with `everything`: decay and expiry act on every network)."""
        now = self.clock()
        todo = set(self._samples) | self._dirty if everything else set(self._dirty)
        self._dirty.clear()
        changed = False
        parents: set[str] = set()
        for network in todo:
            after = self._compute(network, now)
            if after:
                self._figures[network] = after
            else:
                self._figures.pop(network, None)
                if network in self._samples and not any(self._samples[network].values()):
                    self._forget(network)
            if _moved(self._basis.get(network), after):
                changed = True
                self._rebase(network, after)
                parents.update(self._parents(network))
        for parent in parents:
            after = self._compute_cover(parent)
            if after:
                self._cover[parent] = after
            else:
                self._cover.pop(parent, None)
            if _moved(self._basis.get(parent), after):
                changed = True
                self._rebase(parent, after)
        if changed:
            self.generation += 1

    def _rebase(self, network: str, figures: dict[str, Figure]) -> None:
        if figures:
            self._basis[network] = figures
        else:
            self._basis.pop(network, None)

    def _compute(self, network: str, now: float) -> dict[str, Figure]:
        s = self.settings
        entry = self._samples.get(network)
        if not entry:
            return {}
        by_source: dict[str, dict[str, Figure]] = {}
        for (edge, source), samples in entry.items():
            fresh = [x for x in samples if now - x[0] <= s.expiry_s]
            entry[(edge, source)] = fresh
            if len(fresh) >= s.min_samples:
                ms = decayed_quantile(fresh, now, s.half_life_s, s.quantile)
                by_source.setdefault(source, {})[edge] = Figure(round(ms, 2), len(fresh))
        for source in SOURCES:
            if by_source.get(source):
                return by_source[source]
        return {}

    def _compute_cover(self, parent: str) -> dict[str, Figure]:
        votes: dict[str, list[Figure]] = {}
        for child in self._children.get(parent, ()):
            for edge, f in self._figures.get(child, {}).items():
                votes.setdefault(edge, []).append(f)
        return {
            edge: Figure(round(statistics.median(f.ms for f in fs), 2), sum(f.samples for f in fs))
            for edge, fs in votes.items() if len(fs) >= 2
        }

    # -- the LatencyView -----------------------------------------------------------

    def lookup(self, address: IPAddress) -> Measured | None:
        net = measured_network(address)
        own = str(net)
        figures = self._figures.get(own)
        if figures:
            return Measured(own, net.prefixlen, figures)
        covers = self.settings.cover(net.version)
        for p in covers:
            parent = str(covering(net, p))
            figures = self._cover.get(parent)
            if figures:
                # The client's own network has no figures while its neighbours do: the
                # answer holds for this network only.
                voters = len(self._children.get(parent, ()))
                return Measured(parent, net.prefixlen, figures, voters)
        if not covers:
            return None
        widest = str(covering(net, covers[-1]))
        prefix = net.prefixlen if widest in self._children else covers[-1]
        return Measured(widest, prefix, {}, 0)

    def snapshot(self) -> dict[str, dict[str, Figure]]:
        """Every network's usable figures (the dashboard and tests)."""
        return {n: dict(f) for n, f in self._figures.items()}


def _ranking(figures: dict[str, Figure]) -> tuple[str, ...]:
    return tuple(sorted(figures, key=lambda e: (figures[e].ms, e)))


def _moved(basis: dict[str, Figure] | None, now: dict[str, Figure]) -> bool:
    """Whether an answer may differ between figures `basis` and `now`."""
    basis = basis or {}
    if _ranking(basis) != _ranking(now):
        return True
    return any(abs(f.ms - basis[e].ms) > max(1.0, DRIFT * basis[e].ms) for e, f in now.items())
