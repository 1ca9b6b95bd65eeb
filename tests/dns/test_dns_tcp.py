"""DNS over TCP per RFC 7766: length prefix, several queries per connection,
pipelining, idle timeout, connection cap."""

from __future__ import annotations

import socket
import struct
import time

import dns.message
import pytest
from dnstest import start_geodns, zones_copy


@pytest.fixture(scope="module")
def small_tcp(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tcp")
    server = start_geodns(zones_copy(tmp), tmp, "--tcp-idle-timeout", "1",
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
    with socket.create_connection(("127.0.0.1", geodns.port), timeout=3) as s:
        for i, name in enumerate(["www.cdn.example", "mail.cdn.example", "nope.cdn.example"]):
            s.sendall(framed(name, 100 + i))
            r = read_message(s)
            assert r.id == 100 + i and r.question[0].name.to_text() == name + "."


def test_pipelining_in_one_write_and_split_writes(geodns):
    names = [f"h{i}.static.cdn.example" for i in range(20)]
    blob = b"".join(framed(n, i) for i, n in enumerate(names))
    with socket.create_connection(("127.0.0.1", geodns.port), timeout=3) as s:
        s.sendall(blob[:5])  # a length prefix split across segments
        time.sleep(0.05)
        s.sendall(blob[5:])
        got = {read_message(s).id for _ in names}
    assert got == set(range(20))


def test_idle_connection_is_closed(small_tcp):
    with socket.create_connection(("127.0.0.1", small_tcp.port), timeout=5) as s:
        s.sendall(framed("www.cdn.example", 1))
        read_message(s)
        start = time.monotonic()
        assert s.recv(1) == b""  # the server hangs up
        assert 0.5 < time.monotonic() - start < 4


def test_connection_cap(small_tcp):
    held = [socket.create_connection(("127.0.0.1", small_tcp.port), timeout=3)
            for _ in range(3)]
    try:
        for s in held:  # all three are served
            s.sendall(framed("www.cdn.example", 7))
            assert read_message(s).id == 7
        extra = socket.create_connection(("127.0.0.1", small_tcp.port), timeout=3)
        with extra:
            try:
                extra.sendall(framed("www.cdn.example", 8))
                assert extra.recv(2) == b""
            except ConnectionResetError:
                pass
    finally:
        for s in held:
            s.close()
    time.sleep(0.2)  # once they are gone, new connections are served again
    with socket.create_connection(("127.0.0.1", small_tcp.port), timeout=3) as s:
        s.sendall(framed("www.cdn.example", 9))
        assert read_message(s).id == 9
