"""The demo database: built reproducibly from its table; reloadable; bad files keep the old."""

from __future__ import annotations

import ipaddress
import shutil

import pytest
from mmdb_writer import MmdbF64, MMDBWriter
from netaddr import IPSet

from doc_commands import ROOT, commands, page, run, shell_env
from geodns.steering.demo_db import DEMO_CSV, DemoDBError, build
from geodns.steering.geoip import DEMO_MMDB, GeoDB, GeoIPError

from .conftest import ecs, picked


def test_committed_database_is_the_build_of_the_table(tmp_path):
    """docs/steering.md's build command, writing beside the committed file's copy."""
    (line,) = [c for c in commands(page("docs/steering.md")) if "demo_db" in c]
    out = tmp_path / "rebuilt.mmdb"
    run(f"{line} --out {out}", ROOT, shell_env())
    assert out.read_bytes() == DEMO_MMDB.read_bytes()


def test_builder_names_the_bad_row(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(DEMO_CSV.read_text() + "198.18.200.0/24,X,XX,X,EU,91,0,5,UTC\n")
    with pytest.raises(DemoDBError, match="latitude/longitude out of range"):
        build(bad, tmp_path / "bad.mmdb")


def test_records_carry_location_accuracy_and_network(geodb):
    rec = geodb.lookup(ipaddress.ip_address("198.18.100.7"))
    assert rec.prefix == 24 and rec.location.accuracy_km == 1000 and rec.location.city is None
    miss = geodb.lookup(ipaddress.ip_address("8.8.8.8"))
    assert miss.location is None and miss.prefix > 0


def test_reload_switches_databases_and_a_bad_file_keeps_the_old_one(example, tmp_path):
    db_path = tmp_path / "city.mmdb"
    shutil.copy(DEMO_MMDB, db_path)
    db = GeoDB(db_path)
    example.set_geoip(db)
    assert picked(example, ecs("198.18.1.0/24")) == ["tokyo"]

    # A new table moves Tokyo's test network to São Paulo.
    csv = tmp_path / "moved.csv"
    csv.write_text(DEMO_CSV.read_text().replace(
        "198.18.1.0/24,Tokyo,JP,Japan,AS,35.6895,139.6917",
        "198.18.1.0/24,São Paulo,BR,Brazil,SA,-23.5505,-46.6333"))
    build(csv, db_path)
    db.reload()
    assert picked(example, ecs("198.18.1.0/24")) == ["saopaulo"]  # cached decision dropped

    garbage = tmp_path / "garbage.mmdb"
    garbage.write_bytes(b"not a database")
    with pytest.raises(GeoIPError, match="garbage.mmdb"):
        db.open(garbage)
    with pytest.raises(GeoIPError):
        db.open(tmp_path / "missing.mmdb")
    assert picked(example, ecs("198.18.1.0/24")) == ["saopaulo"]  # still served


def test_an_ipv4_only_database_without_cities_drops_in(example, tmp_path):
    """Real databases vary: IPv4-only trees, records without city or accuracy radius."""
    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-City", languages=["en"],
                        description="test")
    writer.insert_network(IPSet(["198.18.1.0/24"]), {
        "country": {"iso_code": "BR"}, "continent": {"code": "SA"},
        "location": {"latitude": MmdbF64(-23.5), "longitude": MmdbF64(-46.6)}})
    writer.to_db_file(str(tmp_path / "v4.mmdb"))
    example.set_geoip(GeoDB(tmp_path / "v4.mmdb"))
    assert picked(example, ecs("198.18.1.0/24")) == ["saopaulo"]
    rec = example.geoip.lookup(ipaddress.ip_address("198.18.1.1"))
    assert rec.location.accuracy_km == 1000 and rec.location.city is None  # country level
    assert example.answer("edges", "A", ecs("2001:db8:1::/48")).addresses  # v6: no record
