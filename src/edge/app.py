"""`build_app(config)`: the aiohttp application of a node, built from one `EdgeConfig`.

The node object is ``app[NODE]``; later code adds routes and background tasks to the
returned application before it starts (``app.router.add_*``, ``app.on_startup``,
``app.cleanup_ctx``). Tests run it in-process with `aiohttp.web.AppRunner` or as
``edge serve`` in a subprocess.

Every error is JSON ``{"error": message}`` with a 4xx/5xx status (also aiohttp's own:
unknown route 404, wrong method 405, body too large 413).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from edge import grpc_service, http_artifacts, http_kserve, http_ops, http_predict, oip
from edge.artifacts import ArtifactNotFound
from edge.config import EdgeConfig
from edge.distribution import wiring as distribution
from edge.metrics import HotCounter
from edge.node import NODE, EdgeNode
from latency import edge as latency_edge

log = logging.getLogger(__name__)


def json_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"error": message}).encode(),
                        content_type="application/json")


def _error_response(e: BaseException) -> web.StreamResponse:
    status = oip.error_status(e)
    if status is not None:
        return json_error(status, str(e))
    if isinstance(e, ArtifactNotFound):
        return json_error(404, str(e))
    if isinstance(e, web.HTTPException) and e.status >= 400:
        text = e.text if e.text and not e.text.startswith(f"{e.status}:") else e.reason
        resp = json_error(e.status, text)
        for name in ("Allow", "Retry-After"):
            if name in e.headers:
                resp.headers[name] = e.headers[name]
        return resp
    log.exception("unhandled error", exc_info=e)
    return json_error(500, f"internal error: {type(e).__name__}")


def _observe(node: EdgeNode) -> Middleware:
    counters: dict[tuple[str, int], HotCounter] = {}
    metrics = node.metrics

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        node.utilization.started()
        status = 499  # stays so when the client goes away before the answer
        try:
            try:
                resp = await handler(request)
            except web.HTTPException as e:
                if e.status < 400:
                    raise
                resp = _error_response(e)
            except Exception as e:  # noqa: BLE001 - every failure becomes a JSON error
                resp = _error_response(e)
            status = resp.status
            return resp
        finally:
            node.utilization.finished()
            route = request.match_info.route.name or "unmatched"
            counter = counters.get((route, status))
            if counter is None:
                counter = counters[(route, status)] = metrics.hot(metrics.http_requests, route,
                                                                  str(status))
            counter.inc()

    return observe


def build_app(config: EdgeConfig) -> web.Application:
    node = EdgeNode(config.validate())
    app = web.Application(client_max_size=config.max_body_bytes,
                          middlewares=[_observe(node)])
    app[NODE] = node

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await node.start()
        yield
        await node.close()

    app.cleanup_ctx.append(lifecycle)
    if config.grpc_listen:
        app.cleanup_ctx.append(grpc_service.serve(node, config.grpc_listen))
    for module in (http_predict, http_kserve, http_artifacts, http_ops):
        module.add_routes(app)
    distribution.setup(app, config)
    latency_edge.setup(app, config, distribution.edge_id(config))
    return app
