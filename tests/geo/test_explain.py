"""Explanations come from the same decision as the answers and show every step."""

from __future__ import annotations

import json

from geodns.steering.explain import format_text
from geodns.steering.health import Status

from .conftest import ecs, src


def test_explanation_for_a_tokyo_client(example, health):
    health.set("edges", "london", Status.DOWN)
    client = ecs("198.18.1.0/24")
    e = example.explain("edges", "A", client)
    json.dumps(e)  # JSON-ready
    assert e["location"]["city"] == "Tokyo" and e["location"]["accuracy_km"] == 5
    assert e["lookups"][0]["kind"] == "geoip" and e["lookups"][0]["network"] == "198.18.1.0/24"
    members = {m["name"]: m for m in e["members"]}
    assert members["tokyo"]["distance_km"] == 0 and members["london"]["status"] == "down"
    assert abs(members["sydney"]["distance_km"] - 7827) < 2
    assert [s["filter"] for s in e["chain"]] == ["score", "shed", "healthy", "first_n"]
    healthy = e["chain"][2]
    assert "london" not in healthy["candidates"] and any("london" in n for n in healthy["notes"])
    assert e["pick"] == ["tokyo"] and e["addresses"] == ["127.0.1.1"]
    answer = example.answer("edges", "A", client)
    assert (e["scope"], e["ttl"], tuple(e["addresses"])) == (answer.scope, answer.ttl,
                                                             answer.addresses)
    text = format_text(e)
    for words in ("Tokyo", "accuracy 5 km", "score ->", "healthy ->", "pick: tokyo -> 127.0.1.1",
                  "ECS scope /24", "TTL 30"):
        assert words in text, text


def test_explanation_of_a_nets_client_and_shedding(example, health):
    health.set("edges", "saopaulo", load=0.95, shed=1.0)
    e = example.explain("edges", "A", src("127.0.6.1"))
    assert e["signal"].startswith("nets 127.0.6.0/24")
    assert e["pick"] != ["saopaulo"]
    assert any("sheds 100%" in n for s in e["chain"] for n in s["notes"])
