"""DNS over TCP per RFC 7766: length prefix, several queries per connection,
pipelining, idle timeout, connection cap."""

from __future__ import annotations

import select
import socket
import struct
import time

import dns.message
import pytest
from dnstest import HANG, start_geodns, zones_copy


@pytest.fixture(scope="module")
def short_idle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tcp-idle")
    server = start_geodns(zones_copy(tmp), tmp, "--tcp-idle-timeout", "1")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def small_cap(tmp_path_factory):
    """Three connections at most; idle ones are kept long (no timer can close one
    while a test holds it)."""
    tmp = tmp_path_factory.mktemp("tcp-cap")
    server = start_geodns(zones_copy(tmp), tmp, "--tcp-idle-timeout", "300",
                          "--tcp-max-connections", "3")
    yield server
    server.stop()


def framed(name: str, qid: int) -> bytes:
    q = dns.message.make_query(name, "A", id=qid).to_wire()
    return struct.pack("!H", len(q)) + q


def read_message(s: socket.socket) -> dns.message.Message:
    size = struct.unpack("!H", recv_exact(s, 2))[0]
    return dns.message.from_wire(recv_exact(s, size))


def recv_exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def test_several_queries_one_connection(geodns):
    with socket.create_connection(("127.0.0.1", geodns.port), timeout=HANG) as s:
        for i, name in enumerate(["www.cdn.example", "mail.cdn.example", "nope.cdn.example"]):
            s.sendall(framed(name, 100 + i))
            r = read_message(s)
            assert r.id == 100 + i and r.question[0].name.to_text() == name + "."


def test_pipelining_in_one_write_and_split_writes(geodns):
    names = [f"h{i}.static.cdn.example" for i in range(20)]
    blob = b"".join(framed(n, i) for i, n in enumerate(names))
    with socket.create_connection(("127.0.0.1", geodns.port), timeout=HANG) as s:
        s.sendall(blob[:5])  # a length prefix split across segments
        time.sleep(0.05)
        s.sendall(blob[5:])
        got = {read_message(s).id for _ in names}
    assert got == set(range(20))


def test_idle_connection_is_closed(short_idle):
    """The server hangs up on its own, and not before the idle timeout (1 s) has run
    since the client's last octet (it cannot have received that octet before the
    client sent it)."""
    with socket.create_connection(("127.0.0.1", short_idle.port), timeout=HANG) as s:
        last_octet = time.monotonic()
        s.sendall(framed("www.cdn.example", 1))
        read_message(s)
        assert s.recv(1) == b""  # the server hangs up
        assert time.monotonic() - last_octet >= 1.0


def test_connection_cap_closes_the_longest_idle(small_cap):
    held = [socket.create_connection(("127.0.0.1", small_cap.port), timeout=HANG)
            for _ in range(3)]
    try:
        for i, s in enumerate(held):  # all three are served; held[0] is then idle longest
            s.sendall(framed("www.cdn.example", 7 + i))
            assert read_message(s).id == 7 + i
        with socket.create_connection(("127.0.0.1", small_cap.port), timeout=HANG) as extra:
            extra.sendall(framed("www.cdn.example", 20))
            assert read_message(extra).id == 20
        try:  # the longest idle was closed to make room
            assert held[0].recv(1) == b""
        except ConnectionResetError:
            pass
        held[2].sendall(framed("www.cdn.example", 21))  # the others are still served
        assert read_message(held[2]).id == 21
    finally:
        for s in held:
            s.close()


@pytest.fixture(scope="module")
def slow_limits(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tcp-slow")
    server = start_geodns(zones_copy(tmp), tmp, "--tcp-idle-timeout", "30",
                          "--tcp-message-timeout", "1.5", "--tcp-max-connections", "20")
    yield server
    server.stop()


def test_idle_and_trickling_clients_cannot_lock_out_tcp(slow_limits):
    """The cap filled by clients that hold connections open, some sending one octet
    every second: a new client is answered (the longest idle hog makes room; none is
    idle for the 30 s idle timeout), and UDP keeps answering."""
    port = slow_limits.port
    hogs = [socket.create_connection(("127.0.0.1", port), timeout=HANG) for _ in range(20)]
    try:
        for s in hogs[::2]:
            s.sendall(b"\x00")  # a length prefix begun, then nothing more for now
        for _ in range(3):
            for s in hogs[::2]:
                try:
                    s.sendall(b"\x00")
                except OSError:
                    pass  # already cut off
            with socket.create_connection(("127.0.0.1", port), timeout=HANG) as fresh:
                fresh.sendall(framed("www.cdn.example", 30))
                assert read_message(fresh).id == 30
            assert slow_limits.ask("www.cdn.example").answer
            hogs.append(socket.create_connection(("127.0.0.1", port), timeout=HANG))
            time.sleep(1)
    finally:
        for s in hogs:
            s.close()


def test_trickling_client_is_cut_off(slow_limits):
    """One octet a second never makes a whole message within --tcp-message-timeout:
    the server hangs up while the client is still sending."""
    message = framed("www.cdn.example", 40)
    with socket.create_connection(("127.0.0.1", slow_limits.port), timeout=HANG) as s:
        sent, closed = 0, False
        for octet in message:
            try:
                s.sendall(bytes([octet]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sent += 1
            time.sleep(1)
            if select.select([s], [], [], 0)[0]:  # readable: only an EOF can be there
                try:
                    closed = s.recv(1) == b""
                except ConnectionResetError:
                    closed = True
                break
        assert closed and sent < len(message)
