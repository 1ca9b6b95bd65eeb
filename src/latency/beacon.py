"""Beacons are untrusted input: their schema, bounds, and a rate limit per network.

A beacon is the JSON object `{"samples": [{"edge": NAME, "ms": NUMBER}, ...]}`: one to
`max_beacon_samples` round-trip times, in milliseconds, that the client measured to
edges of the pool (`edge` must be one the receiving edge knows). The client network is
never taken from the body: it is the /24 or /48 of the connection's peer address, so a
client can only speak for its own network.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass

from .settings import LatencySettings


class BadBeacon(ValueError):
    """The beacon is malformed or out of bounds; the message says what."""


@dataclass(frozen=True, slots=True)
class BeaconSample:
    edge: str
    ms: float


def parse_beacon(body: bytes, edges: Collection[str],
                 settings: LatencySettings) -> list[BeaconSample]:
    if len(body) > settings.max_beacon_bytes:
        raise BadBeacon(f"beacon larger than {settings.max_beacon_bytes} bytes")
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadBeacon(f"beacon is not JSON: {e}") from None
    if not isinstance(doc, dict) or set(doc) != {"samples"}:
        raise BadBeacon('beacon must be an object with exactly the key "samples"')
    samples = doc["samples"]
    if not isinstance(samples, list) or not 1 <= len(samples) <= settings.max_beacon_samples:
        raise BadBeacon(f'"samples" must be a list of 1 to {settings.max_beacon_samples} items')
    out: list[BeaconSample] = []
    for i, item in enumerate(samples):
        if not isinstance(item, dict) or set(item) != {"edge", "ms"}:
            raise BadBeacon(f'samples[{i}] must be an object with exactly "edge" and "ms"')
        edge, ms = item["edge"], item["ms"]
        if not isinstance(edge, str) or edge not in edges:
            raise BadBeacon(f"samples[{i}].edge: unknown edge {str(edge)[:64]!r}")
        if isinstance(ms, bool) or not isinstance(ms, int | float) or not math.isfinite(ms):
            raise BadBeacon(f"samples[{i}].ms must be a number")
        if not 0 < ms <= settings.max_ms:
            raise BadBeacon(f"samples[{i}].ms must be above 0 and at most {settings.max_ms:g}")
        if any(s.edge == edge for s in out):
            raise BadBeacon(f"samples[{i}].edge: {edge!r} given twice")
        out.append(BeaconSample(edge, float(ms)))
    return out


class NetworkLimiter:
    """A token bucket per client network, for at most `max_networks` networks (the
    least recently seen are forgotten first)."""

    def __init__(self, rate: float, burst: int, max_networks: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_networks = max_networks
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, network: str, now: float | None = None) -> float:
        """0 when allowed (one token taken), else the seconds until the next token."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(network, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[network] = (tokens, now)
        if len(self._buckets) > self.max_networks:
            self._buckets.popitem(last=False)
        return wait
