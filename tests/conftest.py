"""Fixtures shared by every test package: free ports and a real Redis-protocol server."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import hypothesis.internal.conjecture.optimiser  # noqa: F401  (see below)
import pytest

from cdn.redis_server import RedisServer, free_port

# Hypothesis imports its optimiser lazily, in the middle of a test, where pytest's
# assertion rewriting compiles it. CPython 3.11.7's compile() then failed once in CI with
# "SystemError: AST constructor recursion depth mismatch", a CPython 3.11 bug seen in
# threaded programs (gh-106905); tests run servers' worker threads. Imported here, it is
# compiled once at start-up, before any test thread exists.

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGY_PASSWORD = "s3cret-topology-pw"


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture
def redis_server():
    """A fresh Redis-protocol server per test; tests may `.stop()` it to simulate loss."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sentinel", "cluster"])
def redis_topology(request: pytest.FixtureRequest):
    """A Redis Sentinel set, then a Redis Cluster (`tests/redis_sets.py`), each requiring
    the password `TOPOLOGY_PASSWORD`; its `.url` is what the programs are given."""
    from redis_sets import ClusterSet, SentinelSet

    _require_program("redis-server", "redis-server")  # Sentinel and Cluster modes
    made = SentinelSet(password=TOPOLOGY_PASSWORD) if request.param == "sentinel" \
        else ClusterSet(password=TOPOLOGY_PASSWORD)
    made.start()
    yield made
    made.stop()


@pytest.fixture(scope="session")
def system_program():
    """`system_program(binary, package)`: the path of a system program, installing its
    Debian package when it is missing (`bin/test` installs them up front; this keeps a
    bare `pytest` run working too)."""
    return _require_program


def _require_program(binary: str, package: str) -> str:
    found = shutil.which(binary)
    if found:
        return found
    subprocess.run([str(ROOT / "bin" / "apt-install"), package], check=True,
                   capture_output=True)
    found = shutil.which(binary)
    assert found, f"{package} installed no {binary}"
    return found
