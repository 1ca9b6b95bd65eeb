"""Redis settings: the three URL forms, passwords from the environment, and what a
client without the password gets from a Redis that requires one (nothing, for every
user of Redis in the project)."""

from __future__ import annotations

import pytest
import redis

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
])
def test_bad_settings_say_what_is_wrong(url, words):
    with pytest.raises(RedisURLError, match=words):
        parse(url)


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
