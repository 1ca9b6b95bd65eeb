"""From query bytes to response bytes: the answer caches, then the full path.

Hot path (`UDPProtocol.datagram_received`): the query bytes after the 2-octet ID
(flags, question in its letter case, OPT with its options) are the key of a dict of
response bytes after the ID; a hit is an ID patch and a send. Otherwise `Engine.udp()`
tries the query's cache key with the cookie, padding and unknown options cut out
(`geodns.cachekey`), and only then `Engine.handle()` parses strictly, answers errors,
CHAOS, cookies and NSID, resolves in the zone, encodes, and fills the caches.

Two `AnswerCache`s: `plain` for queries without a cookie (the hot path reads it), and
`cookied`, whose keys end with the cookie option's header and whose responses lack
the cookie option's value (the client cookie and a fresh server cookie, appended per
query). Each holds

* `static`: static answers (and REFUSED), by key;
* `markers`: the keys of pool-bound names, saying whether their answers are keyed on
  the source network too: always without ECS, and with ECS when steering located the
  client by its source (`PoolAnswer.by_source`);
* `pools`: pool answers by (key, the source's /24 or /56, or "" when the ECS option
  in the key decides), with the steering `generation` they were computed at; an entry
  of an older generation is recomputed.

Admission and memory: an answer is cached on its key's second sighting
(`Doorkeeper`), so queries seen once (random names, fuzz) neither enter nor flush the
caches. Every entry is charged its key and response octets plus `ENTRY_OVERHEAD`;
negative answers (NXDOMAIN, NODATA, errors) may take `1/NEGATIVE_SHARE` of the budget,
past which only they are dropped; past `max_bytes` (`--answer-cache`) both caches are
emptied and fill again.

Reload: pool answers and every answer that depends on more than one RRset are
forgotten. A static answer made from one RRset alone (`Zone.sole_rrset`: most names of
a big zone) is set aside in `previous`; its first query after the reload checks that
the new zones hold an equal RRset for that name and type, and if so puts it back in
the cache (counted as kept), else answers afresh. So a reload does not make every
name's answer be worked out again at once, and a changed name is never answered with
its old data.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from dnslib import CLASS, QTYPE, RCODE, TXT

from geodns import message
from geodns.cachekey import canonical, cookie_tail
from geodns.cookies import CookieJar
from geodns.edns import OPT_COOKIE, OPT_NSID, OUR_UDP_SIZE, build_opt, option
from geodns.message import Drop, FormErr, Query, Unsigned
from geodns.metrics import Tally, qtype_label
from geodns.names import find_zone
from geodns.rrl import DROP, SEND, RateLimiter
from geodns.steering import Client, ZoneSteering
from geodns.zone import Answer, RRset, Zone

DEFAULT_CACHE_BYTES = 64 * 2**20
ENTRY_OVERHEAD = 400  # octets an entry costs beyond its key and response (objects, slots)
NEGATIVE_SHARE = 8  # negative answers may take 1/8 of the budget
NEGATIVE_KINDS = frozenset({"nxdomain", "nodata", "error"})
COOKIE_MEMO = 4096  # server cookies kept for reuse within the second, at most
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
    source: RRset | None = None  # the one RRset the answer is made of (Zone.sole_rrset)


class Doorkeeper:
    """Which keys were seen lately, approximately: `2**bits` flags in a bytearray
    (512 KiB for 22), two of them set per key from its hash. After `window` keys all
    flags are cleared; until then a key seen once is mistaken for a known one with a
    chance below (2 * window / 2**bits)**2 (1/256 with the defaults)."""

    def __init__(self, bits: int = 22, window: int = 1 << 17) -> None:
        self.bits = bits
        self.window = window
        self.flags = bytearray(1 << (bits - 3))
        self.marked = 0

    def admit(self, key: bytes) -> bool:
        """True when `key` was seen before (since the last clearing); else remember it."""
        h = hash(key)
        mask = (1 << self.bits) - 1
        a, b = h & mask, (h >> self.bits) & mask
        flags = self.flags
        if flags[a >> 3] >> (a & 7) & 1 and flags[b >> 3] >> (b & 7) & 1:
            return True
        if self.marked >= self.window:
            self.flags = flags = bytearray(len(flags))
            self.marked = 0
        flags[a >> 3] |= 1 << (a & 7)
        flags[b >> 3] |= 1 << (b & 7)
        self.marked += 1
        return False


class AnswerCache:
    """Responses by query key (see the module docstring); the dicts are the same
    objects for the server's life (emptied, never replaced: the protocol holds them)."""

    def __init__(self) -> None:
        self.static: dict[bytes, tuple[bytes, int, Entry]] = {}
        self.markers: dict[bytes, bool] = {}  # pool-bound key -> keyed on the source too
        self.pools: dict[tuple[bytes, str], tuple[bytes, int, Entry, int, ZoneSteering]] = {}
        self.negative: list[bytes] = []  # the keys in `static` of negative answers
        # static answers of one RRset cached before the last reload, not yet asked again
        self.previous: dict[bytes, tuple[bytes, int, Entry]] = {}

    def get(self, key: bytes, ip: str) -> Entry | None:
        hit = self.static.get(key)
        if hit is not None:
            return hit[2]
        by_source = self.markers.get(key)
        if by_source is None:
            return None
        pool_hit = self.pools.get((key, netkey(ip) if by_source else ""))
        if pool_hit is None or pool_hit[3] != pool_hit[4].generation:
            return None
        return pool_hit[2]

    def put(self, key: bytes, ip: str, entry: Entry, ans: Answer, zone: Zone | None,
            ecs: bool) -> bool:
        """Keep a response; `ecs`: the query's ECS option decides (SOURCE > 0). True
        when it was kept as a negative answer."""
        if ans.dynamic and zone is not None and zone.steering is not None:
            by_source = not ecs or ans.by_source or self.markers.get(key, False)
            self.markers[key] = by_source
            self.pools[(key, netkey(ip) if by_source else "")] = (
                entry.body, entry.slot, entry, zone.steering.generation, zone.steering)
            return False
        self.static[key] = (entry.body, entry.slot, entry)
        if ans.kind in NEGATIVE_KINDS:
            self.negative.append(key)
            return True
        return False

    def drop_negative(self) -> None:
        """Forget the negative answers (their keys, if cached again, are appended again)."""
        static = self.static
        for key in self.negative:
            static.pop(key, None)
        self.negative.clear()

    def clear(self) -> None:
        for d in (self.static, self.markers, self.pools, self.previous):
            d.clear()
        self.negative.clear()

    def set_aside(self) -> None:
        """At a reload: answers of one RRset wait in `previous`; the rest is forgotten
        (negative answers among them: never of one RRset)."""
        self.previous = {k: hit for k, hit in self.static.items() if hit[2].source}
        for d in (self.static, self.markers, self.pools):
            d.clear()
        self.negative.clear()


