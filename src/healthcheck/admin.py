"""The health part of the admin HTTP API (aiohttp routes).

* ``GET /admin/health`` - every member's effective state, with the time of its last
  change and the reason, the overrides in force, and the Redis / vantage status.
* ``GET /admin/overrides`` - the overrides in force.
* ``PUT /admin/overrides/member/{pool}/{member}``, ``.../pool/{pool}``,
  ``.../site/{site}`` - set an override; JSON body ``{"state": "up|down|draining",
  "for": "10m" | seconds, "until": ISO-or-unix, "reason": "...", "zone": "..."}``
  (all but `state` optional). Persisted to the override file.
* ``DELETE`` on the same paths (``?zone=`` to name a zone-qualified one) - remove it.

Writes follow the project's one admin policy (`geocdn.auth`): ``Authorization: Bearer
TOKEN``, 401 without credentials, 403 with wrong ones; without a configured token,
loopback clients only; never a cross-site request.
"""

from __future__ import annotations

import json
import time

from aiohttp import web

from geocdn.auth import check_admin
from healthcheck.overrides import OverrideError, parse_override
from healthcheck.service import HealthService

_PATHS = ("/member/{pool}/{member}", "/pool/{pool}", "/site/{site}")


def add_health_routes(app: web.Application, service: HealthService, token: str | None) -> None:
    async def health(request: web.Request) -> web.Response:
        return web.json_response({
            "generation": service.generation,
            "vantage": service.vantage,
            "redis": {
                "configured": service.shared is not None,
                "in_use": service.redis_ok,
                "live_vantages": service.live_vantages,
            },
            "members": service.rows(),
            "overrides": [o.to_dict() for o in service.overrides.items],
        })

    async def list_overrides(request: web.Request) -> web.Response:
        return web.json_response({"overrides": [o.to_dict() for o in service.overrides.items]})

    async def put_override(request: web.Request) -> web.Response:
        check_admin(request, token)
        try:
            body = await request.json()
        except ValueError:
            raise _error(web.HTTPBadRequest, "the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise _error(web.HTTPBadRequest, "the body must be a JSON object")
        extra = set(body) & {"pool", "member", "site"}
        if extra:
            raise _error(web.HTTPBadRequest,
                         f"name the target in the path, not the body ({', '.join(extra)})")
        try:
            override = parse_override({**body, **request.match_info, "set_at": None},
                                      time.time())
        except OverrideError as exc:
            raise _error(web.HTTPBadRequest, str(exc)) from None
        saved = service.set_override(override)
        return web.json_response({"override": override.to_dict(), "persisted": saved})

    async def delete_override(request: web.Request) -> web.Response:
        check_admin(request, token)
        info = request.match_info
        kind = "site" if "site" in info else "member" if "member" in info else "pool"
        selector = (kind, request.query.get("zone"), info.get("pool"), info.get("member"),
                    info.get("site"))
        if not service.remove_override(selector):
            raise _error(web.HTTPNotFound, "no such override")
        return web.json_response({"removed": True})

    app.router.add_get("/admin/health", health)
    app.router.add_get("/admin/overrides", list_overrides)
    for path in _PATHS:
        app.router.add_put("/admin/overrides" + path, put_override)
        app.router.add_delete("/admin/overrides" + path, delete_override)


def _error(kind: type[web.HTTPError], message: str) -> web.HTTPError:
    return kind(text=json.dumps({"error": message}), content_type="application/json")
