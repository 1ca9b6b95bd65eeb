"""GeoIP lookups in a MaxMind-format City database (GeoIP2/GeoLite2 City, DB-IP City Lite).

Read with maxminddb (the C extension when installed), which also gives the length
of the database network that matched: every address inside that network has the same
record, which is what the ECS scope is built from. The database is reloadable: a file
that fails to open raises `GeoIPError` and the previous database keeps serving.
The whole file is read into memory (maxminddb's MODE_MEMORY) and checked with a few
lookups before it replaces the database in use, so a file truncated or rewritten in
place while the server runs can neither crash it (no memory map to lose) nor be
half-used: it fails the reload until it is whole again. Read so, lookups run in Python
(about 0.2 ms each): the records of up to LOOKUP_MEMO addresses are kept until the
database changes (all forgotten when the memo is full), so a client asking for many
pool names is looked up once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import maxminddb

from geodns.errors import GeoDNSError

from .addresses import GRAIN
from .model import IPAddress, Location

log = logging.getLogger("geodns")

DEMO_MMDB = Path(__file__).with_name("data") / "geo-demo.mmdb"
# Addresses looked up in a database before it is used (spread over the search tree).
PROBES = ("1.1.1.1", "8.8.8.8", "81.2.69.160", "128.101.101.101", "202.196.224.1",
          "255.255.255.255", "2001:db8::1", "2a02:8000::1", "::1")
LOOKUP_MEMO = 4096  # addresses whose records are kept (all forgotten when it is full)


class GeoIPError(GeoDNSError):
    """The database file is missing, unreadable or not an MMDB file."""


@dataclass(frozen=True, slots=True)
class GeoRecord:
    """One lookup: the location found (None on a miss) and the matched network's length."""

    location: Location | None
    prefix: int  # in the address's own family (IPv4 lookups: 0..32)
    record: dict[str, Any] | None = None  # the raw record, for explanations


def _location(rec: dict[str, Any]) -> Location | None:
    loc = rec.get("location") or {}
    if "latitude" not in loc or "longitude" not in loc:
        return None
    city = (rec.get("city") or {}).get("names", {}).get("en")
    return Location(
        lat=float(loc["latitude"]),
        lon=float(loc["longitude"]),
        # A record without a radius is treated as country-level (MaxMind's largest).
        accuracy_km=float(loc.get("accuracy_radius", 1000)),
        country=(rec.get("country") or rec.get("registered_country") or {}).get("iso_code"),
        continent=(rec.get("continent") or {}).get("code"),
        city=city,
    )


class GeoDB:
    """A City database that can be swapped or reloaded while queries are answered."""

    def __init__(self, path: str | Path = DEMO_MMDB) -> None:
        self.path = Path(path)
        self.generation = 0
        self._lock = threading.Lock()
        self._reader: Any = self._open(self.path)
        self._ipv4_only = self._reader.metadata().ip_version == 4
        self._memo: dict[IPAddress, GeoRecord] = {}

    @staticmethod
    def _open(path: Path) -> Any:
        try:
            reader = maxminddb.open_database(str(path), mode=maxminddb.MODE_MEMORY)
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as e:
            raise GeoIPError(f"GeoIP database {path}: {e}") from e
        try:  # a file cut short or half overwritten fails here, not in a query
            for probe in PROBES:
                if reader.metadata().ip_version == 6 or ":" not in probe:
                    reader.get_with_prefix_len(probe)
        except (ValueError, maxminddb.InvalidDatabaseError) as e:
            reader.close()
            raise GeoIPError(f"GeoIP database {path} is damaged: {e}") from e
        return reader

    def open(self, path: str | Path) -> None:
        """Switch to another database file; on error the current one stays."""
        reader = self._open(Path(path))
        with self._lock:
            old, self._reader, self.path = self._reader, reader, Path(path)
            self._ipv4_only = reader.metadata().ip_version == 4
            self._memo = {}
            self.generation += 1
        old.close()

    def reload(self) -> None:
        """Re-read the current file (after it was replaced on disk)."""
        self.open(self.path)

    @property
    def description(self) -> str:
        meta = self._reader.metadata()
        built = datetime.fromtimestamp(meta.build_epoch, UTC).date()
        try:
            shown = self.path.resolve().relative_to(Path.cwd())
        except ValueError:
            shown = self.path
        return f"{meta.database_type} ({shown}, built {built})"

    def lookup(self, address: IPAddress) -> GeoRecord:
        memo = self._memo  # before the reader: `open()` replaces the reader first
        found = memo.get(address)
        if found is None:
            found = self._lookup(address)
            if len(memo) >= LOOKUP_MEMO:
                memo.clear()
            memo[address] = found
        return found

    def _lookup(self, address: IPAddress) -> GeoRecord:
        if address.version == 6 and self._ipv4_only:
            return GeoRecord(None, 0)
        try:
            rec, prefix = self._reader.get_with_prefix_len(address)
        except maxminddb.InvalidDatabaseError as e:
            # A damaged part of the tree the probes did not reach: answer without a
            # location (for this /24 or /56 only) until a good file is reloaded.
            log.error("GeoIP lookup of %s failed (%s); replace the database file and "
                      "reload", address, e)
            return GeoRecord(None, GRAIN[address.version])
        if not isinstance(rec, dict):
            return GeoRecord(None, prefix)
        return GeoRecord(_location(rec), prefix, rec)


_shared: GeoDB | None = None


def shared() -> GeoDB:
    """The process-wide database every zone uses unless given another (`--geoip`)."""
    global _shared
    if _shared is None:
        _shared = GeoDB()
    return _shared
