"""From query bytes to response bytes: the answer caches, then the full path.

Hot path (`UDPProtocol.datagram_received`): the query bytes after the 2-octet ID
(flags, question in its letter case, OPT with its options) are the key of a dict of
response bytes after the ID; a hit is an ID patch and a send. Everything else comes
here: `Engine.handle()` parses strictly, answers errors, CHAOS, cookies and NSID,
resolves in the zone and encodes, and fills the caches:

* `cache`: static answers (and REFUSED), keyed by the query bytes after the ID.
* `markers`: the query bytes of pool-bound names, saying whether their answers are
  keyed on the source network too: always without ECS, and with ECS when steering
  located the client by its source (`PoolAnswer.by_source`).
* `pool_cache`: pool answers keyed by (query bytes, the source's /24 or /56, or ""
  when the ECS option in the query bytes decides), with the steering `generation`
  they were computed at; an entry of an older generation is recomputed.

* `cookie_cache`: static answers to queries with a cookie, keyed by the parsed query
  (flags, question, EDNS fields): the response minus its OPT record, which is rebuilt
  with each client's server cookie (pool answers with a cookie take the full path).

Every cache is emptied on reload and cleared when it reaches `MAX_ENTRIES`.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Any

from dnslib import CLASS, QTYPE, RCODE, TXT

from geodns import message
from geodns.cookies import CookieJar
from geodns.edns import OPT_COOKIE, OPT_NSID, OUR_UDP_SIZE, build_opt, option
from geodns.message import Drop, FormErr, Query
from geodns.metrics import Tally
from geodns.names import find_zone
from geodns.rrl import DROP, SEND, RateLimiter
from geodns.steering import Client
from geodns.zone import Answer, RRset, Zone

MAX_ENTRIES = 100_000
BADVERS = 16
CHAOS_NAMES = {"id.server.", "hostname.bind."}
CLASS_ANY = 255
NO_TRANSFER = {QTYPE.AXFR, QTYPE.IXFR}


def netkey(ip: str) -> str:
    """The client network a pool answer is cached for: /24 (IPv4, also when mapped
    into IPv6 as ::ffff:a.b.c.d) or /56 (IPv6)."""
    return ip.rpartition(".")[0] if "." in ip else _v6net(ip)


@functools.lru_cache(maxsize=65536)
def _v6net(ip: str) -> str:
    return str(ipaddress.ip_network(ip.split("%")[0] + "/56", strict=False))


@dataclass(slots=True)
class Entry:
    """A response and what accounting needs (cached as `(body, slot, entry, ...)`)."""

    body: bytes  # the response after the ID
    slot: int  # Tally slot
    kind: str = ""  # RRL response kind
    slip: bytes = b""  # the truncated empty response after the ID, for RRL slips


class Engine:
    def __init__(self, nsid: bytes, cookies: CookieJar, rrl: RateLimiter | None,
                 tally: Tally) -> None:
        self.zones: dict[str, Zone] = {}
        self.nsid = nsid
        self.cookies = cookies
        self.rrl = rrl
        self.tally = tally
        self.cache: dict[bytes, tuple[bytes, int, Entry]] = {}
        self.markers: dict[bytes, bool] = {}  # pool-bound query -> keyed on the source too
        self.pool_cache: dict[tuple[bytes, str], tuple[bytes, int, Entry, int, Any]] = {}
        # static answers to queries with a cookie: all but the OPT record, which is
        # rebuilt around each client's server cookie
        self.cookie_cache: dict[tuple, tuple[bytes, bytes, Entry]] = {}
        self._dropped = tally.index(("dropped",))
        self._limited = {a: tally.index(("limited", a)) for a in ("drop", "slip")}

    def set_zones(self, zones: dict[str, Zone]) -> None:
        """Swap in a new zone set (one assignment) and forget every cached answer."""
        self.zones = zones
        for cache in (self.cache, self.markers, self.pool_cache, self.cookie_cache):
            cache.clear()

    # -- UDP entry point -------------------------------------------------------

    def udp(self, data: bytes, addr: tuple) -> bytes | None:
        """A UDP query the protocol's own fast path did not answer (or every query
        when rate limiting is on)."""
        key = data[2:]
        hit = self.cache.get(key)
        if hit is not None:
            return self._send(hit[2], data, addr)
        by_source = self.markers.get(key)
        if by_source is not None:
            pooled = self.pool_cache.get((key, netkey(addr[0]) if by_source else ""))
            if pooled is not None and pooled[3] == pooled[4].generation:
                return self._send(pooled[2], data, addr)
        return self.handle(data, addr, tcp=False)

    def _send(self, entry: Entry, data: bytes, addr: tuple) -> bytes | None:
        self.tally.counts[entry.slot] += 1
        if self.rrl is not None:
            verdict = self.rrl.check(addr[0], entry.kind)
            if verdict != SEND:
                return self._limit(verdict, data[:2] + entry.slip)
        return data[:2] + entry.body

    def _limit(self, verdict: int, slip: bytes) -> bytes | None:
        if verdict == DROP:
            self.tally.counts[self._limited["drop"]] += 1
            return None
        self.tally.counts[self._limited["slip"]] += 1
        return slip

    # -- the full path ---------------------------------------------------------

    def handle(self, data: bytes, addr: tuple, tcp: bool) -> bytes | None:
        """Answer one query (any bytes at all); None means send nothing."""
        transport = "tcp" if tcp else "udp"
        try:
            query = message.parse(data)
        except Drop:
            self.tally.counts[self._dropped] += 1
            return None
        except FormErr as e:
            opcode = (data[2] >> 3) & 0xF
            rcode = RCODE.NOTIMP if opcode else RCODE.FORMERR
            opt = build_opt() if e.opt else b""
            return self._error(data, rcode, transport, e.question, opt)
        if query.opcode != 0:
            return self._error(data, RCODE.NOTIMP, transport, query.question, self._opt(query))
        edns = query.edns
        if edns is not None and edns.version > 0:
            return self._error(data, BADVERS, transport, query.question,
                               build_opt(ext_rcode=BADVERS >> 4))
        cookie, verified, ckey = b"", False, None
        if edns is not None and edns.cookie is not None:
            cookie = option(OPT_COOKIE, self.cookies.make(edns.cookie[:8], addr[0]))
            verified = self.cookies.valid(edns.cookie, addr[0])
            if not tcp:
                ckey = (query.flags, query.question, edns.udp_size, edns.do, edns.ecs,
                        edns.nsid)
                hit = self.cookie_cache.get(ckey)
                if hit is not None:
                    prefix, options, entry = hit
                    opt = build_opt(options + cookie, do=edns.do)
                    return self._account(entry, data[:2] + prefix + opt, addr, verified,
                                         query, opt)
        options = option(OPT_NSID, self.nsid) if edns is not None and edns.nsid else b""
        if not query.question:  # RFC 7873 §5.4: a cookie-only query
            return self._error(data, RCODE.NOERROR, transport, b"",
                               self._opt(query, options + cookie))
        ans, zone = self._resolve(query, addr)
        if edns is not None and edns.ecs is not None:
            options += edns.ecs.option(ans.scope)
        opt = self._opt(query, options + cookie)
        limit = 65535 if tcp else min(edns.udp_size, OUR_UDP_SIZE) if edns else 512
        response = message.encode(query, ans, opt, limit)
        tc = bool(response[2] & 0x02)
        qtype = str(QTYPE.get(query.qtype))
        ecs = edns is not None and edns.ecs is not None
        entry = Entry(response[2:], self.tally.query_slot(transport, qtype,
                                                          str(RCODE.get(ans.rcode)), tc, ecs,
                                                          ans.picks),
                      self._kind(query, ans, zone))
        if ckey is not None:
            if not ans.dynamic:  # the same bytes for every client, but for the cookie
                self._bounded(self.cookie_cache)[ckey] = (response[2 : len(response) - len(opt)],
                                                          options, entry)
        elif not tcp:
            entry.slip = message.encode(query, Answer(rcode=ans.rcode, aa=ans.aa), opt, 0)[2:]
            # ECS with SOURCE 0 asks us not to use it: the source decides, as without ECS
            by_ecs = edns is not None and edns.ecs is not None and edns.ecs.source > 0
            self._store(data, addr, entry, ans, zone, by_ecs)
        return self._account(entry, response, addr, tcp or verified, query, opt)

    def _account(self, entry: Entry, response: bytes, addr: tuple, exempt: bool,
                 query: Query, opt: bytes) -> bytes | None:
        """Count a full-path response and apply RRL (TCP and proven sources exempt)."""
        self.tally.counts[entry.slot] += 1
        if self.rrl is None or exempt:
            return response
        verdict = self.rrl.check(addr[0], entry.kind)
        if verdict == SEND:
            return response
        slip = Answer(rcode=response[3] & 0x0F, aa=bool(response[2] & 0x04))
        return self._limit(verdict, message.encode(query, slip, opt, 0))

    @staticmethod
    def _bounded(cache: dict) -> dict:
        if len(cache) >= MAX_ENTRIES:
            cache.clear()
        return cache

    def _resolve(self, query: Query, addr: tuple) -> tuple[Answer, Zone | None]:
        if query.qclass == CLASS.CH:
            if query.qname in CHAOS_NAMES and query.qtype in (QTYPE.TXT, QTYPE.ANY):
                txt = RRset(query.qname, QTYPE.TXT, 0, [TXT(self.nsid)], CLASS.CH)
                return Answer(answer=[txt]), None
            return Answer(rcode=RCODE.REFUSED, aa=False, kind="error"), None
        zone = find_zone(self.zones, query.qname)
        if query.qclass not in (CLASS.IN, CLASS_ANY) or zone is None:
            return Answer(rcode=RCODE.REFUSED, aa=False, kind="error"), None
        if query.qtype in NO_TRANSFER:
            return Answer(rcode=RCODE.REFUSED, aa=False, kind="error"), zone
        if query.qtype == QTYPE.OPT:
            return Answer(rcode=RCODE.FORMERR, aa=False, kind="error"), zone
        ecs = query.edns.ecs if query.edns is not None else None
        client = Client(ipaddress.ip_address(addr[0].split("%")[0]),
                        ecs.network if ecs is not None and ecs.source > 0 else None)
        return zone.resolve(query.qname, query.qtype, client), zone

    def _kind(self, query: Query, ans: Answer, zone: Zone | None) -> str:
        if ans.kind == "nxdomain" and zone is not None:
            return "nxdomain " + zone.origin
        if ans.kind == "referral":
            return "referral " + ans.authority[0].owner
        if ans.kind == "error":
            return "error"
        return f"{ans.kind} {query.qname} {query.qtype}"

    def _store(self, data: bytes, addr: tuple, entry: Entry, ans: Answer, zone: Zone | None,
               ecs: bool) -> None:
        key = data[2:]
        if ans.dynamic and zone is not None and zone.steering is not None:
            by_source = not ecs or ans.by_source or self.markers.get(key, False)
            self._bounded(self.markers)[key] = by_source
            self._bounded(self.pool_cache)[(key, netkey(addr[0]) if by_source else "")] = (
                entry.body, entry.slot, entry, zone.steering.generation, zone.steering)
        else:
            self._bounded(self.cache)[key] = (entry.body, entry.slot, entry)

    def _opt(self, query: Query, options: bytes = b"") -> bytes:
        if query.edns is None:
            return b""
        return build_opt(options, do=query.edns.do)

    def _error(self, data: bytes, rcode: int, transport: str, question: bytes,
               opt: bytes) -> bytes:
        qtype = "none"
        if question:
            qtype = QTYPE.get(int.from_bytes(question[-4:-2], "big"))
        name = "BADVERS" if rcode == BADVERS else RCODE.get(rcode)
        self.tally.counts[self.tally.query_slot(transport, str(qtype), str(name), False,
                                                False)] += 1
        return message.error(data, rcode, question, opt)
