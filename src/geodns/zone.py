"""A loaded zone and the RFC 1034 §4.3.2 lookup over it.

`Zone.resolve()` turns (qname, qtype, client) into an `Answer`: the RRsets of each
section, the rcode and the AA bit. It covers exact matches, in-zone CNAME chains,
delegations (referral with glue, AA clear), empty non-terminals (NODATA), wildcards
(RFC 4592), negative answers with the SOA (RFC 2308), ANY (RFC 8482: one RRset, never
an empty answer) and pool-bound names, whose addresses come from the zone's steering.
The server turns an Answer into wire bytes and caches them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

from dnslib import AAAA, CNAME, QTYPE, RCODE, RD, TXT, A, DNSLabel
from dnslib.label import DNSBuffer

from geodns.names import descent, is_subdomain, parent, wire_labels
from geodns.records import ADDITIONAL_TYPES, Rdata, target
from geodns.steering import EXPLAIN_LABEL, Client, ZoneSteering

MAX_CHAIN = 8  # CNAME hops followed inside a zone
_HEAD = struct.Struct("!HHI")  # a packed node's type, class and TTL (see `packed`)
ANY_PREFERENCE = [QTYPE.A, QTYPE.AAAA, QTYPE.MX, QTYPE.TXT, QTYPE.SRV, QTYPE.CAA,
                  QTYPE.PTR, QTYPE.NS, QTYPE.SOA]


class HINFO(RD):
    """HINFO rdata, used only for the RFC 8482 synthesized answer to ANY."""

    def __init__(self, cpu: bytes, os: bytes) -> None:
        self.cpu, self.os = cpu, os

    def pack(self, buffer: DNSBuffer) -> None:
        for s in (self.cpu, self.os):
            buffer.pack("!B", len(s))
            buffer.append(s)

    def __repr__(self) -> str:
        return f'"{self.cpu.decode()}" "{self.os.decode()}"'


class Node(Protocol):
    """A name's static data by type: a dict, or one RRset standing for a dict of itself
    (most names of a big zone hold one RRset; that saves a dict per name)."""

    def get(self, rtype: int, default: None = None) -> RRset | None: ...
    def __getitem__(self, rtype: int) -> RRset: ...
    def __contains__(self, rtype: object) -> bool: ...
    def __len__(self) -> int: ...
    def values(self) -> Iterable[RRset]: ...


@dataclass(slots=True)
class RRset:
    owner: str
    rtype: int
    ttl: int
    rdata: Sequence[Rdata]
    rclass: int = 1

    # -- as a Node holding only this RRset -------------------------------------

    def get(self, rtype: int, default: None = None) -> RRset | None:
        return self if rtype == self.rtype else default

    def __getitem__(self, rtype: int) -> RRset:
        if rtype != self.rtype:
            raise KeyError(rtype)
        return self

    def __contains__(self, rtype: object) -> bool:
        return rtype == self.rtype

    def __len__(self) -> int:
        return 1

    def values(self) -> tuple[RRset]:
        return (self,)

    def pack(self, buf: DNSBuffer) -> int:
        """Append the RRset's records (owner names compressed); return their count."""
        owner = DNSLabel(wire_labels(self.owner))  # not dnslib's text form: no IDNA
        for rd in self.rdata:
            buf.encode_name(owner)
            buf.pack("!HHIH", self.rtype, self.rclass, self.ttl, 0)
            start = buf.offset
            if isinstance(rd, bytes):
                buf.append(rd)
            else:
                rd.pack(buf)
            buf.update(start - 2, "!H", buf.offset - start)
        return len(self.rdata)

    def renamed(self, owner: str) -> RRset:
        if owner == self.owner:
            return self
        return RRset(owner, self.rtype, self.ttl, self.rdata, self.rclass)


def packed(rrset: RRset) -> bytes | None:
    """A node of this one RRset, in the least memory, when its data is all wire octets
    (A, AAAA, TXT, CAA): its type, class, TTL, then each record's data after its length
    (2 octets each). About 40 octets for one A record, where the RRset, a tuple and the
    data take 160: most names of a big zone are stored so."""
    if not all(isinstance(rd, bytes) for rd in rrset.rdata):
        return None
    return _HEAD.pack(rrset.rtype, rrset.rclass, rrset.ttl) + b"".join(
        len(rd).to_bytes(2, "big") + rd for rd in cast(Sequence[bytes], rrset.rdata))


def pack_one(rtype: int, ttl: int, rd: bytes, rclass: int = 1) -> bytes:
    """`packed` for a name of one record (`rd`: its wire octets), made at once: the zone
    loader stores a big zone's common `{A: address}` name so."""
    return _HEAD.pack(rtype, rclass, ttl) + len(rd).to_bytes(2, "big") + rd


