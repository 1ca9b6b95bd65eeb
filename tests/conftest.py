"""Fixtures shared by every test package: free ports and a real Redis-protocol server."""

from __future__ import annotations

import pytest

from cdn.redis_server import RedisServer, free_port


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture
def redis_server():
    """A fresh Redis-protocol server per test; tests may `.stop()` it to simulate loss."""
    server = RedisServer().start()
    yield server
    server.stop()
