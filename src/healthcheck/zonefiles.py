"""Read the pools of every zone file in a directory (for the standalone checker),
with the DNS server's own zone loader, so both see the same pools."""

from __future__ import annotations

import logging
from pathlib import Path

from geodns.steering import Pool
from geodns.zonefile import load_zones
from healthcheck.errors import HealthcheckError

log = logging.getLogger("healthcheck")


class ZoneProblems(HealthcheckError, RuntimeError):
    """The zone files have problems (each one was logged)."""


def load_pools(
    directory: str | Path, previous: dict[str, dict[str, Pool]] | None = None
) -> dict[str, dict[str, Pool]]:
    """zone origin -> pool name -> Pool for the zone files in `directory`.

    Problems are logged. Without `previous` (at start) any problem raises
    `ZoneProblems`; on a reload, a zone whose file has problems keeps its `previous`
    pools (the last good ones), as the DNS server keeps serving the last good zone.
    """
    zones, problems = load_zones(Path(directory))
    for p in problems:
        log.error("zone rejected: %s", p)
    if problems and previous is None:
        raise ZoneProblems(f"{len(problems)} problem(s) in the zone files of {directory}")
    out = {o: z.steering.pools for o, z in zones.items() if z.steering is not None}
    if problems and previous:
        for origin, pools in previous.items():
            out.setdefault(origin, pools)
    return out
