#!/usr/bin/env python3
"""A big zone for geodns and gdnsd: 100,000 A records and 1,000 geo-steered pools.

    .venv/bin/python bench/big_zone.py OUT [--records 100000] [--pools 1000]

writes OUT/geodns/big.example.yaml (a geodns zone directory) and OUT/gdnsd/ (a gdnsd
config directory: config, zones/big.example, geoip/geo-test.mmdb) holding the same
data: SOA, NS, `hostN A` for N < records, and `poolN` steered over four members (the
datacenters of the bench scenario, each with its own addresses per pool) by distance
from the client's GeoIP location. Used by bench/big_zone_bench.py; importable
(`write(out, records, pools, port)`).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

BENCH = Path(__file__).resolve().parent
DATACENTERS = {"tokyo": (35.6895, 139.6917), "london": (51.5074, -0.1278),
               "virginia": (39.0438, -77.4874), "mumbai": (19.0760, 72.8777)}
ZONE = "big.example"


def address(n: int, base: int = 10) -> str:
    return f"{base}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def member(p: int, dc: int) -> str:
    return address(p * 4 + dc, base=172)


def write_geodns(out: Path, records: int, pools: int, serial: int = 1) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"zone: {ZONE}", "ttl: 300",
             f"soa: {{mname: ns1, rname: hostmaster, serial: {serial}, minimum: 60}}",
             "records:", '  "@": {NS: ns1}', "  ns1: {A: 127.0.0.1}"]
    lines += [f"  host{n}: {{A: {address(n)}}}" for n in range(records)]
    lines += [f"  pool{p}: {{pool: p{p}}}" for p in range(pools)]
    lines.append("pools:")
    for p in range(pools):
        lines += [f"  p{p}:", "    ttl: 30", "    members:"]
        lines += [f"      - {{name: {dc}, ipv4: {member(p, i)}, lat: {lat}, lon: {lon}}}"
                  for i, (dc, (lat, lon)) in enumerate(DATACENTERS.items())]
    (out / f"{ZONE}.yaml").write_text("\n".join(lines) + "\n")


def write_gdnsd(out: Path, records: int, pools: int, port: int, serial: int = 1) -> None:
    (out / "zones").mkdir(parents=True, exist_ok=True)
    (out / "geoip").mkdir(exist_ok=True)
    shutil.copy(BENCH / "geo-test.mmdb", out / "geoip" / "geo-test.mmdb")
    coords = "\n".join(f"          {dc} => [ {lat}, {lon} ]"
                       for dc, (lat, lon) in DATACENTERS.items())
    resources = "\n".join(
        f"      p{p} => {{ map => nearest, dcmap => {{ "
        + ", ".join(f"{dc} => {member(p, i)}" for i, dc in enumerate(DATACENTERS))
        + " } }" for p in range(pools))
    (out / "config").write_text(f"""options => {{
  listen => [ 127.0.0.1:{port} ]
  udp_threads => 1
  tcp_threads => 1
  run_dir => {out}/run
  state_dir => {out}/state
}}
plugins => {{
  geoip => {{
    maps => {{
      nearest => {{
        geoip2_db => geo-test.mmdb
        datacenters => [ {', '.join(DATACENTERS)} ]
        auto_dc_coords => {{
{coords}
        }}
      }}
    }}
    resources => {{
{resources}
    }}
  }}
}}
""")
    lines = ["$TTL 300", f"@ SOA ns1 hostmaster {serial} 7200 1800 259200 60", "@ NS ns1",
             "ns1 A 127.0.0.1"]
    lines += [f"host{n} A {address(n)}" for n in range(records)]
    lines += [f"pool{p} 30 DYNA geoip!p{p}" for p in range(pools)]
    (out / "zones" / ZONE).write_text("\n".join(lines) + "\n")


def write(out: Path, records: int, pools: int, port: int = 5394, serial: int = 1) -> None:
    write_geodns(out / "geodns", records, pools, serial)
    write_gdnsd(out / "gdnsd", records, pools, port, serial)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--pools", type=int, default=1_000)
    parser.add_argument("--port", type=int, default=5394, help="gdnsd's port")
    args = parser.parse_args()
    write(args.out, args.records, args.pools, args.port)
    print(f"wrote {args.out}/geodns and {args.out}/gdnsd: {args.records:,} A records, "
          f"{args.pools:,} pools")


if __name__ == "__main__":
    main()
