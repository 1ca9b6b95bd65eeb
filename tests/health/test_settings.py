"""Parsing and validating a pool's `health:` settings."""

from __future__ import annotations

from geodns.steering.health_settings import DEFAULTS, check_health_url, parse_health_settings


def collect():
    errors: list[tuple[str, str]] = []
    return errors, lambda where, message: errors.append((where, message))


def test_defaults_detect_a_dead_edge_within_three_seconds():
    s = parse_health_settings(None, lambda w, m: None)
    assert s == DEFAULTS
    # fall probes, each started at most interval*(1+jitter) after the previous one,
    # the last one failing after at most `timeout`, plus the wait for the first probe.
    worst_down = s.fall * s.interval * (1 + s.jitter) + s.timeout
    worst_up = s.rise * s.interval * (1 + s.jitter) + s.timeout
    assert worst_down < 3 and worst_up < 3
    assert s.reset <= 2  # two successes between failures clear the count: no flapping


def test_valid_settings_are_taken():
    errors, report = collect()
    s = parse_health_settings(
        {"type": "tcp", "interval": 1, "timeout": 0.5, "fall": 2, "rise": 5, "expect": [200, 204],
         "body": "ok", "body_regex": "o+k", "min_ttl": 2, "max_ttl": 20}, report)
    assert errors == []
    assert (s.type, s.interval, s.fall, s.rise, s.expect) == ("tcp", 1.0, 2, 5, (200, 204))
    assert (s.min_ttl, s.max_ttl, s.body, s.body_regex) == (2, 20, "ok", "o+k")


def test_each_bad_value_is_reported_with_its_path_and_defaulted():
    errors, report = collect()
    s = parse_health_settings(
        {"interval": "fast", "fall": 0, "rise": 2.5, "type": "icmp", "expect": [99],
         "body_regex": "(", "colour": "blue"}, report, "pools.edges.health")
    where = {w for w, _ in errors}
    assert where == {
        "pools.edges.health.interval", "pools.edges.health.fall", "pools.edges.health.rise",
        "pools.edges.health.type", "pools.edges.health.expect",
        "pools.edges.health.body_regex", "pools.edges.health.colour",
    }
    default = DEFAULTS
    assert (s.interval, s.fall, s.rise, s.type, s.expect) == (
        default.interval, default.fall, default.rise, None, (200,))
    assert any("between 1 and 1000" in m for _, m in errors)


def test_timeout_longer_than_interval_is_refused():
    errors, report = collect()
    s = parse_health_settings({"interval": 1, "timeout": 2}, report)
    assert errors and errors[0][0] == "health.timeout"
    assert s.timeout == 1.0


def test_not_a_mapping():
    errors, report = collect()
    assert parse_health_settings([1, 2], report) == DEFAULTS
    assert errors == [("health", "must be a mapping of settings, not list")]


def test_health_urls():
    errors, report = collect()
    assert check_health_url("http://127.0.1.1:8000/health", report) is not None
    assert check_health_url("tcp://127.0.1.1:8000", report) is not None
    assert check_health_url("tcp://127.0.1.1", report) is None
    assert check_health_url("ftp://x/", report) is None
    assert check_health_url(5, report) is None
    assert len(errors) == 3


def test_the_zone_loader_rejects_bad_health_settings(tmp_path):
    from geodns.zonefile import load_zones

    zone = """
zone: bad-health.example
soa: {mname: ns1, rname: hostmaster, serial: 1}
records:
  "@": {NS: [ns1]}
  ns1: {A: 127.0.0.1}
  edge: {pool: edges}
pools:
  edges:
    health: {interval: 0, rise: many}
    members:
      - {name: a, ipv4: 127.0.1.1, lat: 0, lon: 0, health_url: "http://127.0.1.1:8000/health"}
"""
    (tmp_path / "bad-health.example.yaml").write_text(zone)
    zones, problems = load_zones(tmp_path)
    assert zones == {}
    text = "\n".join(map(str, problems))
    assert "pools.edges.health.interval" in text and "pools.edges.health.rise" in text
