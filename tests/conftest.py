"""Fixtures shared by every test package: free ports and a real Redis-protocol server;
and which tests may run beside which when the suite runs in parallel (`bin/test`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import hypothesis.internal.conjecture.optimiser  # noqa: F401  (see below)
import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

from cdn.redis_server import FREE_PORTS_ENV, RedisServer, free_port

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


# `bin/test` runs the suite on several pytest-xdist workers: the tests of one group run
# on one worker, one after the other, in file order (`GroupScheduling`). A group is a
# test module (its module-scoped servers start once, its tests run in the order they are
# written), except:
# - "stack": tests/stack/, whose tests share the session's `stack` (one whole network
#   serves them all) or start stacks of their own;
# - "pip": the tests that make virtual environments with pip (which is not safe to run
#   twice at once on one cache), among them bench/oip_peers.py, which makes its own;
# - each bench of tests/test_docs_benches.py on its own (free ports, temporary folders).
# tests/dns/test_dns_benches.py runs its benches on fixed ports (127.0.0.1:5391-5394):
# one module, so one group, and no other test uses those ports.

# Free ports: in a serial run the kernel picks them (`free_port`); across parallel
# workers two could pick the same one before either binds it (seen: a test's edge then
# answered for another worker's). So each worker (and what it starts) takes its free
# ports from a range of its own, below the kernel's ephemeral ports (32768 and up).
PORTS = (20000, 32767)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "alone: run after the parallel part, alone (bin/test)")
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ... in a worker
    if worker:
        count = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
        size = (PORTS[1] - PORTS[0] + 1) // count
        low = PORTS[0] + int(worker.removeprefix("gw")) * size
        os.environ[FREE_PORTS_ENV] = f"{low}-{low + size - 1}"


# Tests whose figures are the machine's own pace (the load an edge reports, latencies
# clients measure): `bin/test` runs them after the others, one at a time, so that no
# neighbour's work is in their figures (marked "alone").
ALONE = ("tests/edge/test_load.py", "tests/latency/test_world_e2e.py")
PIP = ("tests/stack/test_runtime_venv.py", "tests/stack/test_setup_runtime.py",
       "tests/test_docs_benches.py::test_bench_command_runs[bench/oip_peers.py]")
# The longest groups start first, so that the last ones to finish are short (measured on
# a loaded 2-core machine; a stale entry costs time, never correctness).
SLOW_FIRST = ("pip", "tests/test_docs_benches.py::test_bench_command_runs[bench/steering_loop.py]",
              "stack", "tests/latency/test_docs.py", "tests/edge/test_openapi_dataplane.py",
              "tests/distribution/test_redis_topologies.py", "tests/dns/test_dns_answer_cache.py",
              "tests/distribution/test_deploy_config.py", "tests/dns/test_dns_benches.py",
              "tests/distribution/test_distribution_docs.py", "tests/latency/test_redis_down.py",
              "tests/edge/test_tritonclient.py", "tests/edge/test_kserve.py",
              "tests/geo/test_explain_matches_answers.py")


def parallel_group(nodeid: str) -> str:
    module = nodeid.split("::")[0]
    if module in PIP or nodeid in PIP:
        return "pip"
    if module.startswith("tests/stack/"):
        return "stack"
    if module == "tests/test_docs_benches.py" and "[" in nodeid:
        return nodeid
    return module


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> LoadScopeScheduling:
    """Whole groups to the workers, in the order the workers collected them. (Not
    pytest-xdist's `--dist loadgroup`: its marks do not reach the scheduler with pytest
    9.2, pytest-xdist issue 1386.)"""
    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return parallel_group(nodeid)

    return GroupScheduling(config, log)


@pytest.hookimpl(tryfirst=True)  # the "alone" mark before `-m` selects by it
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if parallel_group(item.nodeid) in ALONE:
            item.add_marker(pytest.mark.alone)
    if hasattr(config, "workerinput"):  # a worker: its order is the order groups are dealt
        rank = {name: i for i, name in enumerate(SLOW_FIRST)}
        items.sort(key=lambda item: rank.get(parallel_group(item.nodeid), len(rank)))
