"""asyncio protocols: DNS over UDP, and over TCP per RFC 7766.

UDP: `datagram_received` is the hot path. A cached static answer is a dict lookup,
an ID patch and `sendto`; anything else goes to `Engine.udp()`.

TCP: each message carries a 2-octet length prefix; a connection may carry many
queries, sent back to back without waiting (pipelining); answers go out in order.
A connection idle for `idle_timeout` seconds is closed, and the server holds at most
`max_connections` at once (new ones beyond that are closed at once).
"""

from __future__ import annotations

import asyncio
import logging

from geodns.engine import Engine

log = logging.getLogger("geodns")
MAX_TCP_BUFFER = 65535 + 2


class UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.cache = engine.cache  # the same dict for the server's life (cleared on reload)
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        hit = self.cache.get(data[2:])
        if hit is not None and hit.body is not None and self.engine.rrl is None:
            self.transport.sendto(data[:2] + hit.body, addr)
            self.engine.tally.counts[hit.slot] += 1
            return
        try:
            out = self.engine.udp(data, addr, hit)
        except Exception:  # a bug must cost one answer, never the server
            log.exception("internal error answering a UDP query from %s", addr[0])
            return
        if out is not None:
            self.transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors from clients that went away: nothing to do


class TCPProtocol(asyncio.Protocol):
    def __init__(self, engine: Engine, connections: set, idle_timeout: float,
                 max_connections: int) -> None:
        self.engine = engine
        self.connections = connections
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.peer = ("", 0)

    def connection_made(self, transport) -> None:
        self.transport = transport
        if len(self.connections) >= self.max_connections:
            transport.abort()
            return
        self.connections.add(self)
        self.peer = transport.get_extra_info("peername") or ("", 0)
        self._arm()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.idle_timeout, self.transport.close)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._arm()
        while len(self.buffer) >= 2:
            size = int.from_bytes(self.buffer[:2], "big")
            if len(self.buffer) < 2 + size:
                break
            msg = bytes(self.buffer[2 : 2 + size])
            del self.buffer[: 2 + size]
            try:
                out = self.engine.handle(msg, self.peer, tcp=True)
            except Exception:
                log.exception("internal error answering a TCP query from %s", self.peer[0])
                out = None
            if out is None:  # not a query: this is not a DNS client, hang up
                self.transport.close()
                return
            self.transport.write(len(out).to_bytes(2, "big") + out)

    def eof_received(self) -> bool:
        return False  # close our side too once the client has finished sending

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
