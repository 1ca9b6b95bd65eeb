"""Beacons are untrusted: each kind of bad beacon gets a 4xx and moves no figure, and
a flood from one network is cut off without touching any other network's figures."""

from __future__ import annotations

import time

import pytest

from latency.settings import LatencySettings

GOOD = "127.0.30.7"  # a client network with honest figures: 127.0.30.0/24
BAD = "127.0.31.9"  # the network that misbehaves: 127.0.31.0/24


async def seed(edge) -> dict:
    for i in range(6):
        status, body, _ = await edge.post(GOOD, {"samples": [{"edge": "tokyo", "ms": 20 + i},
                                                             {"edge": "london", "ms": 90}]})
        assert status == 202, body
    figures = await edge.figures()
    assert figures["127.0.30.0/24"]["tokyo"].samples == 6
    return figures


async def test_a_good_beacon_counts_for_the_senders_network(beacon_edge) -> None:
    beacon = {"samples": [{"edge": "tokyo", "ms": 12.5}]}
    status, body, headers = await beacon_edge.post(GOOD, beacon)
    assert (status, body) == (202, {"accepted": 1, "network": "127.0.30.0/24"})
    assert headers["Access-Control-Allow-Origin"] == "*"


BAD_BEACONS = {
    "negative": (400, {"samples": [{"edge": "tokyo", "ms": -5}]}),
    "zero": (400, {"samples": [{"edge": "tokyo", "ms": 0}]}),
    "huge": (400, {"samples": [{"edge": "tokyo", "ms": 1e9}]}),
    "not a number": (400, {"samples": [{"edge": "tokyo", "ms": "12"}]}),
    "boolean": (400, {"samples": [{"edge": "tokyo", "ms": True}]}),
    "NaN": (400, b'{"samples": [{"edge": "tokyo", "ms": NaN}]}'),
    "unknown edge": (400, {"samples": [{"edge": "atlantis", "ms": 10}]}),
    "same edge twice": (400, {"samples": [{"edge": "tokyo", "ms": 10},
                                          {"edge": "tokyo", "ms": 11}]}),
    "extra key": (400, {"samples": [{"edge": "tokyo", "ms": 10, "network": "127.0.30.0/24"}]}),
    "no samples": (400, {"samples": []}),
    "too many samples": (400, {"samples": [{"edge": e, "ms": 5} for e in
                                           ("tokyo", "london", "mumbai", "tokyo", "london")]}),
    "not an object": (400, [{"edge": "tokyo", "ms": 10}]),
    "not JSON": (400, b"ms=10&edge=tokyo"),
    "not UTF-8": (400, b"\xff\xfe{}"),
    "too large": (413, {"samples": [{"edge": "tokyo", "ms": 10}], "pad": "x" * 5000}),
}


@pytest.mark.parametrize("kind", list(BAD_BEACONS))
async def test_a_bad_beacon_is_refused_and_changes_nothing(beacon_edge, kind) -> None:
    before = await seed(beacon_edge)
    want, body = BAD_BEACONS[kind]
    for source in (BAD, GOOD):  # from another network, and from the network itself
        status, answer, _ = await beacon_edge.post(source, body)
        assert status == want, answer
        assert answer["error"]
    assert await beacon_edge.figures() == before


async def test_a_flood_from_one_network_is_cut_off_and_moves_no_other(beacon_edge) -> None:
    before = await seed(beacon_edge)
    statuses = []
    started = time.monotonic()
    while statuses.count(429) < 10:  # beacons as fast as this process can send them
        assert len(statuses) < 10_000, statuses.count(202)
        status, answer, headers = await beacon_edge.post(
            BAD, {"samples": [{"edge": "tokyo", "ms": 59000}, {"edge": "london", "ms": 1}]})
        statuses.append(status)
        if status == 429:
            assert int(headers["Retry-After"]) >= 1
            assert "127.0.31.0/24" in answer["error"]
    took = time.monotonic() - started
    # The network's bucket: its burst at once, then what it earns while the flood lasts
    # (at most as long as it took here, however slowly this machine ran it).
    s = LatencySettings()
    assert s.beacon_burst <= statuses.count(202) <= s.beacon_burst + s.beacon_rate_per_s * took
    assert set(statuses[:s.beacon_burst]) == {202}
    after = await beacon_edge.figures()
    assert after["127.0.30.0/24"] == before["127.0.30.0/24"]
    # The flooding network only ever speaks for itself, and keeps a bounded window.
    assert set(after) == {"127.0.30.0/24", "127.0.31.0/24"}
    assert after["127.0.31.0/24"]["tokyo"].samples <= 32
