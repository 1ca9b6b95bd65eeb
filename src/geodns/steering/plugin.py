"""Geo steering's plugin for `geodns` (entry point group `geodns.plugins`).

* `geodns explain ...` (`steering.cli`).
* `--geoip PATH`: the City database (MaxMind format: GeoIP2/GeoLite2 City, DB-IP City
  Lite); default the demo database. Re-read after every successful zone reload
  (SIGHUP or POST /admin/reload); a file that fails to open keeps the previous
  database serving and fails the reload (its answer's `errors`, the log, and
  `geodns_reloads_total{result="failed"}`), though the zones were swapped.
* `GET /admin/explain?name=NAME[&type=A|AAAA][&client=IP][&ecs=PREFIX]`: the decision
  for that client as JSON (`geodns.steering.explain`); `client` defaults to the HTTP
  caller's address. 400 for bad parameters, 404 when NAME is not pool-bound here.
* `--explain-from PREFIX` (repeatable): source networks that may ask `_explain.NAME
  TXT`; off (no network) by default. Prefixes are at most /24 (IPv4) or /56 (IPv6),
  the grain the server caches answers per source network at.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geodns.plugins import Plugin

if TYPE_CHECKING:
    from geodns.server import GeoDNSServer, ServerConfig

import argparse
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from . import cli, geoip
from .addresses import GRAIN
from .explain import ExplainError, explain_name

log = logging.getLogger("geodns")


class GeoPlugin(Plugin):
    def add_commands(self, sub: argparse._SubParsersAction) -> None:
        cli.add_parser(sub).set_defaults(func=cli.run)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--geoip", type=Path, metavar="PATH",
            help="GeoIP City database, MaxMind format (default: the demo database "
            f"{geoip.DEMO_MMDB.name}); re-read on every reload")

        parser.add_argument(
            "--explain-from", action="append", default=[], metavar="PREFIX",
            help="a source network (at most /24 or /56) that may read the _explain.NAME TXT "
            "record; repeatable; default: nobody")

    def configure(self, args: argparse.Namespace, config: ServerConfig) -> None:
        networks = []
        for text in args.explain_from:
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise SystemExit(f"geodns: --explain-from {text!r} is not a prefix") from None
            if net.prefixlen > GRAIN[net.version]:
                raise SystemExit(f"geodns: --explain-from {text}: at most /{GRAIN[net.version]}"
                                 " (answers are cached per source network of that size)")
            networks.append(net)
        config.extra["explain_from"] = tuple(networks)
        if args.geoip is not None:
            try:
                geoip.GeoDB(args.geoip)  # fail now, with the reason, not in each worker
            except geoip.GeoIPError as e:
                raise SystemExit(f"geodns: {e}") from None
            config.extra["geoip"] = args.geoip

    def setup(self, server: GeoDNSServer) -> None:
        path = server.config.extra.get("geoip")
        if path is not None:
            geoip.shared().open(path)
        server.on_reload.append(_reload_geoip)
        explain_from = server.config.extra.get("explain_from", ())

        def allow_explain(server: GeoDNSServer) -> None:
            for zone in server.zones.values():
                if zone.steering is not None:
                    zone.steering.explain_from = explain_from

        async def allow_explain_at_start(server: GeoDNSServer) -> None:
            allow_explain(server)

        server.on_start.append(allow_explain_at_start)
        server.on_reload.append(allow_explain)
        if server.http_app is not None:
            server.http_app.router.add_get("/admin/explain", _explain_handler(server))


def _reload_geoip(server: GeoDNSServer) -> str | None:
    """Re-read the database file; on failure the message for the reload's answer."""
    try:
        geoip.shared().reload()
    except geoip.GeoIPError as e:
        message = f"GeoIP reload failed, still using the previous database: {e}"
        log.error("%s", message)
        return message
    return None


def _explain_handler(server: GeoDNSServer) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def explain(request: web.Request) -> web.Response:
        q = request.query
        if "name" not in q:
            return web.json_response({"error": "give ?name=NAME"}, status=400)
        try:
            out = explain_name(server.zones, q["name"], q.get("type", "A"),
                               q.get("client") or request.remote or "127.0.0.1", q.get("ecs"))
        except ExplainError as e:
            return web.json_response({"error": str(e)}, status=e.status)
        return web.json_response(out)

    return explain


plugin = GeoPlugin()
