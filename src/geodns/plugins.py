"""How other features (geo steering, health checking, the dashboard) plug into the
server without editing it.

A plugin is any object with some of these methods, registered as a Python
entry point in the group `geodns.plugins` (one line in pyproject.toml, e.g.
`health = "healthcheck.plugin:plugin"`), or passed in `ServerConfig.plugins`:

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

import logging
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger("geodns")
GROUP = "geodns.plugins"


def load_plugins() -> list[Any]:
    """The installed plugins, in entry-point name order."""
    out = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            out.append(ep.load())
        except Exception:
            log.exception("plugin %s (%s) failed to load; starting without it", ep.name,
                          ep.value)
    return out
