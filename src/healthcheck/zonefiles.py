"""Read the pools of every zone file in a directory (for the standalone checker)."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from geodns.steering import Pool, load_steering

log = logging.getLogger("healthcheck")


def load_pools(
    directory: str | Path, previous: dict[str, dict[str, Pool]] | None = None
) -> dict[str, dict[str, Pool]]:
    """zone name -> pool name -> Pool, from `*.yaml` / `*.yml` files in `directory`.

    A file with errors in its pools is logged, and its zone keeps its `previous` pools
    (the last good ones); an unreadable file is logged and skipped.
    """
    out: dict[str, dict[str, Pool]] = {}
    for path in sorted([*Path(directory).glob("*.yaml"), *Path(directory).glob("*.yml")]):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            log.error("%s: cannot be read: %s", path, exc)
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("zone"), str):
            log.error("%s: not a zone file (no `zone:` name); skipped", path)
            continue
        errors: list[str] = []
        steering = load_steering(doc["zone"], doc.get("pools"), doc.get("nets"),
                                 lambda where, msg, sink=errors: sink.append(f"{where}: {msg}"))
        if errors:
            for e in errors:
                log.error("%s: %s", path, e)
            if previous and doc["zone"] in previous:
                out[doc["zone"]] = previous[doc["zone"]]
            continue
        out[steering.zone] = steering.pools
    return out
