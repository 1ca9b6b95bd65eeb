"""asyncio protocols: DNS over UDP, and over TCP per RFC 7766.

UDP: `datagram_received` is the hot path. A cached answer is a dict lookup (two
for a pool-bound name), an ID patch and `sendto`; a query ending with a DNS cookie
(`cachekey.cookie_tail`) is looked up the same way in the engine's cookie cache, and
its cookie value appended; anything else goes to `Engine.udp()`.

TCP: each message carries a 2-octet length prefix; a connection may carry many
queries, sent back to back without waiting (pipelining); answers go out in order.
Limits (`TCPLimits`): a connection idle for `idle_timeout` seconds between messages is
closed, and so is one whose message has not fully arrived `message_timeout` seconds
after its first octet (a client trickling octets cannot hold a connection). The
server holds at most `max_connections` at once: a new one beyond that closes the
connection idle the longest, so a new client is always served. A client that does
not read its answers is not read from until it does.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import cast

from geodns.cachekey import cookie_tail
from geodns.engine import Engine, netkey

log = logging.getLogger("geodns")
RECEIVE_BUFFER = 4 << 20  # octets asked for each UDP socket's receive queue


class UDPProtocol(asyncio.DatagramProtocol):
    """The fast path: answers from the engine's caches without a call, else asks it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # The same objects for the server's life (emptied, never replaced).
        self.cache = engine.plain.static
        self.markers = engine.plain.markers
        self.pool_cache = engine.plain.pools
        self.cookie_cache = engine.cookied.static
        self.cookie_markers = engine.cookied.markers
        self.cookie_pools = engine.cookied.pools
        self.cookie_memo = engine.cookie_memo
        self.counts = engine.tally.counts
        self.ipv4 = True

    transport: asyncio.DatagramTransport  # set by connection_made, before any datagram

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        self.ipv4 = sock.family == socket.AF_INET
        # room for bursts (full-path answers after a reload; a busy machine): the
        # kernel caps it at net.core.rmem_max, and holds only what is queued
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        key = data[2:]
        hit = self.cache.get(key)
        if hit is not None:
            self.transport.sendto(data[:2] + hit[0], addr)
            self.counts[hit[1]] += 1
            return
        value = b""  # with a cookie: the cookie option's value, appended to the response
        pools = self.pool_cache
        by_source = self.markers.get(key)
        if by_source is None:
            found = cookie_tail(data)
            if found is None:
                self.slow(data, addr)
                return
            key = found[0]
            value = self.cookie_memo.get((found[1][:8], addr[0])) or \
                self.engine.cookie_value(found[1], addr[0])
            hit = self.cookie_cache.get(key)
            if hit is not None:
                self.transport.sendto(data[:2] + hit[0] + value, addr)
                self.counts[hit[1]] += 1
                return
            by_source = self.cookie_markers.get(key)
            if by_source is None:
                self.slow(data, addr)
                return
            pools = self.cookie_pools
        if by_source:
            ip = addr[0]
            net = ip.rpartition(".")[0] if self.ipv4 else netkey(ip)
        else:
            net = ""
        pool_hit = pools.get((key, net))
        if pool_hit is not None and pool_hit[3] == pool_hit[4].generation:
            self.transport.sendto(data[:2] + pool_hit[0] + value, addr)
            self.counts[pool_hit[1]] += 1
            return
        self.slow(data, addr)

    def slow(self, data: bytes, addr: tuple) -> None:
        try:
            out = self.engine.udp(data, addr)
        except Exception:  # a bug must cost one answer, never the server
            log.exception("internal error answering a UDP query from %s", addr[0])
            return
        if out is not None:
            self.transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors from clients that went away: nothing to do


class RateLimitedUDPProtocol(UDPProtocol):
    """With RRL on, every response is accounted, so every query goes to the engine."""

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.slow(data, addr)


@dataclass(frozen=True, slots=True)
class TCPLimits:
    idle_timeout: float = 10.0  # between messages
    message_timeout: float = 5.0  # from a message's first octet to its last
    max_connections: int = 256


class TCPProtocol(asyncio.Protocol):
    """One TCP connection. `connections` is shared by every connection of the server,
    ordered from the longest idle to the most recently active."""

    def __init__(self, engine: Engine, connections: dict[TCPProtocol, None],
                 limits: TCPLimits) -> None:
        self.engine = engine
        self.connections = connections
        self.limits = limits
        self.buffer = bytearray()
        self.timer: asyncio.TimerHandle | None = None
        self.peer = ("", 0)

    transport: asyncio.Transport  # set by connection_made, before any data

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if len(self.connections) >= self.limits.max_connections:
            # Make room by closing the connection idle the longest (as gdnsd and Knot
            # do), so clients that only hold connections cannot lock others out.
            oldest = next(iter(self.connections))
            del self.connections[oldest]
            oldest.transport.abort()
        self.connections[self] = None
        self.peer = transport.get_extra_info("peername") or ("", 0)
        self._arm(self.limits.idle_timeout)

    def _arm(self, seconds: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(seconds, self.transport.abort)

    def data_received(self, data: bytes) -> None:
        starts = not self.buffer  # the first octets of a new message
        self.buffer += data
        if self in self.connections:  # now the most recently active
            del self.connections[self]
            self.connections[self] = None
        answered = 0
        while len(self.buffer) >= 2:
            size = int.from_bytes(self.buffer[:2], "big")
            if len(self.buffer) < 2 + size:
                break
            msg = bytes(self.buffer[2 : 2 + size])
            del self.buffer[: 2 + size]
            answered += 1
            try:
                out = self.engine.handle(msg, self.peer, tcp=True)
            except Exception:
                log.exception("internal error answering a TCP query from %s", self.peer[0])
                out = None
            if out is None:  # not a query: this is not a DNS client, hang up
                self.transport.close()
                return
            self.transport.write(len(out).to_bytes(2, "big") + out)
        # The idle timer runs between messages; a message that has begun must be whole
        # within message_timeout, however slowly its octets trickle in.
        if not self.buffer:
            self._arm(self.limits.idle_timeout)
        elif starts or answered:
            self._arm(self.limits.message_timeout)

    def pause_writing(self) -> None:
        """A client that sends queries but does not read the answers: stop reading
        until it catches up, so that pending answers cannot pile up in memory."""
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    def eof_received(self) -> bool:
        return False  # close our side too once the client has finished sending

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.pop(self, None)
        if self.timer is not None:
            self.timer.cancel()
