"""The origin's distribution HTTP API (mounted by `add_distribution_routes`).

Reads are public (edges download from them); every mutation needs
`Authorization: Bearer <token>`: 401 without it, 403 with a wrong one. Without a
configured token, mutations are accepted from loopback clients only (403 otherwise).

    GET  /dist/v1/models                                  summary of every model
    GET  /dist/v1/models/{name}/versions/{version}        manifest (ETag = its digest)
    GET  /dist/v1/blobs/sha256/{hex}                      a blob (ETag = its digest)
    PUT  /dist/v1/models/{name}/versions/{version}        publish (body = ONNX file;
                                                          ?int8=1 &activate=1 | &stage=1;
                                                          X-Model-Config: its config.json)
    POST /dist/v1/models/{name}/activate  {"version": v}
    POST /dist/v1/models/{name}/stage     {"version": v}
    POST /dist/v1/models/{name}/rollback
    POST /dist/v1/purge                   {"key": k} | {"prefix": p} | {"tag": t}
    GET  /dist/v1/rollout                 rollout state of every edge (token)
    POST /dist/v1/rollout/{edge}          state report from an edge without Redis (token)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from edge import routes
from edge.distribution.blobs import sha256_bytes
from edge.distribution.client import CONFIG_HEADER
from edge.distribution.errors import Conflict, DistributionError, InvalidName, NotFound
from edge.distribution.events import PURGE_KINDS, EventStream
from edge.distribution.service import Distribution, StreamUnavailable
from edge.distribution.store import InvalidModel, ModelStore, check_config
from geocdn.auth import check_admin
from geocdn.redis_url import RedisClient

API = "/dist/v1"
MAX_UPLOAD = 4 << 30
IMMUTABLE = "public, max-age=31536000, immutable"
_HEX = re.compile(r"[0-9a-f]{64}")
DIST_KEY = web.AppKey("distribution", Distribution)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _status(exc: DistributionError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, StreamUnavailable):
        return 503
    return 400


def _guarded(token: str | None, handler: Handler) -> Handler:
    """Require the admin token, and turn distribution errors into 4xx/5xx answers."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        check_admin(request, token)
        return await _public(handler)(request)

    return wrapped


def _config(request: web.Request) -> dict[str, Any] | None:
    raw = request.headers.get(CONFIG_HEADER)
    if raw is None:
        return None
    try:
        return check_config(json.loads(raw))
    except ValueError:
        raise InvalidModel(f"{CONFIG_HEADER} must be a JSON object (the model's "
                           "config.json)") from None


