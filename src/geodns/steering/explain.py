"""Explanations of steering decisions: a JSON-ready dict, and the same as readable text."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from typing import Any

from geodns.errors import GeoDNSError

from ..names import find_zone
from .decide import Decision
from .geoip import GeoDB
from .model import Client, Location, PoolAnswer


def _loc(loc: Location | None) -> dict[str, Any] | None:
    return dataclasses.asdict(loc) if loc is not None else None


def _args(args: Any) -> Any:
    if dataclasses.is_dataclass(args) and not isinstance(args, type):
        return dataclasses.asdict(args)
    return args


def _round(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)


def explanation(
    zone: str, pool: str, qtype: str, client: Client, d: Decision, geoip: GeoDB,
    cached: PoolAnswer | None = None,
) -> dict[str, Any]:
    """`d` is the decision (its chain); `cached` the answer the decision cache served,
    if it did (then that is the answer shown)."""
    loc = d.located
    n = loc.client
    network = ipaddress.ip_network(f"{n.address}/{d.prefix}", strict=False)
    answer = cached or d.answer
    return {
        "zone": zone,
        "pool": pool,
        "qtype": qtype,
        "client": {
            "source": str(client.source),
            "ecs": str(client.ecs) if client.ecs is not None else None,
            "located": "ecs" if loc.ecs else "source",
            "address": str(n.address),
            "embedded": n.embedded,
        },
        "geoip_database": geoip.description,
        "lookups": [
            {
                "of": lk.of,
                "kind": lk.kind,
                "network": lk.network,
                "location": _loc(lk.location),
                "members": list(lk.members) if lk.members is not None else None,
            }
            for lk in loc.lookups
        ],
        "location": _loc(loc.location),
        "signal": loc.signal,
        "nets_members": list(loc.members) if loc.members else None,
        "members": [
            {
                "name": c.name,
                "addresses": list(c.member.addresses(d.family)),
                "distance_km": _round(c.km),
                "bias_km": c.member.bias_km,
                "effective_km": _round(c.effective_km),
                "status": c.health.status.value,
                "load": c.health.load,
                "hit_rate": c.health.hit_rate,
                "weight": c.member.weight,
                "priority": c.member.priority,
                "score": round(c.score, 4),
            }
            for c in d.members
        ],
        "chain": [
            {"filter": s.filter, "args": _args(s.args), "candidates": list(s.candidates),
             "notes": list(s.notes)}
            for s in d.steps
        ],
        "all_down": d.all_down,
        "settling": answer.settling,
        "pick": list(answer.picked),
        "addresses": list(answer.addresses),
        "cname": answer.cname,
        "decided_for": str(network),
        "scope": answer.scope,
        "by_source": answer.by_source,
        "ttl": answer.ttl,
        "cached": cached is not None,
    }


def _fmt_loc(loc: dict[str, Any] | None) -> str:
    if loc is None:
        return "no location"
    where = ", ".join(x for x in (loc.get("city"), loc.get("country"), loc.get("continent")) if x)
    acc = f", accuracy {loc['accuracy_km']:g} km" if loc.get("accuracy_km") else ""
    return f"{where or '?'} ({loc['lat']:.4f}, {loc['lon']:.4f}{acc})"


def format_text(e: dict[str, Any]) -> str:
    """The explanation as the `geodns explain` command prints it."""
    c = e["client"]
    lines = [
        f"{e.get('name', '')} {e['qtype']}: pool {e['pool']} (zone {e['zone']})".lstrip(),
        f"client: source {c['source']}, ECS {c['ecs'] or 'none'}; located by {c['located']} "
        f"address {c['address']}" + (f" (unwrapped from {c['embedded']})" if c["embedded"] else ""),
        f"GeoIP database: {e['geoip_database']}",
    ]
    for lk in e["lookups"]:
        extra = f", members {lk['members']}" if lk["members"] else ""
        where = _fmt_loc(lk["location"])
        lines.append(f"  {lk['kind']:5} ({lk['of']}) {lk['network']}: {where}{extra}")
    lines.append(f"location: {_fmt_loc(e['location'])} from {e['signal']}")
    if e["nets_members"]:
        lines.append(f"nets member list: {', '.join(e['nets_members'])}")
    lines.append("")
    lines.append(
        f"  {'member':10} {'km':>8} {'bias':>6} {'status':>8} {'load':>5} {'hit':>5} "
        f"{'weight':>6} {'prio':>4} {'score':>7}"
    )
    for m in e["members"]:
        km = "-" if m["distance_km"] is None else f"{m['distance_km']:,.0f}"
        lines.append(
            f"  {m['name']:10} {km:>8} {m['bias_km']:>6g} {m['status']:>8} {m['load']:>5.2f} "
            f"{m['hit_rate']:>5.2f} {m['weight']:>6g} {m['priority']:>4} {m['score']:>7.4f}"
        )
    lines.append("")
    lines.append("chain:")
    for s in e["chain"]:
        args = f"({s['args']})" if s["args"] not in (None, {}, []) else ""
        lines.append(f"  {s['filter']}{args} -> {', '.join(s['candidates']) or '(none)'}")
        for note in s["notes"]:
            lines.append(f"      {note}")
    if e["all_down"]:
        lines.append(f"no candidate left: all_down policy {e['all_down']}")
    answer = e["cname"] and f"CNAME {e['cname']}" or ", ".join(e["addresses"]) or "NODATA"
    if e["settling"]:
        answer = "SERVFAIL (the pool's health has not settled yet: resolvers retry)"
    cached = " (from the decision cache)" if e["cached"] else ""
    lines.append(f"pick: {', '.join(e['pick']) or '(none)'} -> {answer}{cached}")
    if c["ecs"] is None:
        scope = "no ECS in the query (the server caches the answer per source /24 or /56)"
    else:
        scope = f"ECS scope /{e['scope']}"
        if e["by_source"]:
            scope += " (the answer also depends on the resolver's address)"
    lines.append(f"decided for {e['decided_for']}; {scope}; TTL {e['ttl']}")
    return "\n".join(lines)


class ExplainError(GeoDNSError, ValueError):
    """A request for an explanation that cannot be answered; `status` as in HTTP."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_client(source: str, ecs: str | None) -> Client:
    """A Client from text: the source address and an optional ECS prefix (a /0 = none)."""
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        raise ExplainError(f"client {source!r} is not an IP address") from None
    if not ecs:
        return Client(address)
    try:
        net = ipaddress.ip_network(ecs, strict=False)
    except ValueError:
        raise ExplainError(f"ecs {ecs!r} is not a prefix like 126.0.1.0/24") from None
    return Client(address, net if net.prefixlen > 0 else None)


def explain_name(
    zones: Mapping[str, Any], name: str, qtype: str, source: str, ecs: str | None
) -> dict[str, Any]:
    """Explain the answer to `name` for a client, in the zones being served.

    `zones` maps origins ("cdn.example.") to loaded zones, which have `pools` (owner
    -> pool name) and `steering`.
    """
    qtype = qtype.upper()
    if qtype not in ("A", "AAAA"):
        raise ExplainError(f"type must be A or AAAA, got {qtype!r}")
    client = parse_client(source, ecs)
    qname = name.lower().rstrip(".") + "."
    zone = find_zone(zones, qname)
    if zone is None:
        raise ExplainError(f"no zone served here holds {qname}", 404)
    pool = zone.pools.get(qname)
    if pool is None or zone.steering is None:
        raise ExplainError(f"{qname} is not bound to a pool in zone {zone.origin}", 404)
    out = zone.steering.explain(pool, qtype, client)
    return {"name": qname, **out}
