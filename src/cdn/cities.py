"""Where the simulated clients live: the cities of the demo GeoIP database.

Every city of the demo database has a /24 in the benchmarking range 198.18.0.0/15
(RFC 2544, never a real client), which is the network a client of that city sends as
its EDNS Client Subnet. The table is the geo package's (`geo-demo.csv`); this module
only reads it and adds how many clients each city has.
"""

from __future__ import annotations

import csv
import ipaddress
import unicodedata
from importlib import resources

from cdn.errors import CdnError
from cdn.simulate import City

BENCH_RANGE = ipaddress.IPv4Network("198.18.0.0/15")

# Relative numbers of clients: the big regions of the example pool weigh most; the
# cities without an edge of their own show how far-away clients are steered.
DEFAULT_WEIGHTS = {
    "tokyo": 4, "london": 3, "ashburn": 4, "mumbai": 3, "sao-paulo": 2, "sydney": 1.5,
    "frankfurt": 2, "los-angeles": 3, "paris": 2, "singapore": 2, "seoul": 1.5,
    "johannesburg": 1, "buenos-aires": 1,
}


def slug(name: str) -> str:
    """'São Paulo' → 'sao-paulo': the name used on the command line."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "-".join(plain.lower().split())


def demo_cities(weights: dict[str, float] | None = None) -> list[City]:
    """Every city with a benchmarking-range network, weighted (default weight 1)."""
    weights = DEFAULT_WEIGHTS if weights is None else weights
    table = resources.files("geodns.steering") / "data" / "geo-demo.csv"
    lines = [ln for ln in table.read_text(encoding="utf-8").splitlines()
             if not ln.startswith("#")]
    cities = []
    for row in csv.DictReader(lines):
        net = ipaddress.ip_network(row["network"])
        if row["city"] and isinstance(net, ipaddress.IPv4Network) \
                and net.subnet_of(BENCH_RANGE):
            name = slug(row["city"])
            cities.append(City(name, float(weights.get(name, 1.0)), net))
    return cities


class UnknownCity(CdnError, ValueError):
    """A city name that is not one of the demo cities; the message lists them."""


def city_network(name: str) -> ipaddress.IPv4Network:
    """The ECS network of a city given by name ('tokyo', 'São Paulo', 'sao-paulo')."""
    wanted = slug(name)
    for city in demo_cities():
        if city.name == wanted:
            return city.network
    known = ", ".join(c.name for c in demo_cities())
    raise UnknownCity(f"unknown city {name!r}; known: {known}")
