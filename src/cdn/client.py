"""What a real client does: resolve the steered name through our DNS server, then call
the edge it was given.

The client can pose as a host at a loopback address (`source`, the query and the HTTP
connection are bound to it, so the DNS server sees that address) or as a resolver
forwarding a client network (`ecs`, an EDNS Client Subnet option, RFC 7871).
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import aiohttp
import dns.asyncquery
import dns.edns
import dns.message
import dns.rcode
import dns.rdatatype

from cdn.errors import CdnError


class ResolveError(CdnError):
    """The DNS server gave no usable address for the name."""


@dataclass(frozen=True)
class Resolution:
    addresses: tuple[str, ...]
    ttl: int
    scope: int | None  # ECS scope prefix length of the answer, when ECS was sent
    elapsed_ms: float


@dataclass
class EdgeReply:
    address: str
    status: int
    body: dict
    connect_ms: float  # TCP connect (0 when a pooled connection was reused)
    request_ms: float  # connect + request + response
    tier: str  # the edge's cache tier: l1, l2, upstream/..., compute

    @property
    def region(self) -> str:
        """The answering node's region (KServe v2 answers carry it in `parameters`)."""
        params = self.body.get("parameters") or {}
        return str(self.body.get("region") or params.get("region") or "?")

    @property
    def prediction(self) -> list | float | None:
        if "prediction" in self.body:
            return self.body["prediction"]
        outputs = self.body.get("outputs") or [{}]
        return outputs[0].get("data")


async def resolve(
    name: str,
    server: tuple[str, int],
    source: str | None = None,
    ecs: str | None = None,
    timeout: float = 2.0,
) -> Resolution:
    """A query for `name` A, over UDP with TCP fallback on truncation."""
    options: list[dns.edns.Option] = []
    if ecs:
        net = ipaddress.ip_network(ecs, strict=False)
        options.append(dns.edns.ECSOption(str(net.network_address), net.prefixlen))
    query = dns.message.make_query(name, "A", use_edns=0, options=options)
    started = time.perf_counter()
    response, _ = await dns.asyncquery.udp_with_fallback(
        query, server[0], timeout=timeout, port=server[1], source=source
    )
    elapsed = (time.perf_counter() - started) * 1000
    if response.rcode() != dns.rcode.NOERROR:
        raise ResolveError(f"{name}: {dns.rcode.to_text(response.rcode())}")
    addresses = tuple(
        rd.address
        for rrset in response.answer
        if rrset.rdtype == dns.rdatatype.A
        for rd in rrset
    )
    if not addresses:
        raise ResolveError(f"{name}: no A record in the answer")
    ttl = min(r.ttl for r in response.answer if r.rdtype == dns.rdatatype.A)
    scope = next(
        (o.scopelen for o in response.options if isinstance(o, dns.edns.ECSOption)), None
    )
    return Resolution(addresses, ttl, scope, elapsed)


@dataclass
class EdgeClient:
    """HTTP calls to edges, one connection pool per client identity (source address)."""

    port: int = 8000
    source: str | None = None
    timeout: float = 5.0
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)
    _connect_ms: float = field(default=0.0, repr=False)

    async def __aenter__(self) -> EdgeClient:
        trace = aiohttp.TraceConfig()
        trace.on_connection_create_start.append(self._connect_start)
        trace.on_connection_create_end.append(self._connect_end)
        connector = aiohttp.TCPConnector(
            local_addr=(self.source, 0) if self.source else None, limit=0
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            trace_configs=[trace],
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session:
            await self._session.close()

    async def _connect_start(self, session: aiohttp.ClientSession, ctx: SimpleNamespace,
                             params: aiohttp.TraceConnectionCreateStartParams) -> None:
        ctx.started = time.perf_counter()

    async def _connect_end(self, session: aiohttp.ClientSession, ctx: SimpleNamespace,
                           params: aiohttp.TraceConnectionCreateEndParams) -> None:
        self._connect_ms = (time.perf_counter() - ctx.started) * 1000

    async def predict(self, address: str, payload: dict, path: str = "/predict") -> EdgeReply:
        assert self._session is not None, "use `async with EdgeClient(...)`"
        self._connect_ms = 0.0
        started = time.perf_counter()
        async with self._session.post(f"http://{address}:{self.port}{path}", json=payload) as r:
            body = await r.json(content_type=None)
            status = r.status
            tier = r.headers.get("X-Cache-Tier", "?")
        elapsed = (time.perf_counter() - started) * 1000
        body = body if isinstance(body, dict) else {}
        return EdgeReply(address, status, body, self._connect_ms, elapsed,
                         str(body.get("tier", tier)))
