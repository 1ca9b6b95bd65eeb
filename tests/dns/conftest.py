"""Fixtures of the DNS tests (helpers live in dnstest.py)."""

from __future__ import annotations

import time

import dns.rcode
import pytest
from dnstest import start_geodns, zones_copy


@pytest.fixture(scope="package")
def geodns(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("geodns")
    server = start_geodns(zones_copy(tmp), tmp, "--nsid", "test-node", ipv6=True)
    # the pool `edges` answers SERVFAIL until its health checks have settled (a second
    # or so after the start): the tests expect answers
    deadline = time.monotonic() + 30
    while server.ask("edge.cdn.example").rcode() != dns.rcode.NOERROR:
        assert time.monotonic() < deadline, "pool edges never settled"
        time.sleep(0.1)
    yield server
    server.stop()


@pytest.fixture(params=["udp", "tcp"])
def tcp(request) -> bool:
    return request.param == "tcp"