def _public(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except DistributionError as exc:
            return routes.json_error(_status(exc), str(exc))

    return wrapped


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidName("body must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidName("body must be a JSON object")
    return body


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


class Routes:
    def __init__(self, dist: Distribution, max_upload: int) -> None:
        self.dist = dist
        self.store = dist.store
        self.max_upload = max_upload

    async def summary(self, request: web.Request) -> web.Response:
        models = await asyncio.to_thread(self.store.summary)
        return web.json_response({"models": models})

    async def manifest(self, request: web.Request) -> web.Response:
        m = request.match_info
        body = self.store.manifest_bytes(m["name"], m["version"])
        etag = f'"{sha256_bytes(body)}"'
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, content_type="application/json",
                            headers={"ETag": etag, "Cache-Control": IMMUTABLE})

    async def blob(self, request: web.Request) -> web.StreamResponse:
        hexd = request.match_info["hex"]
        if not _HEX.fullmatch(hexd):
            return routes.json_error(400, "blob names are 64 lowercase hex digits")
        digest = "sha256:" + hexd
        path = self.store.blobs.path(digest)
        etag = f'"{digest}"'
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers={"ETag": etag})
        try:
            f = open(path, "rb")  # closed below; read in a thread
        except FileNotFoundError:
            return routes.json_error(404, f"no blob {digest}")
        try:
            resp = web.StreamResponse(headers={
                "ETag": etag, "Content-Type": "application/octet-stream",
                "Cache-Control": IMMUTABLE})
            resp.content_length = os.fstat(f.fileno()).st_size
            await resp.prepare(request)
            while chunk := await asyncio.to_thread(f.read, 1 << 20):
                await resp.write(chunk)
            await resp.write_eof()
            return resp
        finally:
            f.close()

    async def publish(self, request: web.Request) -> web.Response:
        m = request.match_info
        fd, tmp = tempfile.mkstemp(dir=self.store.blobs.tmp, suffix=".upload")
        try:
            size = 0
            with os.fdopen(fd, "wb") as upload:
                async for chunk in request.content.iter_chunked(1 << 20):
                    size += len(chunk)
                    if size > self.max_upload:
                        return routes.json_error(
                            413, f"model file larger than {self.max_upload} bytes")
                    upload.write(chunk)
            if size == 0:
                return routes.json_error(400, "empty body: send the ONNX file as the request body")
            try:
                result = await self.dist.publish(
                    Path(tmp), m["name"], m["version"], int8=_flag(request, "int8"),
                    activate=_flag(request, "activate"), stage=_flag(request, "stage"),
                    config=_config(request))
            except InvalidModel as exc:
                return routes.json_error(422, str(exc))
            return web.json_response(result, status=201 if result["created"] else 200)
        finally:
            Path(tmp).unlink(missing_ok=True)

    async def activate(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        return web.json_response(
            await self.dist.activate(request.match_info["name"], str(body.get("version"))))

    async def stage(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        return web.json_response(
            await self.dist.stage(request.match_info["name"], str(body.get("version"))))

    async def rollback(self, request: web.Request) -> web.Response:
        return web.json_response(await self.dist.rollback(request.match_info["name"]))

    async def purge(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        given = [k for k in PURGE_KINDS if k in body]
        if len(given) != 1 or not isinstance(body[given[0]], str):
            return routes.json_error(
                400, 'send exactly one of {"key": ...}, {"prefix": ...}, {"tag": ...}')
        return web.json_response(await self.dist.purge(given[0], body[given[0]]))

    async def rollout(self, request: web.Request) -> web.Response:
        return web.json_response(await self.dist.rollout())

    async def report(self, request: web.Request) -> web.Response:
        self.dist.record_report(request.match_info["edge"], await _json_body(request))
        return web.json_response({"ok": True})


def add_distribution_routes(
    app: web.Application,
    store: ModelStore | Path,
    token: str | None,
    redis: RedisClient | None,
    *,
    max_upload: int = MAX_UPLOAD,
    stream_key: str | None = None,
) -> Distribution:
    """Mount the distribution API on `app`. `token=None` accepts mutations from loopback
    clients only; `redis=None` disables announcements and purges (edges then poll)."""
    if not isinstance(store, ModelStore):
        store = ModelStore(Path(store))
    stream = None
    if redis is not None:
        stream = EventStream(redis, stream_key) if stream_key else EventStream(redis)
    dist = Distribution(store, stream)
    app[DIST_KEY] = dist
    r = Routes(dist, max_upload)
    admin = lambda h: _guarded(token, h)  # noqa: E731
    routes.add(app, "GET", f"{API}/models", _public(r.summary), "dist_models")
    routes.add(app, "GET", f"{API}/models/{{name}}/versions/{{version}}", _public(r.manifest),
               "dist_manifest")
    routes.add(app, "GET", f"{API}/blobs/sha256/{{hex}}", _public(r.blob), "dist_blob")
    routes.add(app, "PUT", f"{API}/models/{{name}}/versions/{{version}}", admin(r.publish),
               "dist_publish")
    routes.add(app, "POST", f"{API}/models/{{name}}/activate", admin(r.activate),
               "dist_activate")
    routes.add(app, "POST", f"{API}/models/{{name}}/stage", admin(r.stage), "dist_stage")
    routes.add(app, "POST", f"{API}/models/{{name}}/rollback", admin(r.rollback),
               "dist_rollback")
    routes.add(app, "POST", f"{API}/purge", admin(r.purge), "dist_purge")
    routes.add(app, "GET", f"{API}/rollout", admin(r.rollout), "dist_rollout")
    routes.add(app, "POST", f"{API}/rollout/{{edge}}", admin(r.report), "dist_report")
    return dist
