"""`geodns explain NAME [--client IP] [--ecs PREFIX] [--zones DIR] [--geoip PATH]`.

Loads the zone files (as `geodns check` does) and prints how the answer to NAME is
chosen for that client: the GeoIP record and its accuracy, every member's distance,
health, load, hit rate, bias and score, the filter chain step by step, the pick, the
ECS scope and the TTL. Without a running server there is no health checker, so
every member counts as up and idle; a running server gives the live decision at
GET /admin/explain and as TXT for `_explain.NAME`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import geoip
from .explain import ExplainError, explain_name, format_text


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("explain", help="explain the answer to a pool-bound name for a client",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("name", help="a pool-bound name, e.g. edge.cdn.example")
    p.add_argument("--type", default="A", choices=["A", "AAAA"], help="query type (default A)")
    p.add_argument("--client", default="127.0.0.1", metavar="IP",
                   help="the query's source address (default 127.0.0.1)")
    p.add_argument("--ecs", metavar="PREFIX", help="EDNS Client Subnet, e.g. 126.0.1.0/24")
    p.add_argument("--zones", type=Path, default=Path("zones"), metavar="DIR",
                   help="directory of zone files (default ./zones)")
    p.add_argument("--geoip", type=Path, metavar="PATH",
                   help="GeoIP City database (default: the demo database)")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    from geodns.zonefile import load_zones

    try:
        db = geoip.GeoDB(args.geoip) if args.geoip else geoip.shared()
    except geoip.GeoIPError as e:
        print(f"geodns explain: {e}", file=sys.stderr)
        return 2
    zones, problems = load_zones(args.zones)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {args.zones}", file=sys.stderr)
        return 1
    for zone in zones.values():
        if zone.steering is not None:
            zone.steering.set_geoip(db)
    try:
        out = explain_name(zones, args.name, args.type, args.client, args.ecs)
    except ExplainError as e:
        print(f"geodns explain: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print(format_text(out))
        print("(health: every member up and idle: no checker runs in this command)")
    return 0
