"""The selection filters, by name. One module per family:

* `health`: `healthy` (drops members that are down or draining)
* `distance`: `nearest`, `geofence`
* `score`: `score` (distance, load and hit rate, weights from the zone)
* `hashing`: `weighted`, `sticky` (rendezvous hashing of the client network)
* `order`: `priority`, `first_n`
* `shed`: `shed` (load shedding of the leading member between two watermarks)
* `latency`: `latency` (measured round-trip times from the client's network)
"""

from __future__ import annotations

from ..chain import Filter
from . import distance, hashing, health, latency, order, score, shed

FILTERS: dict[str, Filter] = {
    "healthy": health.HEALTHY,
    "nearest": distance.NEAREST,
    "geofence": distance.GEOFENCE,
    "score": score.SCORE,
    "weighted": hashing.WEIGHTED,
    "sticky": hashing.STICKY,
    "priority": order.PRIORITY,
    "first_n": order.FIRST_N,
    "shed": shed.SHED,
    "latency": latency.LATENCY,
}
