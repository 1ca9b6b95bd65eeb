"""Random query sequences against a running server: no answer leaks to another client.

A long-running server answers random sequences of queries (ECS and none; located,
unlocatable, private, CGNAT, loopback, ULA, IPv4, IPv6, IPv4-mapped; UDP and TCP;
zones with and without `nets`, a strict geofence) in several health and load states.
Every answer must equal what a server in the same state with empty caches (reloaded
before each question: a fresh decision cache and response cache) answers for that
query alone, and every client network inside the ECS scope it returned must get the
same answer from that server.
"""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .server import ecs_query
from .steering_servers import STATES, Fleet, answer_of, scope_of, wait_state

CITY_V4 = [f"198.18.{n}.0/24" for n in range(1, 14)]
CITY_V6 = [f"2001:db8:{n:x}::/56" for n in range(1, 14)]
UNUSABLE = ["10.{a}.{b}.0/24", "192.168.{a}.0/24", "172.16.{a}.0/24", "100.64.{a}.0/24",
            "100.127.{a}.0/24", "127.{a}.{b}.0/24", "169.254.{a}.0/24"]
ECS = st.one_of(
    st.sampled_from(CITY_V4 + CITY_V6),
    st.sampled_from([f"::ffff:198.18.{n}.0/120" for n in range(1, 14)]),  # v4-mapped
    st.sampled_from(["203.0.113.0/24", "11.0.7.0/24", "2400:1:2::/56", "198.51.100.0/24"]),
    st.builds(lambda f, a, b: f.format(a=a, b=b), st.sampled_from(UNUSABLE),
              st.integers(0, 255), st.integers(0, 255)),
    st.builds(lambda a: f"fd{a:02x}:1::/56", st.integers(0, 255)),  # ULA
    st.builds(lambda a: f"fe80:0:0:{a:x}::/56", st.integers(0, 255)),  # link-local
)
QUERY = st.tuples(
    st.sampled_from(["edge.nets.example", "edge.plain.example", "fenced.plain.example",
                     "www.plain.example"]),
    st.sampled_from(["A", "AAAA"]),
    st.one_of(st.none(), ECS),
    st.sampled_from(["127.0.0.1", "127.0.2.1", "127.0.3.9", "127.0.8.1", "127.77.0.1"]),
    st.booleans(),  # TCP
)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    f = Fleet(tmp_path_factory.mktemp("consistency"))
    f.start()  # the server under test: its caches fill up as it answers
    f.start()  # the reference: emptied by a reload before every question
    yield f
    f.close()


def inside(network: str, scope: int, rng: random.Random) -> str:
    """A random client network of the query's own length inside `network`'s first
    `scope` bits."""
    net = ipaddress.ip_network(network, strict=False)
    scoped = ipaddress.ip_network(f"{net.network_address}/{min(scope, net.max_prefixlen)}",
                                  strict=False)
    host = int(scoped.network_address) + rng.randrange(scoped.num_addresses)
    address = ipaddress.ip_address(host)
    return str(ipaddress.ip_network(f"{address}/{net.prefixlen}", strict=False))


@pytest.mark.timeout(1200)
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(state=st.sampled_from(STATES), queries=st.lists(QUERY, min_size=1, max_size=6),
       seed=st.integers(0, 2**32 - 1))
def test_every_answer_is_the_fresh_answer_for_every_client_in_its_scope(
        fleet, state, queries, seed):
    server, reference = fleet.servers
    fleet.set_state(state)
    rng = random.Random(seed)

    def fresh(name: str, rdtype: str, ecs: str | None, source: str):
        reference.http("POST", "/admin/reload")
        wait_state(reference, state)  # a reload may re-probe: wait for the same state
        return answer_of(reference.query(ecs_query(name, rdtype, ecs), source=source))

    for name, rdtype, ecs, source, tcp in queries:
        r = server.query(ecs_query(name, rdtype, ecs), tcp=tcp, source=source)
        got = answer_of(r)
        assert got == fresh(name, rdtype, ecs, source), (state.name, name, rdtype, ecs, source)
        scope = scope_of(r)
        if ecs is None:
            assert scope is None
            continue
        assert scope is not None
        for _ in range(2):
            other = inside(ecs, scope, rng)
            assert fresh(name, rdtype, other, source) == got, (
                f"{ecs} got scope /{scope}, but {other} gets another answer "
                f"({state.name}, {name} {rdtype}, source {source})")
