"""`geodns explain NAME [--client IP] [--ecs PREFIX] [--zones DIR] [--geoip PATH] [--server URL]`.

Loads the zone files (as `geodns check` does) and prints how the answer to NAME is
chosen for that client: the GeoIP record and its accuracy, every member's distance,
health, load, hit rate, bias and score, the filter chain step by step, the pick, the
ECS scope and the TTL. Without a running server there is no health checker, so
every member counts as up and idle. With `--server URL` (a running server's admin
port) it prints the live decision instead: the server's GET /admin/explain, which
takes the answer's own path (decision cache included) and says whether it was cached.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

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
    p.add_argument("--server", metavar="URL",
                   help="ask a running server's admin port, e.g. http://127.0.0.1:8053, for "
                   "the live decision (its health, load and caches)")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    return p


def _ask_server(args: argparse.Namespace) -> dict[str, Any]:
    query = {"name": args.name, "type": args.type, "client": args.client}
    if args.ecs:
        query["ecs"] = args.ecs
    url = f"{args.server.rstrip('/')}/admin/explain?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise ExplainError(json.loads(e.read() or b"{}").get("error", str(e)), e.code) from None
    except (OSError, ValueError) as e:
        raise ExplainError(f"cannot ask {args.server}: {e}", 503) from None


def run(args: argparse.Namespace) -> int:
    if args.server:
        try:
            out = _ask_server(args)
        except ExplainError as e:
            print(f"geodns explain: {e}", file=sys.stderr)
            return 2
        print(json.dumps(out, indent=2, ensure_ascii=False) if args.json else format_text(out))
        return 0
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
