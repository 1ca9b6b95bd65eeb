"""Prometheus metrics of the DNS server.

The query path does not touch prometheus-client objects (a labelled counter costs
microseconds): it adds one to a slot of a plain list (`Tally`), and `Tally.flush()`
moves the deltas into the counters once a second and before every scrape. With
several worker processes, prometheus-client's multiprocess mode (a directory of
mmap files named by PROMETHEUS_MULTIPROC_DIR) sums the workers' counters for the
one /metrics endpoint of the parent.
"""

from __future__ import annotations

from dnslib import QTYPE
from prometheus_client import Counter, Gauge
from prometheus_client.registry import Collector

# The query types that get their own `qtype` label: those a zone can hold, and ANY;
# every other code a packet may carry is counted as "other", so no query adds a series.
# Collectors that make their samples when scraped (registered in the default registry
# too): with worker processes, the metrics page adds them to the processes' files.
SCRAPED: list[Collector] = []
KNOWN_QTYPES = frozenset({"A", "AAAA", "CNAME", "NS", "SOA", "MX", "TXT", "SRV", "CAA",
                          "PTR", "ANY"})

QUERIES = Counter("geodns_queries", "DNS queries answered, by query type, rcode and transport",
                  ["qtype", "rcode", "transport"])
TRUNCATED = Counter("geodns_truncated_responses", "Responses sent with TC set (too large)",
                    ["transport"])
ECS_SEEN = Counter("geodns_ecs_queries", "Queries that carried an EDNS Client Subnet option")
RATE_LIMITED = Counter("geodns_rate_limited_responses",
                       "Responses held back by response rate limiting", ["action"])
ANSWERS = Counter("geodns_pool_answers",
                  "Steered answers, by pool, member answered and client region (city)",
                  ["pool", "member", "region"])
DROPPED = Counter("geodns_dropped_queries", "Datagrams dropped unanswered (not a query)")
KEPT = Counter("geodns_cached_answers_kept",
               "Cached answers served again after a zone reload (their RRset unchanged)")
RELOADS = Counter("geodns_reloads", "Zone reloads, by result", ["result"])
ZONE_SERIAL = Gauge("geodns_zone_serial", "SOA serial of each zone being served", ["zone"],
                    multiprocess_mode="mostrecent")
LAST_RELOAD_OK = Gauge("geodns_last_reload_success",
                       "1 when the last reload succeeded, 0 when it failed",
                       multiprocess_mode="mostrecent")


def qtype_label(code: int) -> str:
    """The `qtype` label of a query type code: its mnemonic if well known, else "other"."""
    name = str(QTYPE.get(code))
    return name if name in KNOWN_QTYPES else "other"


class Tally:
    """Cheap per-query counting: `counts[index(key)] += 1` on the hot path."""

    def __init__(self) -> None:
        self.keys: list[tuple] = []
        self.counts: list[int] = []
        self._flushed: list[int] = []
        self._index: dict[tuple, int] = {}

    def index(self, key: tuple) -> int:
        """Slot for a key (kind, *labels); kinds: query, limited, dropped, kept."""
        slot = self._index.get(key)
        if slot is None:
            slot = self._index[key] = len(self.keys)
            self.keys.append(key)
            self.counts.append(0)
            self._flushed.append(0)
        return slot

    def query_slot(self, transport: str, qtype: str, rcode: str, tc: bool, ecs: bool,
                   picks: tuple = ()) -> int:
        """`picks`: (pool, member, region) of a steered answer; a cached response keeps
        its slot, so the answers counter costs nothing more on the hot path."""
        return self.index(("query", transport, qtype, rcode, tc, ecs, picks))

    def flush(self) -> None:
        for slot, key in enumerate(self.keys):
            delta = self.counts[slot] - self._flushed[slot]
            if not delta:
                continue
            self._flushed[slot] += delta
            kind = key[0]
            if kind == "query":
                _, transport, qtype, rcode, tc, ecs, picks = key
                QUERIES.labels(qtype, rcode, transport).inc(delta)
                for pool, member, region in picks:
                    ANSWERS.labels(pool, member, region or "unknown").inc(delta)
                if tc:
                    TRUNCATED.labels(transport).inc(delta)
                if ecs:
                    ECS_SEEN.inc(delta)
            elif kind == "limited":
                RATE_LIMITED.labels(key[1]).inc(delta)
            elif kind == "dropped":
                DROPPED.inc(delta)
            elif kind == "kept":
                KEPT.inc(delta)
