"""Response rate limiting in the style of BIND's RRL.

Responses are accounted per (client network, response kind): the network is the
client's /24 (IPv4) or /56 (IPv6); the kind is the answer's name and type for
positive answers, the zone for NXDOMAIN (so random names share one bucket), the
delegation for referrals, and one bucket for errors. Each bucket earns `rate`
credits per second and may owe at most `window` seconds' worth. A response is
limited when its bucket is in debt: every `slip`-th limited response is sent as an
empty truncated answer (TC=1, so a real client retries over TCP), the others are
dropped. Off by default, like BIND. TCP is never limited, nor a query with a valid
server cookie (its source address is proven).
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

SEND, SLIP, DROP = 0, 1, 2


@dataclass
class RRLConfig:
    rate: float = 0.0  # responses per second per bucket; 0 = off
    nxdomain_rate: float | None = None  # default: rate
    error_rate: float | None = None  # default: rate
    window: float = 15.0
    slip: int = 2  # 0 = drop all limited responses, 1 = slip all
    ipv4_prefix: int = 24
    ipv6_prefix: int = 56
    max_buckets: int = 100_000

    @property
    def enabled(self) -> bool:
        return self.rate > 0


def client_net(address: str, v4: int = 24, v6: int = 56) -> str:
    """The client's network as text ("192.0.2.0/24"), the key RRL and caches use."""
    if ":" not in address:
        a, b, c, _ = address.split(".")
        if v4 == 24:
            return f"{a}.{b}.{c}.0/24"
    return str(ipaddress.ip_network(f"{address}/{v4 if ':' not in address else v6}",
                                    strict=False))


class RateLimiter:
    def __init__(self, config: RRLConfig) -> None:
        self.config = config
        self.buckets: dict[tuple[str, str], list[float]] = {}  # key -> [balance, last, slips]

    def _rate(self, kind: str) -> float:
        c = self.config
        if kind.startswith("nxdomain"):
            return c.nxdomain_rate if c.nxdomain_rate is not None else c.rate
        if kind.startswith("error"):
            return c.error_rate if c.error_rate is not None else c.rate
        return c.rate

    def check(self, address: str, kind: str, now: float | None = None) -> int:
        """SEND, SLIP or DROP for one response of `kind` to `address`."""
        c = self.config
        rate = self._rate(kind)
        if rate <= 0:
            return SEND
        now = time.monotonic() if now is None else now
        key = (client_net(address, c.ipv4_prefix, c.ipv6_prefix), kind)
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= c.max_buckets:
                self._expire(now)
            bucket = self.buckets[key] = [rate, now, 0]
        balance = min(rate, bucket[0] + (now - bucket[1]) * rate) - 1
        bucket[0] = max(balance, -rate * c.window)
        bucket[1] = now
        if balance >= 0:
            return SEND
        bucket[2] += 1
        return SLIP if c.slip and bucket[2] % c.slip == 0 else DROP

    def _expire(self, now: float) -> None:
        """Forget buckets that have earned back their credit; all, if none has."""
        stale = [k for k, b in self.buckets.items() if b[0] + (now - b[1]) * self._rate(k[1])
                 >= self._rate(k[1])]
        for k in stale:
            del self.buckets[k]
        if len(self.buckets) >= self.config.max_buckets:
            self.buckets.clear()
