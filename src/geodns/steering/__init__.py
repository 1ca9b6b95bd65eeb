"""Geo steering: the answer for a pool-bound name, chosen per client.

Contract with the zone loader and the server (`geodns.zones`, `geodns.server`):

* The loader hands a zone file's top-level `pools:` and `nets:` nodes (plain YAML
  values, or None) to `load_steering()`, with a `report(where, message)` callback for
  errors (`where` is a path inside the file such as "pools.edges.members[2].lat").
  Records bind an owner name to a pool with `{pool: NAME}`; the loader checks NAME
  against `ZoneSteering.pool_names` and that the owner holds no A, AAAA or CNAME.
* Per query the server builds a `Client` and calls `ZoneSteering.answer()`. The
  result is a pure function of (pool, qtype, client /24 or /56, `generation`), so the
  server may cache the response bytes on exactly that key, where the client network
  is the ECS one when the query has ECS, except when `PoolAnswer.by_source` is set:
  then the answer also depends on the packet's source /24 or /56.
* `ZoneSteering.explain()` gives the same decision as a JSON-ready dict,
  `explain.format_text()` as text, `explain_txt()` as the TXT answer the zone gives
  for `_explain.NAME` (EXPLAIN_LABEL + a pool-bound name). `set_health()` and
  `set_geoip()` swap the health view and the GeoIP database (`geoip.GeoDB`; by
  default the shared one, which opens the demo database until
  `geoip.shared().open(path)`).

Modules: `config` (parsing, validation), `model` (data), `addresses` (unwrapping,
grain), `geoip`, `nets`, `locate` (where the client is), `distance`, `chain` and
`filters/` (the selection chain), `health` and `health_settings` (the health contract
and a pool's `health:` settings, which `healthcheck` implements), `decide` (one
decision, its scope), `zone` (the decision cache), `explain`, `demo_db` (the demo
database builder).
"""

from __future__ import annotations

from .config import Report
from .model import Client, IPAddress, Member, Pool, PoolAnswer
from .zone import EXPLAIN_LABEL, ZoneSteering, load_steering

__all__ = [
    "EXPLAIN_LABEL",
    "Client",
    "IPAddress",
    "Member",
    "Pool",
    "PoolAnswer",
    "Report",
    "ZoneSteering",
    "load_steering",
]
