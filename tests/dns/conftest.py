"""Fixtures of the DNS tests (helpers live in dnstest.py)."""

from __future__ import annotations

import pytest
from dnstest import start_geodns, zones_copy


@pytest.fixture(scope="package")
def geodns(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("geodns")
    server = start_geodns(zones_copy(tmp), tmp, "--nsid", "test-node", ipv6=True)
    yield server
    server.stop()


@pytest.fixture(params=["udp", "tcp"])
def tcp(request) -> bool:
    return request.param == "tcp"