def entry_cost(key: bytes, entry: Entry) -> int:
    """What a cached answer is charged against the budget (`--answer-cache`)."""
    return len(key) + len(entry.body) + len(entry.slip) + ENTRY_OVERHEAD


class Engine:
    def __init__(self, nsid: bytes, cookies: CookieJar, rrl: RateLimiter | None,
                 tally: Tally, max_cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.zones: dict[str, Zone] = {}
        self.nsid = nsid
        self.cookies = cookies
        self.rrl = rrl
        self.tally = tally
        self.plain = AnswerCache()
        self.cookied = AnswerCache()
        self.max_cache_bytes = max_cache_bytes
        self.cache_bytes = 0  # charged since the caches were last emptied
        self.negative_bytes = 0  # of which to negative answers
        self.doorkeeper = Doorkeeper()
        # (client cookie, address) -> the cookie option's value sent back, this second
        self.cookie_memo: dict[tuple[bytes, str], bytes] = {}
        self._dropped = tally.index(("dropped",))
        self._kept = tally.index(("kept",))
        self._limited = {a: tally.index(("limited", a)) for a in ("drop", "slip")}

    def set_zones(self, zones: dict[str, Zone]) -> None:
        """Swap in a new zone set (one assignment); cached answers of one RRset are set
        aside until asked again (`_kept`), the others forgotten. The budget is charged
        for the entries set aside only: they still take memory, the others are freed."""
        self.zones = zones
        self.plain.set_aside()
        self.cookied.set_aside()
        self.cache_bytes = sum(entry_cost(key, hit[2]) for cache in (self.plain, self.cookied)
                               for key, hit in cache.previous.items())
        self.negative_bytes = 0

    def _still_valid(self, cache: AnswerCache, key: bytes) -> Entry | None:
        """The answer cached under `key` before the last reload, if the zones now hold
        an equal RRset for it; back in the cache then."""
        hit = cache.previous.pop(key, None) if cache.previous else None
        source = hit[2].source if hit is not None else None
        if hit is None or source is None:
            return None
        zone = find_zone(self.zones, source.owner)
        now = zone.sole_rrset(source.owner, source.rtype) if zone is not None else None
        if now is None or now != source:
            self.cache_bytes -= entry_cost(key, hit[2])  # freed now
            return None
        hit[2].source = now  # not the old zone's RRset: that is freed with its zone
        cache.static[key] = hit
        self.tally.counts[self._kept] += 1
        return hit[2]

    def _empty_caches(self) -> None:
        self.plain.clear()
        self.cookied.clear()
        self.cache_bytes = self.negative_bytes = 0

    def new_second(self) -> None:
        """Called once a second: server cookies made from now on carry the new time."""
        self.cookie_memo.clear()

    def cookie_value(self, cookie: bytes, ip: str) -> bytes:
        """The cookie option's value for a response: the client cookie and our server
        cookie (RFC 9018), made once per client cookie, address and second."""
        key = (cookie[:8], ip)
        value = self.cookie_memo.get(key)
        if value is None:
            if len(self.cookie_memo) >= COOKIE_MEMO:
                self.cookie_memo.clear()
            value = self.cookie_memo[key] = self.cookies.make(key[0], ip)
        return value

    # -- UDP entry point -------------------------------------------------------

    def udp(self, data: bytes, addr: tuple) -> bytes | None:
        """A UDP query the protocol's own fast path did not answer (or every query
        when rate limiting is on)."""
        key = data[2:]
        entry = self.plain.get(key, addr[0]) or self._still_valid(self.plain, key)
        if entry is not None:
            return self._send(entry, data, addr, None)
        for keyed in (cookie_tail, canonical):  # the quick form, then any shape
            found = keyed(data)
            if found is not None:
                key, cookie = found
                cache = self.plain if cookie is None else self.cookied
                entry = cache.get(key, addr[0]) or self._still_valid(cache, key)
                if entry is not None:
                    return self._send(entry, data, addr, cookie)
        return self.handle(data, addr, tcp=False)

    def _send(self, entry: Entry, data: bytes, addr: tuple,
              cookie: bytes | None) -> bytes | None:
        """A cached response; with a cookie, the cookie option's value is appended
        (the response's last octets)."""
        self.tally.counts[entry.slot] += 1
        value = b"" if cookie is None else self.cookie_value(cookie, addr[0])
        if self.rrl is not None and not (cookie and self.cookies.valid(cookie, addr[0])):
            verdict = self.rrl.check(addr[0], entry.kind)
            if verdict != SEND:
                return self._limit(verdict, data[:2] + entry.slip + value)
        return data[:2] + entry.body + value

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
            if isinstance(e, Unsigned) and not opcode:
                return self._error(data, RCODE.NOTAUTH, transport, e.question, opt, e.tsig)
            return self._error(data, rcode, transport, e.question, opt)
        if query.opcode != 0:
            return self._error(data, RCODE.NOTIMP, transport, query.question, self._opt(query))
        edns = query.edns
        if edns is not None and edns.version > 0:
            return self._error(data, BADVERS, transport, query.question,
                               build_opt(ext_rcode=BADVERS >> 4, do=edns.do))
        cookie, value, verified = b"", b"", False
        if edns is not None and edns.cookie is not None:
            value = self.cookie_value(edns.cookie, addr[0])
            cookie = option(OPT_COOKIE, value)  # the last option: cached without `value`
            verified = self.cookies.valid(edns.cookie, addr[0])
        options = option(OPT_NSID, self.nsid) if edns and edns.nsid and self.nsid else b""
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
        qtype = qtype_label(query.qtype)
        ecs = edns is not None and edns.ecs is not None
        entry = Entry(response[2:], self.tally.query_slot(transport, qtype,
                                                          str(RCODE.get(ans.rcode)), tc, ecs,
                                                          ans.picks),
                      self._kind(query, ans, zone), source=self._source(query, ans, zone))
        if not tcp:
            slip = message.encode(query, Answer(rcode=ans.rcode, aa=ans.aa), opt, 0)
            # ECS with SOURCE 0 asks us not to use it: the source decides, as without ECS
            by_ecs = edns is not None and edns.ecs is not None and edns.ecs.source > 0
            self._store(data, addr, response, slip, len(value), entry, ans, zone, by_ecs)
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

    def _resolve(self, query: Query, addr: tuple) -> tuple[Answer, Zone | None]:
        if query.qclass == CLASS.CH:
            if self.nsid and query.qname in CHAOS_NAMES and query.qtype in (QTYPE.TXT,
                                                                            QTYPE.ANY):
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

    def _source(self, query: Query, ans: Answer, zone: Zone | None) -> RRset | None:
        """The RRset the answer is made of, when it is all of it (see `_still_valid`)."""
        if zone is None or len(ans.answer) != 1 or ans.dynamic:
            return None
        sole = zone.sole_rrset(query.qname, query.qtype)
        return sole if sole == ans.answer[0] else None

    def _kind(self, query: Query, ans: Answer, zone: Zone | None) -> str:
        if ans.kind == "nxdomain" and zone is not None:
            return "nxdomain " + zone.origin
        if ans.kind == "referral":
            return "referral " + ans.authority[0].owner
        if ans.kind == "error":
            return "error"
        return f"{ans.kind} {query.qname} {query.qtype}"

    def _store(self, data: bytes, addr: tuple, response: bytes, slip: bytes, cut: int,
               entry: Entry, ans: Answer, zone: Zone | None, ecs: bool) -> None:
        """Cache a UDP response under the query's key; `cut`: the length of the cookie
        option's value that ends `response` and `slip` (0 without a cookie)."""
        found = canonical(data)
        key, cookie = found if found is not None else (data[2:], None)
        if (cookie is None) != (cut == 0):
            return  # not the shape `canonical` reads: left to the full path
        if not self.doorkeeper.admit(key):
            return  # seen once: cached if it comes again
        entry.body = response[2 : len(response) - cut]
        entry.slip = slip[2 : len(slip) - cut]
        cost = entry_cost(key, entry)
        if self.cache_bytes + cost > self.max_cache_bytes:
            self._empty_caches()
        self.cache_bytes += cost
        if (self.plain if cookie is None else self.cookied).put(key, addr[0], entry, ans,
                                                                zone, ecs):
            self.negative_bytes += cost
            if self.negative_bytes > self.max_cache_bytes // NEGATIVE_SHARE:
                self.plain.drop_negative()
                self.cookied.drop_negative()
                self.cache_bytes -= self.negative_bytes
                self.negative_bytes = 0

    def _opt(self, query: Query, options: bytes = b"") -> bytes:
        if query.edns is None:
            return b""
        return build_opt(options, do=query.edns.do)

    def _error(self, data: bytes, rcode: int, transport: str, question: bytes,
               opt: bytes, tsig: bytes = b"") -> bytes:
        qtype = "none"
        if question:
            qtype = qtype_label(int.from_bytes(question[-4:-2], "big"))
        name = "BADVERS" if rcode == BADVERS else RCODE.get(rcode)
        self.tally.counts[self.tally.query_slot(transport, qtype, str(name), False,
                                                False)] += 1
        return message.error(data, rcode, question, opt, tsig)
