"""Parsing and validation of a zone's `pools:` and `nets:` sections.

Every problem is reported as `report(where, message)`, `where` being the path inside
the zone file ("pools.edges.members[2].lat"); parsing goes on after an error so that
one run lists them all. The zone loader refuses a file with any report.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from typing import Any

from .addresses import GRAIN
from .filters import FILTERS
from .health_settings import parse_health_settings
from .model import (
    AllDown,
    ChainStep,
    Location,
    Member,
    NetOverride,
    Pool,
    ScoreWeights,
    Watermarks,
)

Report = Callable[[str, str], None]

CONTINENTS = {"AF", "AN", "AS", "EU", "NA", "OC", "SA"}
POOL_KEYS = {"ttl", "answers", "chain", "score", "watermarks", "all_down", "accuracy_km"}
POOL_KEYS |= {"health", "members"}
MEMBER_KEYS = {"name", "ipv4", "ipv6", "lat", "lon", "country", "continent", "health_url"}
MEMBER_KEYS |= {"weight", "bias_km", "priority"}
NET_KEYS = {"lat", "lon", "country", "continent", "city", "members"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


class _Checker:
    """Small typed readers that report and return None on bad values."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def unknown_keys(self, spec: dict, allowed: set[str], where: str) -> None:
        for k in spec:
            if k not in allowed:
                self.report(f"{where}.{k}", f"unknown key; allowed: {', '.join(sorted(allowed))}")

    def number(self, value: Any, where: str, lo: float, hi: float, what: str) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            self.report(where, f"{what} must be a number, got {value!r}")
            return None
        if not lo <= value <= hi:
            self.report(where, f"{what} must be between {lo:g} and {hi:g}, got {value!r}")
            return None
        return float(value)

    def integer(self, value: Any, where: str, lo: int, hi: int, what: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.report(where, f"{what} must be an integer, got {value!r}")
            return None
        if not lo <= value <= hi:
            self.report(where, f"{what} must be between {lo} and {hi}, got {value!r}")
            return None
        return value

    def location(self, spec: dict, where: str) -> tuple[float | None, float | None, bool]:
        """(lat, lon, ok): both or neither of lat/lon must be given."""
        has_lat, has_lon = "lat" in spec, "lon" in spec
        if has_lat != has_lon:
            self.report(where, "give both lat and lon, or neither")
            return None, None, False
        if not has_lat:
            return None, None, True
        lat = self.number(spec["lat"], f"{where}.lat", -90, 90, "latitude")
        lon = self.number(spec["lon"], f"{where}.lon", -180, 180, "longitude")
        return lat, lon, lat is not None and lon is not None

    def region(self, spec: dict, where: str) -> tuple[str | None, str | None]:
        country, continent = spec.get("country"), spec.get("continent")
        if country is not None and not (
            isinstance(country, str) and len(country) == 2 and country.isalpha()
        ):
            self.report(f"{where}.country", f"country must be an ISO code like JP, got {country!r}")
            country = None
        if continent is not None and continent not in CONTINENTS:
            self.report(
                f"{where}.continent",
                f"continent must be one of {', '.join(sorted(CONTINENTS))}, got {continent!r}",
            )
            continent = None
        return (country.upper() if country else None), continent

    def addresses(self, value: Any, family: int, where: str) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            self.report(where, f"IPv{family} addresses must be an address or a list of them")
            return ()
        out = []
        for i, a in enumerate(items):
            w = where if isinstance(value, str) else f"{where}[{i}]"
            try:
                addr = ipaddress.ip_address(a)
            except ValueError:
                self.report(w, f"not an IPv{family} address: {a!r}")
                continue
            if addr.version != family:
                self.report(w, f"{a} is not an IPv{family} address")
                continue
            out.append(str(addr))
        return tuple(out)


def _member(c: _Checker, m: Any, where: str) -> Member | None:
    if not isinstance(m, dict):
        c.report(where, "a member must be a mapping with name, addresses and lat/lon")
        return None
    c.unknown_keys(m, MEMBER_KEYS, where)
    name = m.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        c.report(f"{where}.name", f"member needs a name (letters, digits, - and _), got {name!r}")
        return None
    v4 = c.addresses(m.get("ipv4", []), 4, f"{where}.ipv4")
    v6 = c.addresses(m.get("ipv6", []), 6, f"{where}.ipv6")
    if not v4 and not v6 and "ipv4" not in m and "ipv6" not in m:
        c.report(where, f"member {name} has no address (ipv4 and/or ipv6)")
    lat, lon, ok = c.location(m, where)
    country, continent = c.region(m, where)
    weight = c.number(m.get("weight", 1.0), f"{where}.weight", 0, 1e9, "weight")
    if weight == 0:
        c.report(f"{where}.weight", "weight must be above 0 (remove the member to take it out)")
    bias = c.number(m.get("bias_km", 0.0), f"{where}.bias_km", -20000, 20000, "bias_km")
    prio = c.integer(m.get("priority", 1), f"{where}.priority", 0, 1000, "priority")
    url = m.get("health_url")
    if url is not None and not (isinstance(url, str) and re.match(r"^(https?|tcp)://", url)):
        c.report(f"{where}.health_url", f"health_url must be http(s):// or tcp://, got {url!r}")
        url = None
    return Member(
        name, v4, v6, url, lat if ok else None, lon if ok else None, country, continent,
        weight or 1.0, bias if bias is not None else 0.0, prio if prio is not None else 1,
    )


def _chain(c: _Checker, spec: Any, where: str) -> tuple[ChainStep, ...] | None:
    if not isinstance(spec, list) or not spec:
        c.report(where, "chain must be a non-empty list of filters")
        return None
    steps = []
    for i, item in enumerate(spec):
        w = f"{where}[{i}]"
        if isinstance(item, str):
            name, args = item, None
        elif isinstance(item, dict) and len(item) == 1:
            name, args = next(iter(item.items()))
        else:
            c.report(w, "a filter is a name, or a mapping {name: arguments}")
            continue
        if name not in FILTERS:
            c.report(w, f"unknown filter {name!r}; known: {', '.join(sorted(FILTERS))}")
            continue
        try:
            steps.append(ChainStep(name, FILTERS[name].parse(args)))
        except ValueError as e:
            c.report(w, f"{name}: {e}")
    return tuple(steps)


def _score(c: _Checker, spec: Any, where: str) -> ScoreWeights | None:
    if not isinstance(spec, dict):
        c.report(where, "score must be a mapping {distance, load, hit_rate, within_km, "
                        "within_factor}")
        return None
    c.unknown_keys(spec, {"distance", "load", "hit_rate", "within_km", "within_factor"}, where)
    d = ScoreWeights()
    vals = {
        k: c.number(spec.get(k, getattr(d, k)), f"{where}.{k}", 0, 1000, f"{k} weight")
        for k in ("distance", "load", "hit_rate")
    }
    vals["within_km"] = c.number(spec.get("within_km", d.within_km), f"{where}.within_km",
                                 0, 40_075, "within_km")
    vals["within_factor"] = c.number(spec.get("within_factor", d.within_factor),
                                     f"{where}.within_factor", 1, 1000, "within_factor")
    if any(v is None for v in vals.values()):
        return None
    if not any(vals[k] for k in ("distance", "load", "hit_rate")):
        c.report(where, "at least one score weight must be above 0")
        return None
    return ScoreWeights(**vals)  # type: ignore[arg-type]


def _watermarks(c: _Checker, spec: Any, where: str) -> Watermarks | None:
    if not isinstance(spec, dict):
        c.report(where, "watermarks must be a mapping {low, high, spread}")
        return None
    c.unknown_keys(spec, {"low", "high", "spread"}, where)
    d = Watermarks()
    low = c.number(spec.get("low", d.low), f"{where}.low", 0, 1, "low watermark")
    high = c.number(spec.get("high", d.high), f"{where}.high", 0, 1, "high watermark")
    spread = c.integer(spec.get("spread", d.spread), f"{where}.spread", 1, 100, "spread")
    if low is None or high is None or spread is None:
        return None
    if low >= high:
        c.report(where, f"low watermark ({low:g}) must be below high ({high:g})")
        return None
    return Watermarks(low, high, spread)


def _absolute(name: str, zone: str) -> str:
    if name.endswith("."):
        return name
    return f"{name}.{zone.rstrip('.')}." if name != "@" else f"{zone.rstrip('.')}."


def _all_down(c: _Checker, spec: Any, where: str, zone: str) -> AllDown | None:
    if spec in ("all", "nodata"):
        return AllDown(spec)
    if isinstance(spec, dict) and set(spec) == {"cname"} and isinstance(spec["cname"], str):
        target = _absolute(spec["cname"], zone)
        if all(_LABEL.match(label) for label in target.rstrip(".").split(".")):
            return AllDown("cname", target)
        c.report(f"{where}.cname", f"not a domain name: {spec['cname']!r}")
        return None
    c.report(where, "all_down must be all, nodata or {cname: NAME}")
    return None


def parse_pool(c: _Checker, zone: str, name: str, spec: Any, where: str) -> Pool | None:
    if not isinstance(spec, dict):
        c.report(where, "a pool must be a mapping with at least members")
        return None
    c.unknown_keys(spec, POOL_KEYS, where)
    ttl = c.integer(spec.get("ttl", 30), f"{where}.ttl", 0, 2**31 - 1, "ttl")
    answers = c.integer(spec.get("answers", 1), f"{where}.answers", 1, 64, "answers")
    pool = Pool(name=name, ttl=ttl if ttl is not None else 30, answers=answers or 1)
    if "chain" in spec:
        pool.chain = _chain(c, spec["chain"], f"{where}.chain") or pool.chain
    if "score" in spec:
        pool.score = _score(c, spec["score"], f"{where}.score") or pool.score
    if "watermarks" in spec:
        marks = _watermarks(c, spec["watermarks"], f"{where}.watermarks")
        pool.watermarks = marks or pool.watermarks
    if "all_down" in spec:
        pool.all_down = _all_down(c, spec["all_down"], f"{where}.all_down", zone) or pool.all_down
    if "accuracy_km" in spec:
        acc = c.number(spec["accuracy_km"], f"{where}.accuracy_km", 1, 20000, "accuracy_km")
        pool.accuracy_km = acc or pool.accuracy_km
    health = spec.get("health") or {}
    if not isinstance(health, dict):
        c.report(f"{where}.health", "health must be a mapping")
        health = {}
    pool.health = dict(health)
    parse_health_settings(health, c.report, f"{where}.health")
    members = spec.get("members")
    if not isinstance(members, list) or not members:
        c.report(f"{where}.members", "a pool needs a non-empty list of members")
        return pool
    seen: set[str] = set()
    for i, m in enumerate(members):
        member = _member(c, m, f"{where}.members[{i}]")
        if member is None:
            continue
        if member.name in seen:
            c.report(f"{where}.members[{i}].name", f"duplicate member name {member.name!r}")
            continue
        seen.add(member.name)
        pool.members.append(member)
    return pool


def parse_pools(zone: str, spec: Any, report: Report) -> dict[str, Pool]:
    c = _Checker(report)
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        report("pools", "pools must be a mapping of pool name to pool")
        return {}
    pools = {}
    for name, pspec in spec.items():
        if not isinstance(name, str) or not _NAME.match(name):
            report(f"pools.{name}", "pool names are letters, digits, - and _")
            continue
        pool = parse_pool(c, zone, name, pspec, f"pools.{name}")
        if pool is not None:
            pools[name] = pool
    return pools


def parse_nets(spec: Any, pools: dict[str, Pool], report: Report) -> list[NetOverride]:
    c = _Checker(report)
    if spec is None:
        return []
    if not isinstance(spec, dict):
        report("nets", "nets must be a mapping of CIDR to {lat, lon, ...} or {members: [...]}")
        return []
    known = {m.name for p in pools.values() for m in p.members}
    out: dict[Any, NetOverride] = {}
    for key, value in spec.items():
        where = f"nets.{key}"
        try:
            net = ipaddress.ip_network(str(key))
        except ValueError as e:
            report(where, f"not a network in CIDR form: {e}")
            continue
        if net.prefixlen > GRAIN[net.version]:
            report(
                where,
                f"prefix longer than /{GRAIN[net.version]}: answers are decided per "
                f"/{GRAIN[net.version]} (the finest ECS grain); use a shorter prefix",
            )
            continue
        if net in out:
            report(where, f"{net} is listed twice")
            continue
        if not isinstance(value, dict):
            report(where, "an override is a mapping {lat, lon, country, continent, city, members}")
            continue
        c.unknown_keys(value, NET_KEYS, where)
        lat, lon, ok = c.location(value, where)
        country, continent = c.region(value, where)
        members = value.get("members")
        if members is not None:
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                report(f"{where}.members", "members must be a list of member names")
                members = None
            else:
                for i, m in enumerate(members):
                    if m not in known:
                        report(f"{where}.members[{i}]", f"unknown member {m!r}")
        if lat is None and members is None:
            if ok:
                report(where, "an override needs a location (lat, lon) or members, or both")
            continue
        city = value.get("city")
        loc = (Location(lat, lon, 0.0, country, continent, city)
               if lat is not None and lon is not None else None)
        out[net] = NetOverride(net, loc, tuple(members) if members is not None else None)
    return list(out.values())
