"""What the local stack runs, read from the zone files it serves.

The edges are the members of the steered pool: each listens on the address the zone
gives it and on the port of its health URL, so the zone file stays the one place that
says where an edge is. Its gRPC inference service (the Open Inference Protocol) listens
on the same address, on the next port.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from cdn.errors import CdnError


class TopologyError(CdnError, ValueError):
    """The zone files do not describe a pool the launcher can run."""


@dataclass(frozen=True)
class EdgeSite:
    name: str
    address: str
    port: int
    lat: float
    lon: float

    @property
    def base_url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def listen(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def grpc_listen(self) -> str:
        """HOST:PORT of the edge's gRPC inference service: the port after HTTP's."""
        return f"{self.address}:{self.port + 1}"


@dataclass(frozen=True)
class Topology:
    zone: str  # e.g. "cdn.example"
    pool: str  # e.g. "edges"
    steered_name: str  # the owner name bound to the pool, absolute, e.g. "edge.cdn.example"
    ttl: int  # the pool's answer TTL
    edges: tuple[EdgeSite, ...]

    def edge(self, name: str) -> EdgeSite:
        for site in self.edges:
            if site.name == name:
                return site
        known = ", ".join(s.name for s in self.edges)
        raise TopologyError(f"no edge named {name!r} in pool {self.pool!r} (known: {known})")

    def by_address(self, address: str) -> EdgeSite | None:
        return next((s for s in self.edges if s.address == address), None)


def _site(where: str, member: dict) -> EdgeSite:
    try:
        address = member["ipv4"]
        if isinstance(address, list):
            address = address[0]
        url = urlsplit(member.get("health_url") or f"http://{address}:8000/health")
        site = EdgeSite(
            name=str(member["name"]),
            address=str(address),
            port=url.port or 8000,
            lat=float(member["lat"]),
            lon=float(member["lon"]),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise TopologyError(f"{where}: member needs name, ipv4, lat and lon ({err})") from err
    if site.port == 65535:
        raise TopologyError(f"{where}: health URL port 65535 leaves no port for gRPC "
                            "(the edge's gRPC service listens on the next port)")
    return site


def load_topology(zones_dir: Path, pool: str = "edges") -> Topology:
    """Find `pool` in the zone files under `zones_dir` and the name bound to it."""
    if not Path(zones_dir).is_dir():
        raise TopologyError(f"no zone directory {zones_dir} (run from the repository's "
                            "folder, or give --zones DIR)")
    for path in sorted(Path(zones_dir).glob("*.y*ml")):
        doc = yaml.safe_load(path.read_text()) or {}
        spec = (doc.get("pools") or {}).get(pool)
        if spec is None:
            continue
        zone = str(doc["zone"]).rstrip(".")
        owners = [
            owner
            for owner, node in (doc.get("records") or {}).items()
            if isinstance(node, dict) and node.get("pool") == pool
        ]
        if not owners:
            raise TopologyError(f"{path}: no record is bound to pool {pool!r}")
        owner = owners[0]
        name = zone if owner == "@" else f"{owner}.{zone}"
        members = spec.get("members") or []
        sites = tuple(_site(f"{path}: pools.{pool}.members[{i}]", m) for i, m in enumerate(members))
        if not sites:
            raise TopologyError(f"{path}: pool {pool!r} has no members")
        return Topology(zone, pool, name, int(spec.get("ttl", 30)), sites)
    raise TopologyError(f"no zone file under {zones_dir} defines pool {pool!r}")
