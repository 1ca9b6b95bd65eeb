"""A node's HTTP routes: `add(app, method, path, handler, name)` registers one,
`add_fallback(app)` (after every other) answers what none matches.

On a node's application (one with ``app[NODE]``) every route runs through `observed`: the
request counts in the node's utilization while it runs, a failure becomes a JSON error
``{"error": message}`` with its 4xx/5xx status, and the answer is counted in
``edge_http_requests_total`` by route name and status;
functions given to `observe_requests` see every request first (the latency endpoint's
passive measurements).
A wrapper per route rather than an aiohttp middleware: a middleware chain (aiohttp adds
its own current-app middleware, and looks the chain up per request) costs about a tenth
of the CPU of a cache hit. The fallback route matches any path and method after the
others had their turn: JSON 405 (with ``Allow``) for a path that another method
serves, JSON 404 otherwise, as aiohttp's own routing would answer in text. (A request
for ``*``, which no path matches, still gets aiohttp's text 404.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from edge import oip
from edge.artifacts import ArtifactNotFound
from edge.errors import EdgeError
from edge.metrics import HotCounter
from edge.node import NODE, EdgeNode

log = logging.getLogger(__name__)
FALLBACK = "unmatched"  # the fallback route's name, and its requests' endpoint label
Observer = Callable[[web.Request], None]
OBSERVERS = web.AppKey("request_observers", list[Observer])


def json_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"error": message}).encode(),
                        content_type="application/json")


def error_response(e: BaseException) -> web.Response:
    """The JSON answer for a failure: its own status if it is an expected one, else 500."""
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


def observed(node: EdgeNode, endpoint: str, handler: Handler,
             observers: list[Observer]) -> Handler:
    """`handler` as a node runs it (see the module's docstring)."""
    counters: dict[int, HotCounter] = {}
    metrics, utilization = node.metrics, node.utilization

    async def run(request: web.Request) -> web.StreamResponse:
        utilization.step(1)
        status = 499  # stays so when the client goes away before the answer
        try:
            try:
                for observe in observers:
                    observe(request)
                resp = await handler(request)
            except web.HTTPException as e:
                if e.status < 400:  # a redirect raised as an exception
                    status = e.status
                    raise
                resp = error_response(e)
            except Exception as e:  # noqa: BLE001 - every failure becomes a JSON error
                resp = error_response(e)
            status = resp.status
            return resp
        finally:
            utilization.step(-1)
            counter = counters.get(status)
            if counter is None:
                counter = counters[status] = metrics.hot(metrics.http_requests, endpoint,
                                                         str(status))
            counter.inc()

    return run


def add(app: web.Application, method: str, path: str, handler: Handler, name: str) -> None:
    """Register a route (a GET also answers HEAD), observed on a node's application."""
    if FALLBACK in app.router:
        raise EdgeError(f"route {name} added after the fallback route, which would shadow it")
    node = app.get(NODE)
    if node is not None:
        handler = observed(node, name, handler, _observers(app))
    if method == "GET":
        app.router.add_get(path, handler, name=name)
    else:
        app.router.add_route(method, path, handler, name=name)


def observe_requests(app: web.Application, observer: Observer) -> None:
    """Call `observer` with every request the node's routes receive, before its handler."""
    _observers(app).append(observer)


def _observers(app: web.Application) -> list[Observer]:
    if OBSERVERS not in app:
        app[OBSERVERS] = []
    return app[OBSERVERS]


async def _unmatched(request: web.Request) -> web.StreamResponse:
    this = request.match_info.route.resource
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not this:
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


def add_fallback(app: web.Application) -> None:
    """The route for requests no other route matches; register it last."""
    add(app, "*", r"/{path:[\s\S]*}", _unmatched, FALLBACK)
