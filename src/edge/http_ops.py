"""Operations: ``GET /health``, ``GET /metrics`` and the admin routes.

``GET /health`` answers the node's health document with HTTP 200 while its status is
``ok`` or ``degraded`` and 503 while ``draining`` or ``syncing`` (so a load balancer's
readiness probe takes the node out), with the same document.

Admin routes follow the project's one admin policy (`geocdn.auth`): with `admin_token`
set they need ``Authorization: Bearer <admin_token>``, without one they answer loopback
clients only, and never a cross-site request.

* ``POST /admin/drain`` ``{"draining": true|false}`` (default true): /health says
  ``draining`` (DNS stops sending new clients) while requests are still served.
* ``POST /admin/purge`` ``{"keys": [...], "prefixes": [...], "tags": [...]}``: removes
  matching prediction entries from L1 and L2; answers the counts per tier.
* ``POST /admin/flush`` ``{"tiers": ["l1", "l2"]}``: empties the named tiers.
"""

from __future__ import annotations

import json

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from edge import routes
from edge.http_predict import json_body
from edge.node import NODE
from edge.tensors import BadInput
from geocdn.auth import check_admin

SERVING = ("ok", "degraded")  # /health answers 200 for these, 503 otherwise


async def health(request: web.Request) -> web.Response:
    doc = request.app[NODE].health()
    return web.json_response(doc, status=200 if doc["status"] in SERVING else 503,
                             headers={"Cache-Control": "no-store"})


async def metrics(request: web.Request) -> web.Response:
    node = request.app[NODE]
    node.metrics.inflight.set(node.inflight)
    return web.Response(body=node.metrics.exposition(),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


def _authorize(request: web.Request) -> None:
    check_admin(request, request.app[NODE].config.admin_token)


async def drain(request: web.Request) -> web.Response:
    _authorize(request)
    doc = await json_body(request) if request.can_read_body else {}
    draining = doc.get("draining", True)
    if not isinstance(draining, bool):
        raise BadInput('"draining" must be true or false')
    node = request.app[NODE]
    node.draining = draining
    return web.json_response({"draining": node.draining})


def _strings(doc: dict, field: str) -> list[str]:
    value = doc.get(field, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadInput(f'"{field}" must be a list of non-empty strings')
    return value


async def purge(request: web.Request) -> web.Response:
    _authorize(request)
    doc = await json_body(request)
    removed = await request.app[NODE].cache.purge(
        _strings(doc, "keys"), _strings(doc, "prefixes"), _strings(doc, "tags"))
    return web.json_response({"removed": removed})


async def flush(request: web.Request) -> web.Response:
    _authorize(request)
    doc = await json_body(request) if request.can_read_body else {}
    tiers = doc.get("tiers", ["l1", "l2"])
    if not isinstance(tiers, list) or not set(tiers) <= {"l1", "l2"}:
        raise BadInput('"tiers" must be a list of "l1" and "l2"')
    removed = await request.app[NODE].cache.flush(tiers)
    return web.Response(body=json.dumps({"removed": removed}).encode(),
                        content_type="application/json")


def add_routes(app: web.Application) -> None:
    routes.add(app, "GET", "/health", health, "health")
    routes.add(app, "GET", "/metrics", metrics, "metrics")
    routes.add(app, "POST", "/admin/drain", drain, "admin_drain")
    routes.add(app, "POST", "/admin/purge", purge, "admin_purge")
    routes.add(app, "POST", "/admin/flush", flush, "admin_flush")
