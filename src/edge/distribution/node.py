"""Adapters from the edge node's registry and cache tiers to the agent's ports.

`RegistryModels` installs a verified file in the node's model folder layout
(`<models>/<name>/<version>/model.onnx`, hard-linked from the agent's blob store) and
stages it in `edge.registry.ModelRegistry`, which checks the digest and loads it; it is
then warmed with sample inputs. `activate` also records the version in the folder's
`CURRENT` file, so a restarted node comes back serving what it served. `CachePurger`
applies the agent's purges to the node's cache tiers.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from edge.cache.tiered import TieredCache
from edge.distribution.blobs import atomic_write
from edge.distribution.samples import warm
from edge.registry import CONFIG_FILE, CURRENT_FILE, MODEL_FILE, ModelError, ModelRegistry


class RegistryModels:
    def __init__(self, registry: ModelRegistry, models_dir: Path) -> None:
        self.registry = registry
        self.models_dir = Path(models_dir)

    def loaded(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for name in self.registry.names():
            for version in self.registry.versions(name):
                mv = self.registry.get(name, version)
                if mv is not None:
                    out.setdefault(name, {})[version] = "sha256:" + mv.info.digest
        return out

    def active(self, name: str) -> str | None:
        mv = self.registry.get(name)
        return mv.version if mv else None

    async def stage(self, name: str, version: str, path: Path, digest: str,
                    config: dict[str, Any] | None = None) -> None:
        target = self.models_dir / name / version / MODEL_FILE
        await asyncio.to_thread(_install, path, target)
        if config is not None:
            await asyncio.to_thread(atomic_write, target.with_name(CONFIG_FILE),
                                    json.dumps(config, indent=2).encode() + b"\n")
        try:
            mv = await asyncio.to_thread(self.registry.stage, name, version, target,
                                         expected_sha256=digest.split(":", 1)[1])
            await asyncio.to_thread(warm, mv.session)
        except ModelError as exc:
            raise ValueError(str(exc)) from None

    async def activate(self, name: str, version: str) -> None:
        self.registry.activate(name, version)
        await asyncio.to_thread(atomic_write, self.models_dir / name / CURRENT_FILE,
                                version.encode())

    async def unload(self, name: str) -> None:
        self.registry.unload(name)


def _install(src: Path, target: Path) -> None:
    """Put the verified file at `target` (hard link when possible, else a copy)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        atomic_write(tmp, src.read_bytes())
    os.replace(tmp, target)


class CachePurger:
    """Apply the agent's purges through the node's `TieredCache`, which drains queued L2
    writes first (so none brings a purged entry back) and covers both tiers."""

    _ARGS = {"key": "keys", "prefix": "prefixes", "tag": "tags"}

    def __init__(self, cache: TieredCache) -> None:
        self.cache = cache

    async def purge(self, kind: str, value: str) -> int:
        if kind == "all":
            removed = await self.cache.flush(["l1", "l2"])
        else:
            removed = await self.cache.purge(**{self._ARGS[kind]: [value]})
        return sum(removed.values())
