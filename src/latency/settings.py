"""`LatencySettings`: every knob of measurement aggregation, with its default and why."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LatencySettings:
    # A figure is used once this many samples stand behind it: one slow beacon (a
    # client on a busy Wi-Fi) must not move a network.
    min_samples: int = 5
    # The figure is this quantile of the (decayed) samples: timing noise only ever adds.
    quantile: float = 0.25
    # Samples lose half their weight per half-life, so a figure follows a route that
    # changed within about two half-lives while a single odd sample barely counts.
    half_life_s: float = 30.0
    # Samples older than this are dropped; a network with none left falls back to a
    # covering network, then to distance.
    expiry_s: float = 600.0
    # Samples kept per (client network, edge, source): the window of the median.
    max_samples: int = 32
    # Client networks tracked by a DNS server; past it the least recently updated go.
    max_networks: int = 100_000
    # Covering networks a client without figures of its own falls back to, longest
    # first (IPv4 and IPv6). A covering figure is the median of its networks' figures,
    # one vote per network, so one network cannot move it far.
    cover_v4: tuple[int, ...] = (20, 16)
    cover_v6: tuple[int, ...] = (40, 32)
    # A DNS server reads the updates from Redis this often.
    sync_interval_s: float = 2.0
    # Beacons: accepted per client network and edge node (a token bucket), samples per
    # beacon, and the largest round-trip time believed (a minute: anything above is a
    # broken clock or a lie).
    beacon_rate_per_s: float = 5.0
    beacon_burst: int = 20
    max_beacon_samples: int = 4
    max_ms: float = 60_000.0
    max_beacon_bytes: int = 2048

    def cover(self, family: int) -> tuple[int, ...]:
        return self.cover_v4 if family == 4 else self.cover_v6
