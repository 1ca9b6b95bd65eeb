"""Fixtures for the health tests: member servers on their own loopback addresses."""

from __future__ import annotations

import pytest
from health_members import MemberServer, loopback_address


@pytest.fixture
async def members():
    """A factory of started member servers, all stopped at the end of the test."""
    started: list[MemberServer] = []

    async def make(n: int = 1, block: int = 60, **kwargs) -> list[MemberServer]:
        servers = [await MemberServer(loopback_address(block), **kwargs).start()
                   for _ in range(n)]
        started.extend(servers)
        return servers

    yield make
    for s in started:
        await s.stop()
