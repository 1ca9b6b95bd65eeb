"""The steering rework's scenarios (after commit 2db61d9), before and after: which edge
each client gets.

    .venv/bin/python bench/steering_scenarios.py [--before REV] [--after REV]

Starts `geodns serve` from the working tree (or `--after REV`), and with `--before` from
another revision of `src/` too (each revision taken with `git archive`, so it needs a
clone that holds it), on the same zone: the example pool `edges`
with its default chain, no `nets`, and health checking against one small server
that reports each member's load and hit rate. For each scenario it sets that health
and load state, waits until both servers report it, asks both through DNS (UDP, ECS
for the client's network of the demo database) and prints a Markdown table: the edge
chosen and its great-circle distance from the client. "London drained" asks from the
256 /24s of London's 81.2.0.0/16 and gives each edge's share.
"""

from __future__ import annotations

import argparse
import collections
import csv
import ipaddress
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the geo tests' servers, as the package `geo`

from geo.server import Server, ecs_query  # noqa: E402
from geo.steering_servers import EXAMPLE, Fleet, State, answer_of  # noqa: E402
from geodns.steering.demo_db import DEMO_CSV  # noqa: E402
from geodns.steering.distance import haversine_km  # noqa: E402

QUIET = {"idle": 0.0, "hit_rate": 0.0}  # every member idle and cold unless named
SCENARIOS: list[tuple[str, State, list[str]]] = [
    ("Los Angeles, Virginia at load 0.3", State("va-0.3", loads={"virginia": 0.3}, **QUIET),
     ["Los Angeles"]),
    ("Seoul, Tokyo at load 0.6", State("tokyo-0.6", loads={"tokyo": 0.6}, **QUIET), ["Seoul"]),
    ("warm Tokyo cache (hit rate 0.9, others 0)",
     State("warm-tokyo", hit_rates={"tokyo": 0.9}, **QUIET),
     ["Los Angeles", "Singapore", "Johannesburg"]),
    ("London drained", State("london-drained", forced={"london": "draining"}, **QUIET),
     ["London"]),
]
MEMBER_AT = {m["ipv4"]: (m["name"], m["lat"], m["lon"])
             for m in EXAMPLE["pools"]["edges"]["members"]}


def cities() -> dict[str, tuple[float, float, list[str]]]:
    """City -> (lat, lon, its client /24s): one for most, London's /16 in /24s."""
    out: dict[str, tuple[float, float, list[str]]] = {}
    lines = [ln for ln in DEMO_CSV.read_text(encoding="utf-8").splitlines()
             if not ln.startswith("#")]
    for row in csv.DictReader(lines):
        net = ipaddress.ip_network(row["network"])
        if net.version != 4 or not row["city"]:
            continue
        lat, lon, nets = out.setdefault(row["city"], (float(row["latitude"]),
                                                      float(row["longitude"]), []))
        if row["city"] == "London" and net.prefixlen == 16:
            nets.extend(str(n) for n in net.subnets(new_prefix=24))
        elif net.subnet_of(ipaddress.ip_network("198.18.0.0/15")):
            nets.append(str(net))
    return out


def source_tree(rev: str, tmp: Path) -> Path:
    """`src/` of a revision, unpacked into tmp."""
    out = tmp / rev.replace("/", "_")
    out.mkdir()
    archive = subprocess.run(["git", "archive", rev, "src"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out / "src"


def picks(server: Server, networks: list[str]) -> collections.Counter[str]:
    got: collections.Counter[str] = collections.Counter()
    for net in networks:
        _, records = answer_of(server.query(ecs_query("edge.plain.example", "A", net)))
        for record in records:
            got[record.rsplit(" ", 1)[1]] += 1
    return got


def describe(got: collections.Counter[str], lat: float, lon: float) -> str:
    total = sum(got.values())
    parts = []
    for address, n in got.most_common():
        name, mlat, mlon = MEMBER_AT[address]
        km = haversine_km(lat, lon, mlat, mlon)
        share = f"{n / total:.0%} " if len(got) > 1 else ""
        parts.append(f"{share}{name} ({km:,.0f} km)")
    return ", ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", help="git revision for a 'before' column (default: none)")
    ap.add_argument("--after", help="git revision for 'after' (default: the working tree)")
    args = ap.parse_args()
    where = cities()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        fleet = Fleet(tmp)
        try:
            servers, heads = [], []
            if args.before:
                servers.append(fleet.start(env={**os.environ, "PYTHONPATH": str(
                    source_tree(args.before, tmp))}))
                heads.append(f"before ({args.before})")
            src = source_tree(args.after, tmp) if args.after else ROOT / "src"
            servers.append(fleet.start(env={**os.environ, "PYTHONPATH": str(src)}))
            heads.append(f"after ({args.after or 'working tree'})")
            print(f"| scenario | client | {' | '.join(heads)} |")
            print("|---|---|" + "---|" * len(heads))
            for title, state, clients in SCENARIOS:
                fleet.set_state(state)
                for city in clients:
                    lat, lon, nets = where[city]
                    cells = [describe(picks(s, nets), lat, lon) for s in servers]
                    print(f"| {title} | {city} | {' | '.join(cells)} |", flush=True)
        finally:
            fleet.close()


if __name__ == "__main__":
    main()
