"""Model artifacts (weights, configs, embeddings) by ``/models/{name}/{version}/{file}``.

Found in the node's own model folder first (the origin's master store), else in the
artifact cache (``<cache_dir>/artifacts/<name>/<version>/<file>``, next to a hidden
``.<file>.sha256``), else downloaded from the upstream into that cache (one download per
file however many requests wait for it; verified against the upstream's ETag before the
atomic rename). The cache is bounded by bytes, least recently used first out.

The ETag of every artifact is its SHA-256. The version ``current`` names whatever
version the node serves now: answered with ``Cache-Control: no-cache``, while concrete
versions never change and are ``immutable``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from edge.errors import EdgeError
from edge.registry import SAFE_NAME, file_sha256
from edge.upstream import Upstream, UpstreamRejected

CURRENT = "current"
# name, hops → the version the node serves (or would fetch) now; raises when unknown
CurrentVersion = Callable[[str, int], Awaitable[str]]


class ArtifactNotFound(EdgeError, LookupError):
    pass


@dataclass(frozen=True, slots=True)
class ArtifactFile:
    path: Path
    sha256: str
    size: int
    immutable: bool


class ArtifactStore:
    """Artifacts of `models_dir` (the node's own folder, may be None), else downloaded
    from `upstream` (None on the origin) into `root`; `current_version` resolves the
    version ``current``."""

    def __init__(self, root: Path, capacity_bytes: int, models_dir: Path | None,
                 upstream: Upstream | None, current_version: CurrentVersion) -> None:
        self.models_dir = Path(models_dir) if models_dir else None
        self.upstream = upstream
        self._current_version = current_version
        self.root = Path(root)
        self.capacity = capacity_bytes
        self._digests: dict[Path, tuple[int, int, str]] = {}  # master files: size, mtime
        self._cached: OrderedDict[Path, int] = OrderedDict()  # LRU of downloaded files
        self._downloads: dict[Path, asyncio.Task] = {}
        self.bytes = 0
        for meta in sorted(self.root.glob("*/*/.*.sha256"), key=lambda p: p.stat().st_mtime):
            data = meta.with_name(meta.name[1:-7])
            if data.is_file():
                self._account(data, data.stat().st_size)
            else:
                meta.unlink()

    async def locate(self, name: str, version: str, file: str, hops: int = 0) -> ArtifactFile:
        for part in (name, version, file):
            if not SAFE_NAME.match(part):
                raise ArtifactNotFound(f"invalid artifact path component {part!r}")
        immutable = version != CURRENT
        if not immutable:
            version = await self._current_version(name, hops)
        if self.models_dir:
            master = self.models_dir / name / version / file
            if master.is_file():
                return ArtifactFile(master, await self._master_digest(master),
                                    master.stat().st_size, immutable)
        cached = self.root / name / version / file
        meta = _meta_path(cached)
        if cached in self._cached and meta.is_file():
            self._cached.move_to_end(cached)
            return ArtifactFile(cached, meta.read_text().strip(), self._cached[cached],
                                immutable)
        if self.upstream is None:
            raise ArtifactNotFound(f"no artifact {name}/{version}/{file}")
        task = self._downloads.get(cached)
        if task is None:
            task = asyncio.ensure_future(self._download(name, version, file, cached, hops))
            self._downloads[cached] = task
            task.add_done_callback(lambda _t: self._downloads.pop(cached, None))
        digest, size = await asyncio.shield(task)
        return ArtifactFile(cached, digest, size, immutable)

    async def _download(self, name: str, version: str, file: str, dest: Path,
                        hops: int) -> tuple[str, int]:
        assert self.upstream is not None
        try:
            digest, size = await self.upstream.download(name, version, file, dest, hops)
        except UpstreamRejected as e:
            if e.status == 404:
                raise ArtifactNotFound(f"no artifact {name}/{version}/{file}") from None
            raise
        _meta_path(dest).write_text(digest + "\n")
        self._account(dest, size)
        return digest, size

    def _account(self, path: Path, size: int) -> None:
        self.bytes += size - self._cached.pop(path, 0)
        self._cached[path] = size
        while self.bytes > self.capacity and len(self._cached) > 1:
            old, old_size = self._cached.popitem(last=False)
            self.bytes -= old_size
            _meta_path(old).unlink(missing_ok=True)
            old.unlink(missing_ok=True)

    async def _master_digest(self, path: Path) -> str:
        st = path.stat()
        known = self._digests.get(path)
        if known and known[:2] == (st.st_size, st.st_mtime_ns):
            return known[2]
        digest = await asyncio.to_thread(file_sha256, path)
        self._digests[path] = (st.st_size, st.st_mtime_ns, digest)
        return digest



def _meta_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.sha256")

