"""How other features (geo steering, health checking, the dashboard) plug into the
server without editing it.

A plugin is an instance of a `Plugin` subclass, registered as a Python entry point in
the group `geodns.plugins` (one line in pyproject.toml, e.g.
`health = "healthcheck.plugin:plugin"`), or passed in `ServerConfig.plugins`. It
overrides the hooks it needs (each does nothing here):

* `add_arguments(parser)`: add options to `geodns serve` (argparse).
* `add_commands(subparsers)`: add a `geodns` subcommand (e.g. `explain`); its parser
  sets `set_defaults(func=f)` and `f(args)` returns the exit status.
* `configure(args, config)`: copy its parsed options into `config.extra[...]`.
* `setup(server)`: called once in every server process (`server.role` says which:
  "single", "supervisor" or "worker"); may add HTTP routes to `server.http_app`
  (None in workers), append coroutines to `server.on_start` / `server.on_stop`,
  callbacks to `server.on_reload`, and call `server.set_health(view)`.
"""

from __future__ import annotations

import argparse
import logging
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from geodns.server import GeoDNSServer, ServerConfig

log = logging.getLogger("geodns")
GROUP = "geodns.plugins"


class Plugin:
    """A feature of the server; subclasses override the hooks they need."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add options to `geodns serve`."""

    def add_commands(self, subparsers: argparse._SubParsersAction) -> None:
        """Add `geodns` subcommands."""

    def configure(self, args: argparse.Namespace, config: ServerConfig) -> None:
        """Copy this plugin's parsed options into `config.extra`."""

    def setup(self, server: GeoDNSServer) -> None:
        """Attach to a server process (routes, hooks, health view)."""


def load_plugins() -> list[Plugin]:
    """The installed plugins, in entry-point name order."""
    out = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            plugin = ep.load()
        except Exception:
            log.exception("plugin %s (%s) failed to load; starting without it", ep.name,
                          ep.value)
            continue
        if isinstance(plugin, Plugin):
            out.append(plugin)
        else:
            log.error("plugin %s (%s) is not a geodns.plugins.Plugin; starting without it",
                      ep.name, ep.value)
    return out