def unpacked(owner: str, data: bytes) -> RRset:
    rtype, rclass, ttl = _HEAD.unpack_from(data)
    rdata, i = [], 8
    while i < len(data):
        end = i + 2 + int.from_bytes(data[i : i + 2], "big")
        rdata.append(data[i + 2 : end])
        i = end
    return RRset(owner, rtype, ttl, tuple(rdata), rclass)


@dataclass(slots=True)
class Answer:
    rcode: int = RCODE.NOERROR
    aa: bool = True
    answer: list[RRset] = field(default_factory=list)
    authority: list[RRset] = field(default_factory=list)
    additional: list[RRset] = field(default_factory=list)
    glue_required: bool = False  # referral glue: set TC rather than drop it (RFC 9471)
    dynamic: bool = False  # a pool chose (part of) the answer: it depends on the client
    scope: int = 0  # ECS scope prefix length for the response
    by_source: bool = False  # steering located the client by the packet's source
    kind: str = "answer"  # answer, nodata, nxdomain, referral (for RRL and metrics)
    picks: tuple[tuple[str, str, str], ...] = ()  # (pool, member, client region) answered


@dataclass
class Zone:
    origin: str  # lowercase absolute, e.g. "cdn.example."
    path: str
    soa: RRset
    nodes: dict[str, Node | bytes]  # owner -> type -> RRset (static data), or `packed`
    pools: dict[str, str]  # owner -> pool name
    steering: ZoneSteering | None = None
    empty: set[str] = field(init=False)  # empty non-terminals (names only above others)
    cuts: set[str] = field(init=False)  # delegation points below the apex

    def __post_init__(self) -> None:
        apex = self.node(self.origin)
        self.nodes[self.origin] = {**{r.rtype: r for r in (apex.values() if apex else ())},
                                   QTYPE.SOA: self.soa}
        self.empty = set()
        for owner in [*self.nodes, *self.pools]:
            name = parent(owner) if owner != self.origin else self.origin
            while not self._exists(name):
                self.empty.add(name)
                name = parent(name)
        self.cuts = {n for n, node in self.nodes.items()
                     if not isinstance(node, bytes) and QTYPE.NS in node and n != self.origin}
        minimum = cast(RD, self.soa.rdata[0]).times[4]
        self.negative = RRset(self.origin, QTYPE.SOA, min(self.soa.ttl, minimum), self.soa.rdata)

    def node(self, name: str) -> Node | None:
        """The static data of `name` (None if it holds none)."""
        node = self.nodes.get(name)
        return unpacked(name, node) if isinstance(node, bytes) else node

    @property
    def serial(self) -> int:
        return cast(RD, self.soa.rdata[0]).times[0]

    def resolve(self, qname: str, qtype: int, client: Client) -> Answer:
        ans = Answer()
        if qtype == QTYPE.TXT and qname.startswith(EXPLAIN_LABEL) and self.steering is not None:
            pool = self.pools.get(qname[len(EXPLAIN_LABEL):])
            if pool is not None:
                if self.steering.explain_allowed(client):
                    return self._explain(qname, pool, client)
                # Not for this client: the name does not exist. The answer depends on the
                # source, so the server caches it per source network.
                ans.dynamic = ans.by_source = True
        name, seen = qname, {qname}
        for _ in range(MAX_CHAIN):
            cut = self._cut(name, qtype)
            if cut is not None:
                self._referral(ans, cut)
                return ans
            node, source = self._node(name)
            if node is None:
                return self._negative(ans, RCODE.NXDOMAIN)
            pool = self.pools.get(source) if source else None
            cname = node.get(QTYPE.CNAME)
            if cname is not None and qtype != QTYPE.CNAME:
                ans.answer.append(cname.renamed(name))
                nxt = str(cast(RD, cname.rdata[0]).label).lower()
            elif pool is not None and qtype in (QTYPE.A, QTYPE.AAAA, QTYPE.ANY):
                if client.ecs is not None and ans.answer:
                    # Under ECS the response's scope covers every record in it: a chain
                    # stops before the link that depends on the client, so the static
                    # links are cached for everyone and only the pool's answer is scoped
                    # (the resolver asks for the CNAME target on its own).
                    return ans
                found = self._pool(ans, name, pool, qtype, client)
                if found is None or client.ecs is not None:  # (the fallback CNAME alone)
                    return ans
                nxt = found
            else:
                rrset = self._pick_any(node) if qtype == QTYPE.ANY else node.get(qtype)
                if rrset is None:
                    return self._negative(ans, RCODE.NOERROR)
                ans.answer.append(rrset.renamed(name))
                self._additional(ans, rrset)
                return ans
            if not is_subdomain(nxt, self.origin) or nxt in seen:
                return ans
            seen.add(nxt)
            name = nxt
        return ans

    def sole_rrset(self, qname: str, qtype: int) -> RRset | None:
        """The RRset that is the whole answer to (qname, qtype) when nothing else in the
        zone takes part (no delegation, CNAME, wildcard, pool, glue or ANY choice), as
        `resolve()` gives it; else None. Equal sole RRsets in two zone sets give equal
        answers, so a cached answer can outlive a reload that left its RRset alone."""
        if qtype == QTYPE.ANY or qtype in ADDITIONAL_TYPES or qname in self.pools:
            return None
        if qtype == QTYPE.TXT and qname.startswith(EXPLAIN_LABEL):
            return None
        node = self.node(qname)
        if node is None or (qtype != QTYPE.CNAME and QTYPE.CNAME in node):
            return None
        if self._cut(qname, qtype) is not None:
            return None
        return node.get(qtype)

    # -- steps of resolve() --------------------------------------------------------

    def _exists(self, name: str) -> bool:
        return name in self.nodes or name in self.pools or name in self.empty

    def _cut(self, name: str, qtype: int) -> str | None:
        if not self.cuts:
            return None
        for n in descent(name, self.origin):
            if n in self.cuts and not (n == name and qtype == QTYPE.DS):
                return n
        return None

    def _node(self, name: str) -> tuple[Node | None, str | None]:
        """The node answering for `name` and its source owner (the wildcard when
        synthesized); an empty node for an empty non-terminal; None when it does
        not exist."""
        node = self.node(name)
        if node is not None or name in self.pools:
            return node or {}, name
        if name in self.empty:
            return {}, None
        encloser = parent(name)
        while not self._exists(encloser):
            encloser = parent(encloser)
        wildcard = "*." + encloser
        if wildcard in self.nodes or wildcard in self.pools:
            return self.node(wildcard) or {}, wildcard
        return None, None

    def _negative(self, ans: Answer, rcode: int) -> Answer:
        ans.rcode = rcode
        ans.kind = "nxdomain" if rcode == RCODE.NXDOMAIN else "nodata"
        ans.authority = [self.negative]
        return ans

    def _referral(self, ans: Answer, cut: str) -> None:
        ns = cast(Node, self.node(cut))[QTYPE.NS]
        if not ans.answer:
            ans.aa = False
            ans.kind = "referral"
        ans.authority.append(ns)
        ans.glue_required = True
        self._additional(ans, ns)

    def _additional(self, ans: Answer, rrset: RRset) -> None:
        if rrset.rtype not in ADDITIONAL_TYPES:
            return
        for rd in rrset.rdata:
            host = target(rrset.rtype, rd)
            node = self.node(host) if host else None
            if node is None:
                continue
            for rtype in (QTYPE.A, QTYPE.AAAA):
                glue = node.get(rtype)
                if glue is not None and glue not in ans.additional:
                    ans.additional.append(glue)

    def _pick_any(self, node: Node) -> RRset | None:
        if not node:
            return None
        for rtype in ANY_PREFERENCE:
            if rtype in node:
                return node[rtype]
        return next(iter(node.values()))

    def _explain(self, qname: str, pool: str, client: Client) -> Answer:
        """`_explain.NAME TXT`: geo steering's decision for NAME and this client, as
        text (TTL 0; cached by the server per client network, like pool answers)."""
        assert self.steering is not None
        strings, scope = self.steering.explain_txt(qname[len(EXPLAIN_LABEL):], pool, client)
        txt = RRset(qname, QTYPE.TXT, 0, [TXT(strings)])
        return Answer(answer=[txt], dynamic=True, by_source=True, scope=scope)

    def _pool(self, ans: Answer, name: str, pool: str, qtype: int, client: Client) -> str | None:
        """Add the pool's answer; return a CNAME target to follow, or None when done."""
        assert self.steering is not None
        ans.dynamic = True
        families = ["A", "AAAA"] if qtype == QTYPE.ANY else [QTYPE.get(qtype)]
        for family in families:
            pa = self.steering.answer(pool, family, client)
            if pa.settling:  # the steering decision: states not settled, resolvers retry
                ans.rcode, ans.kind = RCODE.SERVFAIL, "error"
                return None
            ans.picks += tuple((pool, member, pa.region) for member in pa.picked)
            ans.scope = max(ans.scope, pa.scope)
            ans.by_source = ans.by_source or pa.by_source
            if pa.cname:
                ans.answer.append(RRset(name, QTYPE.CNAME, pa.ttl, [CNAME(pa.cname)]))
                return pa.cname.lower()
            if pa.addresses:
                rd = A if family == "A" else AAAA
                rtype = QTYPE.A if family == "A" else QTYPE.AAAA
                ans.answer.append(RRset(name, rtype, pa.ttl, [rd(a) for a in pa.addresses]))
                return None
        if qtype == QTYPE.ANY:
            ans.answer.append(RRset(name, QTYPE.HINFO, 3600, [HINFO(b"RFC8482", b"")]))
            return None
        self._negative(ans, RCODE.NOERROR)
        return None
