"""`build_app(config)`: the aiohttp application of a node, built from one `EdgeConfig`.

The node object is ``app[NODE]``. Its parts add their routes here, with `edge.routes.add`
and before the fallback route; later code may add background tasks (``app.on_startup``,
``app.cleanup_ctx``) to the returned application before it starts. Tests run it
in-process with `aiohttp.web.AppRunner` or as ``edge serve`` in a subprocess.

Every error is JSON ``{"error": message}`` with a 4xx/5xx status (also aiohttp's own:
unknown route 404, wrong method 405, body too large 413; see `edge.routes`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from edge import grpc_service, http_artifacts, http_kserve, http_ops, http_predict, routes
from edge.config import EdgeConfig
from edge.distribution import wiring as distribution
from edge.node import NODE, EdgeNode
from latency import edge as latency_edge


def build_app(config: EdgeConfig) -> web.Application:
    node = EdgeNode(config.validate())
    app = web.Application(client_max_size=config.max_body_bytes)
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
    routes.add_fallback(app)
    return app
