"""Build the demo GeoIP2-City database from its readable source table.

    python -m geodns.steering.demo_db [--csv data/geo-demo.csv] [--out data/geo-demo.mmdb]

The output is a GeoIP2-City-format MMDB (IPv6 tree, IPv4 in ::/96 like MaxMind's own
files), so the code that reads it reads a real GeoLite2/GeoIP2/DB-IP City file the
same way. The build is byte-reproducible (fixed build epoch), which is why the built
file is committed beside its source: `geodns` runs without the dev-only writer, and a
test rebuilds it to prove the committed file matches the table.
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
from pathlib import Path
from typing import Any

from mmdb_writer import MmdbF64, MmdbU16, MMDBWriter
from netaddr import IPSet

from geodns.errors import GeoDNSError

from .geoip import DEMO_MMDB

DEMO_CSV = DEMO_MMDB.with_name("geo-demo.csv")
BUILD_EPOCH = 1_763_769_600  # 2025-11-22: fixed, so rebuilding gives the same bytes

CONTINENTS = {
    "AF": "Africa",
    "AN": "Antarctica",
    "AS": "Asia",
    "EU": "Europe",
    "NA": "North America",
    "OC": "Oceania",
    "SA": "South America",
}


class DemoDBError(GeoDNSError, ValueError):
    """A row of the source table is wrong; the message names the line."""


class _ReproducibleWriter(MMDBWriter):
    def _build_meta(self) -> dict[str, Any]:
        return {**super()._build_meta(), "build_epoch": BUILD_EPOCH}


def _record(row: dict[str, str]) -> dict[str, Any]:
    country = {"iso_code": row["country"], "names": {"en": row["country_name"]}}
    rec: dict[str, Any] = {
        "continent": {"code": row["continent"], "names": {"en": CONTINENTS[row["continent"]]}},
        "country": country,
        "registered_country": country,
        "location": {
            "accuracy_radius": MmdbU16(int(row["accuracy_radius"])),
            "latitude": MmdbF64(float(row["latitude"])),
            "longitude": MmdbF64(float(row["longitude"])),
            "time_zone": row["time_zone"],
        },
    }
    if row["city"]:
        rec["city"] = {"names": {"en": row["city"]}}
    return rec


def read_rows(path: Path) -> list[tuple[str, dict[str, str]]]:
    """Rows of the table as (network, row), validated; '#' lines are comments."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")]
    rows = []
    for n, row in enumerate(csv.DictReader(lines), start=2):
        where = f"{path.name}: data row {n - 1}"
        try:
            net = ipaddress.ip_network(row["network"])
            lat, lon = float(row["latitude"]), float(row["longitude"])
            radius = int(row["accuracy_radius"])
        except (ValueError, TypeError) as e:
            raise DemoDBError(f"{where}: {e}") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise DemoDBError(f"{where}: latitude/longitude out of range")
        if row["continent"] not in CONTINENTS:
            raise DemoDBError(f"{where}: unknown continent code {row['continent']!r}")
        if not 0 < radius < 65536:
            raise DemoDBError(f"{where}: accuracy_radius must be 1..65535 km")
        rows.append((str(net), row))
    return rows


def build(csv_path: Path = DEMO_CSV, out: Path = DEMO_MMDB) -> Path:
    writer = _ReproducibleWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoIP2-City",
        languages=["en"],
        description="geodns demo City database (test networks on real city coordinates)",
    )
    for net, row in read_rows(csv_path):
        writer.insert_network(IPSet([net]), _record(row))
    writer.to_db_file(str(out))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=DEMO_CSV)
    ap.add_argument("--out", type=Path, default=DEMO_MMDB)
    args = ap.parse_args(argv)
    print("wrote", build(args.csv, args.out))


if __name__ == "__main__":
    main()
