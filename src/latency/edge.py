"""Latency measurements on an edge node: `setup(app, config)` (from `edge.app.build_app`).

Routes (every one answers cross-origin, so a page from one edge can time the others):

* `GET /latency/object`: the tiny object clients time (no caching).
* `GET /latency/targets`: this node's member name, its peers (NAME -> URL), the share
  of beacons that also time alternates (`sample_rate`) and how many (`alternates`).
* `POST /latency/beacon`: a beacon (`latency.beacon`): 202 with the samples accepted;
  400 malformed or out of bounds, 413 too large, 429 past the network's rate (with
  Retry-After), 503 when the store cannot be reached. Nothing is stored unless the
  whole beacon is good.
* `GET /latency/beacon.js`: the script that makes a web page beacon.

Passively, at most once per client network every `TCP_EVERY_S`, the kernel's smoothed
RTT of the client's connection (TCP_INFO) is stored as a `tcp` sample for this node.
With no `latency_redis` nothing is set up.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections import OrderedDict
from pathlib import Path

from aiohttp import web

from edge import routes
from edge.config import EdgeConfig
from geocdn.redis_url import REDIS_ERRORS, connect

from .beacon import BadBeacon, NetworkLimiter, parse_beacon
from .nets import measured_network
from .settings import LatencySettings
from .store import SampleWriter

log = logging.getLogger("latency")
SAMPLE_RATE = 0.5  # share of beacons that also time alternates
ALTERNATES = 2
TCP_EVERY_S = 10.0
_TCPI_RTT = struct.Struct("=I")
_TCPI_RTT_OFFSET = 68  # struct tcp_info: 8 one-byte fields, then u32 rto ... rtt (16th)
_CORS = {"Access-Control-Allow-Origin": "*", "Timing-Allow-Origin": "*",
         "Cache-Control": "no-store"}
SCRIPT = (Path(__file__).parent / "beacon.js").read_bytes()


def kernel_rtt_ms(sock: socket.socket) -> float | None:
    """The smoothed RTT of a TCP connection in ms (Linux TCP_INFO), None if unknown."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except (OSError, AttributeError):
        return None
    if len(info) < _TCPI_RTT_OFFSET + 4:
        return None
    (rtt_us,) = _TCPI_RTT.unpack_from(info, _TCPI_RTT_OFFSET)
    return rtt_us / 1000 if rtt_us else None


class LatencyEndpoint:
    def __init__(self, name: str, peers: dict[str, str], writer: SampleWriter,
                 settings: LatencySettings) -> None:
        self.name = name
        self.peers = {n: u for n, u in peers.items() if n != name}
        self.edges = {name, *self.peers}
        self.writer = writer
        self.settings = settings
        self.limiter = NetworkLimiter(settings.beacon_rate_per_s, settings.beacon_burst,
                                      settings.max_networks)
        self._tcp_seen: OrderedDict[str, float] = OrderedDict()
        self._tasks: set[asyncio.Task] = set()

    async def object(self, request: web.Request) -> web.Response:
        return web.Response(body=b".", content_type="text/plain", headers=_CORS)

    async def targets(self, request: web.Request) -> web.Response:
        return web.json_response({
            "edge": self.name, "peers": self.peers, "object": "/latency/object",
            "beacon": "/latency/beacon", "sample_rate": SAMPLE_RATE, "alternates": ALTERNATES,
        }, headers=_CORS)

    async def script(self, request: web.Request) -> web.Response:
        return web.Response(body=SCRIPT, content_type="application/javascript", headers=_CORS)

    async def beacon(self, request: web.Request) -> web.Response:
        if request.content_length is not None and \
                request.content_length > self.settings.max_beacon_bytes:
            raise web.HTTPRequestEntityTooLarge(
                max_size=self.settings.max_beacon_bytes, actual_size=request.content_length,
                text=f"beacon larger than {self.settings.max_beacon_bytes} bytes")
        body = b""
        while len(body) <= self.settings.max_beacon_bytes:
            chunk = await request.content.read(self.settings.max_beacon_bytes + 1 - len(body))
            if not chunk:
                break
            body += chunk
        if len(body) > self.settings.max_beacon_bytes:
            raise web.HTTPRequestEntityTooLarge(
                max_size=self.settings.max_beacon_bytes, actual_size=len(body),
                text=f"beacon larger than {self.settings.max_beacon_bytes} bytes")
        try:
            samples = parse_beacon(body, self.edges, self.settings)
        except BadBeacon as e:
            raise web.HTTPBadRequest(text=str(e)) from None
        try:
            network = str(measured_network(request.remote or ""))
        except ValueError:
            raise web.HTTPBadRequest(text="beacons come over IP connections only") from None
        wait = self.limiter.allow(network)
        if wait:
            raise web.HTTPTooManyRequests(
                text=f"too many beacons from {network}; retry in {wait:.1f}s",
                headers={"Retry-After": str(max(1, round(wait)))})
        try:
            await self.writer.add(network, [(s.edge, "beacon", s.ms) for s in samples])
        except REDIS_ERRORS as e:
            raise web.HTTPServiceUnavailable(text=f"latency store unavailable: {e}") from None
        return web.json_response({"accepted": len(samples), "network": network},
                                 status=202, headers=_CORS)

    async def preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers={
            **_CORS, "Access-Control-Allow-Methods": "GET, POST",
            "Access-Control-Allow-Headers": "Content-Type"})

    def observe(self, request: web.Request) -> None:
        """Store the kernel RTT of this request's connection, once per network per
        TCP_EVERY_S (called for every request)."""
        remote = request.remote
        if not remote:
            return
        try:
            network = str(measured_network(remote))
        except ValueError:
            return
        now = time.monotonic()
        last = self._tcp_seen.get(network)
        if last is not None and now - last < TCP_EVERY_S:
            return
        sock = request.transport.get_extra_info("socket") if request.transport else None
        ms = kernel_rtt_ms(sock) if sock is not None else None
        if ms is None:
            return
        self._tcp_seen[network] = now
        self._tcp_seen.move_to_end(network)
        if len(self._tcp_seen) > self.settings.max_networks:
            self._tcp_seen.popitem(last=False)
        task = asyncio.ensure_future(self._store_tcp(network, ms))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _store_tcp(self, network: str, ms: float) -> None:
        try:
            await self.writer.add(network, [(self.name, "tcp", ms)])
        except REDIS_ERRORS as e:
            log.debug("kernel RTT not stored: %s", e)


ENDPOINT = web.AppKey("latency_endpoint", LatencyEndpoint)


def setup(app: web.Application, config: EdgeConfig, node_name: str) -> LatencyEndpoint | None:
    if not config.latency_redis:
        return None
    settings = LatencySettings()
    redis = connect(config.latency_redis, socket_timeout=2, socket_connect_timeout=2)
    endpoint = LatencyEndpoint(config.latency_name or node_name, config.latency_peers,
                               SampleWriter(redis, settings), settings)
    app[ENDPOINT] = endpoint
    routes.add(app, "GET", "/latency/object", endpoint.object, "latency_object")
    routes.add(app, "GET", "/latency/targets", endpoint.targets, "latency_targets")
    routes.add(app, "GET", "/latency/beacon.js", endpoint.script, "latency_script")
    routes.add(app, "POST", "/latency/beacon", endpoint.beacon, "latency_beacon")
    routes.add(app, "OPTIONS", "/latency/beacon", endpoint.preflight, "latency_preflight")
    routes.observe_requests(app, endpoint.observe)

    async def close(_app: web.Application) -> None:
        await redis.aclose()

    app.on_cleanup.append(close)
    return endpoint
