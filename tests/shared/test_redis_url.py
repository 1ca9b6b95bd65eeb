"""Redis settings: the three URL forms, passwords from the environment, and what a
client without the password gets from a Redis that requires one (nothing, for every
user of Redis in the project)."""

from __future__ import annotations

import subprocess
import time

import pytest
import redis

from cdn.processes import stop_process
from cdn.redis_server import RedisServer
from edge.cache.redis_l1 import RedisL1
from edge.distribution.events import Event, EventStream, connect_stream
from geocdn.redis_url import REDIS_ERRORS, RedisURLError, connect, parse
from healthcheck.shared import SharedState


def test_the_three_forms():
    assert parse("redis://127.0.0.1:6379/1").kind == "standalone"
    s = parse("redis+sentinel://u:p%40ss@10.0.0.1:26379,[::1]/geocdn/2"
              "?sentinel_password=sp")
    assert (s.kind, s.service, s.db, s.username, s.password) == (
        "sentinel", "geocdn", 2, "u", "p@ss")
    assert s.nodes == (("10.0.0.1", 26379), ("::1", 26379))
    assert s.sentinel_auth == {"password": "sp"}
    c = parse("rediss+cluster://:pw@c1:7000,c2")
    assert (c.kind, c.tls, c.password, c.nodes) == ("cluster", True, "pw",
                                                     (("c1", 7000), ("c2", 6379)))


@pytest.mark.parametrize("url, words", [
    ("http://127.0.0.1:6379", "starts with redis://"),
    ("redis+sentinel://h:26379", "Sentinel service name"),
    ("redis+sentinel://h:26379/svc/x", "database must be a number"),
    ("redis+cluster://h:7000/1", "database 0"),
    ("redis+cluster://h:port", "HOST:PORT"),
    ("redis://:${GEOCDN_TEST_UNSET}@h:6379/0", "GEOCDN_TEST_UNSET"),
    ("redis+cluster://h:7000?db=2", "database 0"),
    ("redis+cluster://h:7000?socket_timout=2", r"unknown option \?socket_timout="),
    ("redis+cluster://h:7000?sentinel_password=x", r"unknown option \?sentinel_password="),
    ("redis+sentinel://h/svc?socket_timeout=soon", r"\?socket_timeout= has an invalid"),
])
def test_bad_settings_say_what_is_wrong(url, words):
    with pytest.raises(RedisURLError, match=words):
        parse(url)


def test_sentinel_and_cluster_urls_apply_their_query_options():
    c = parse("redis+cluster://:pw@c1:7000?socket_timeout=0.5&health_check_interval=10"
              "&retry_on_timeout=yes")
    assert c.options == {"socket_timeout": 0.5, "health_check_interval": 10,
                         "retry_on_timeout": True}
    s = parse("redis+sentinel://h/svc?db=3&sentinel_password=sp&socket_connect_timeout=1")
    assert (s.db, s.sentinel_auth, s.options) == (3, {"password": "sp"},
                                                  {"socket_connect_timeout": 1.0})
    assert "sp" not in repr(s) and "pw" not in repr(c)


async def test_query_options_reach_every_connection(redis_topology):
    """?protocol= is seen by the server: the connection speaks RESP2 or RESP3."""
    for query, resp in (("?protocol=2", "2"), ("?protocol=3", "3")):
        client = connect(redis_topology.url + query)
        try:
            await client.set("geocdn:test:resp", "1")  # a write reaches the primary
            assert (await client.client_info())["resp"] == resp, query
        finally:
            await client.aclose()


async def test_a_unix_socket_path_from_the_environment(system_program, tmp_path,
                                                       monkeypatch):
    socket_dir = tmp_path / "run dir"  # a space: nothing may encode the path
    socket_dir.mkdir()
    server = subprocess.Popen(
        [system_program("redis-server", "redis-server"), "--port", "0", "--save", "",
         "--unixsocket", str(socket_dir / "redis.sock"), "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (socket_dir / "redis.sock").exists():
            assert server.poll() is None and time.monotonic() < deadline, "no socket"
            time.sleep(0.05)
        monkeypatch.setenv("GEOCDN_TEST_SOCKET_DIR", str(socket_dir))
        client = connect("unix://${GEOCDN_TEST_SOCKET_DIR}/redis.sock?db=1")
        assert await client.ping()
        await client.aclose()
    finally:
        stop_process(server)


async def test_a_password_from_the_environment(monkeypatch):
    server = RedisServer(password="p/w:@x").start()
    try:
        monkeypatch.setenv("GEOCDN_TEST_REDIS_PW", "p/w:@x")
        client = connect(f"redis://:${{GEOCDN_TEST_REDIS_PW}}@127.0.0.1:{server.port}/0")
        assert await client.ping()
        await client.aclose()
    finally:
        server.stop()


async def test_without_the_password_nothing_is_read_or_changed():
    server = RedisServer(password="right").start()
    anonymous = f"redis://127.0.0.1:{server.port}/0"
    owner = redis.Redis.from_url(server.url)
    try:
        l1 = RedisL1(anonymous)
        await l1.set("k", b"v", expires=2e9, tags=("t",))
        assert await l1.get("k") is None and l1.errors >= 1
        await l1.close()

        health = SharedState(anonymous, token="admin")
        with pytest.raises(REDIS_ERRORS):
            await health.publish("intruder", {}, [])
        with pytest.raises(REDIS_ERRORS):
            await health.read()
        await health.close()

        stream_client = connect_stream(anonymous)
        stream = EventStream(stream_client)
        with pytest.raises(REDIS_ERRORS):
            await stream.publish(Event.purge("key", "x"))
        with pytest.raises(REDIS_ERRORS):
            await stream.read("0-0", block_ms=10)
        await stream_client.aclose()

        assert owner.dbsize() == 0  # nothing was written
    finally:
        owner.close()
        server.stop()
