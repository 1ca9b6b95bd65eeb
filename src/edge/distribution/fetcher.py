"""Edge side of a transfer: get one file of a manifest into the local blob store.

Tries the cheapest variant first (a delta against a file this edge already has, then
zstd, then the plain file) and falls back to the next one when a download fails or
does not verify. A file is only ever handed on after its SHA-256 matched.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import zstandard

from edge.distribution import transfer
from edge.distribution.blobs import BlobStore
from edge.distribution.client import OriginClient
from edge.distribution.errors import DistributionError, TransferFailed
from edge.distribution.manifest import FileEntry
from edge.distribution.metrics import AgentMetrics
from edge.distribution.oci import RegistryBlobs
from edge.distribution.service import LocalOrigin

log = logging.getLogger(__name__)

FETCH_ERRORS: tuple[type[Exception], ...] = (
    DistributionError, aiohttp.ClientError, asyncio.TimeoutError, zstandard.ZstdError,
    ValueError, OSError)


class Fetcher:
    def __init__(self, origin: OriginClient | LocalOrigin, local: BlobStore,
                 edge_id: str, metrics: AgentMetrics,
                 registry: RegistryBlobs | None = None) -> None:
        self.origin = origin
        self.registry = registry
        self.metrics = metrics
        self.local = local
        self.edge_id = edge_id

    async def fetch(self, entry: FileEntry) -> Path:
        """The verified local path of `entry`'s file, downloading it if needed."""
        if self.local.has(entry.digest):
            return self.local.path(entry.digest)
        errors = []
        for step in transfer.plan(entry, set(self.local.digests()), self.registry is not None):
            source = self.registry if step.kind == "registry" and self.registry else self.origin
            try:
                payload = await source.blob(step.digest, step.size)
                self.metrics.transfer_bytes.labels(step.kind).inc(len(payload))
                base = self.local.read(step.base_digest) if step.kind == "delta" else None
                data = await asyncio.to_thread(transfer.rebuild, step, payload, entry, base)
            except FETCH_ERRORS as exc:
                self.metrics.transfer_failures.labels(step.kind).inc()
                log.warning("%s: %s transfer of %s rejected: %s", self.edge_id, step.kind,
                            entry.digest[:19], exc)
                errors.append(f"{step.kind}: {exc}")
                continue
            await asyncio.to_thread(self.local.put_bytes, data)
            log.info("%s: got %s via %s (%d of %d bytes)", self.edge_id, entry.digest[:19],
                     step.kind, len(payload), entry.size)
            return self.local.path(entry.digest)
        raise TransferFailed(f"no variant of {entry.digest} verified: " + "; ".join(errors))

    def keep_only(self, digests: set[str]) -> None:
        """Drop local files no loaded version needs (they were only delta bases)."""
        for d in list(self.local.digests()):
            if d not in digests:
                self.local.remove(d)
