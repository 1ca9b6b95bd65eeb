"""Per-member bias and load shedding between the watermarks move clients as specified."""

from __future__ import annotations

from collections import Counter

from geodns.steering.health import Status

from .conftest import CITY_ECS, EXAMPLE_ZONE, ecs, picked, src, steering_from

TOKYO_NETS = [f"126.0.{i}.0/24" for i in range(256)]  # all Tokyo (one GeoIP /16)


def spread(s, nets=TOKYO_NETS) -> Counter:
    return Counter(picked(s, ecs(n))[0] for n in nets)


def test_bias_km_pulls_clients_towards_a_member(geodb):
    zone = """
pools:
  p:
    chain: [nearest, first_n]
    members:
      - {name: london, ipv4: 127.0.1.2, lat: 51.5074, lon: -0.1278}
      - {name: frankfurt, ipv4: 127.0.1.7, lat: 50.1109, lon: 8.6821, bias_km: BIAS}
"""
    paris = ecs("198.18.11.0/24")  # London 344 km, Frankfurt 478 km

    def pick(bias: str, client) -> list[str]:
        return picked(steering_from(zone.replace("BIAS", bias), geodb), client, pool="p")

    assert pick("0", paris) == ["london"]
    assert pick("100", paris) == ["london"]
    assert pick("150", paris) == ["frankfurt"]  # 478 - 150 = 328 < 344
    # A negative bias pushes clients away: even Frankfurt's own clients go to London.
    assert pick("-700", ecs("198.18.7.0/24")) == ["london"]


def test_below_low_watermark_nothing_moves(example, health):
    health.set("edges", "tokyo", load=0.7)  # the controller sheds nothing: shed 0
    assert spread(example) == {"tokyo": 256}
    assert example.answer("edges", "A", ecs(TOKYO_NETS[0])).scope == 16  # no hash used


def test_the_published_fraction_of_client_networks_is_shed(example, health):
    health.set("edges", "tokyo", load=0.8, shed=0.5)  # half the networks leave
    half = spread(example)
    assert 100 < half["tokyo"] < 156
    shed_at_half = {n for n in TOKYO_NETS if picked(example, ecs(n)) != ["tokyo"]}
    health.set("edges", "tokyo", load=0.85, shed=0.75)  # three quarters
    assert 30 < spread(example)["tokyo"] < 100
    shed_at_75 = {n for n in TOKYO_NETS if picked(example, ecs(n)) != ["tokyo"]}
    assert shed_at_half <= shed_at_75  # networks already shed stay shed
    # Shedding decisions hang on the client /24: the scope says so.
    assert example.answer("edges", "A", ecs(TOKYO_NETS[0])).scope == 24


def test_shed_clients_go_to_the_nearest_member_with_spare_capacity(example, health):
    # From Tokyo: mumbai 6,724 km, sydney 7,827 km, then Europe and the Americas.
    health.set("edges", "tokyo", load=0.95, shed=1.0)
    assert spread(example) == {"mumbai": 256}
    health.set("edges", "mumbai", load=0.9)  # at high: no spare capacity
    assert spread(example) == {"sydney": 256}


def test_a_dead_leader_sends_its_clients_to_the_nearest(example, health):
    health.set("edges", "tokyo", Status.DOWN)
    assert spread(example) == {"mumbai": 256}
    assert picked(example, ecs(CITY_ECS["London"][0])) == ["london"]  # others unmoved


def test_spread_shares_the_shed_clients_among_the_nearest(geodb, health):
    text = EXAMPLE_ZONE.read_text().replace("high: 0.9}", "high: 0.9, spread: 2}")
    assert "spread: 2" in text
    s = steering_from(text, geodb)
    s.set_health(health)
    health.set("edges", "tokyo", Status.DOWN)
    got = spread(s)
    assert set(got) == {"mumbai", "sydney"} and min(got.values()) > 60


def test_a_resolver_without_ecs_is_shed_only_past_one_half(example, health):
    """A query without ECS stands for a whole resolver's clients: the fine-grained ECS
    networks move first."""
    resolvers = [src(f"126.0.{i}.53") for i in range(64)]  # Tokyo resolvers, no ECS

    def moved() -> int:
        return sum(picked(example, r) != ["tokyo"] for r in resolvers)

    health.set("edges", "tokyo", load=0.8, shed=0.45)
    assert moved() == 0 and spread(example)["tokyo"] < 180
    health.set("edges", "tokyo", load=0.9, shed=0.75)
    assert 10 < moved() < 54  # about half of them
    health.set("edges", "tokyo", Status.DOWN)
    assert moved() == 64


def test_a_drained_london_sends_its_clients_to_frankfurt_not_across_the_atlantic(
        example, health):
    health.set("edges", "london", Status.DRAINING)
    for city in ("London", "Paris"):  # Frankfurt 638 / 478 km, Virginia 5,917 / 6,180 km
        assert picked(example, ecs(CITY_ECS[city][0])) == ["frankfurt"], city
