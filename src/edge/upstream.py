"""The client side of node-to-node traffic: what an edge asks its upstream (a shield or
the origin).

* ``GET  /v2/models/{m}[/versions/{v}]``: model metadata, including the extension fields
  ``version`` and ``digest`` (SHA-256 of model.onnx) used to key the cache.
* ``POST /internal/v1/models/{m}[/versions/{v}]/lookup``: a prediction by cache value.
  Body: msgpack ``{"inputs": [[name, datatype, shape, raw little-endian bytes], ...]}``.
  Answer: the cache value bytes (see `edge.tensors`), with headers ``X-Cache-Tier`` (where
  the upstream found it: l1, l2, compute, upstream/...), ``X-Model-Version`` and
  ``X-Model-Digest``.
* ``GET  /models/{m}/{v}/{file}``: artifacts, verified against their ETag (SHA-256).

Every request carries ``X-Edge-Hops``; a node refuses more than `MAX_HOPS` (a loop in the
upstream configuration). Connection failures, timeouts and 5xx raise
`UpstreamUnavailable`; 4xx answers raise `UpstreamRejected` with the upstream's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import aiohttp
import msgpack
import numpy as np

from edge.errors import EdgeError
from edge.tensors import ModelInfo, tensor_to_bytes

MAX_HOPS = 8
HOPS_HEADER = "X-Edge-Hops"
CHUNK = 256 * 1024


class UpstreamError(EdgeError):
    status = 502

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class UpstreamUnavailable(UpstreamError):
    status = 503


class UpstreamRejected(UpstreamError):
    """The upstream answered with a 4xx; `status` and the message are passed on."""


def encode_lookup(feeds: dict[str, np.ndarray], datatypes: dict[str, str]) -> bytes:
    return msgpack.packb({"inputs": [
        [name, datatypes[name], list(arr.shape), tensor_to_bytes(arr)]
        for name, arr in sorted(feeds.items())]})


class Upstream:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 2.0))
        self._session: aiohttp.ClientSession | None = None
        self.ok = True  # result of the last request, for /health

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(limit=256),
                auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @staticmethod
    def _path(name: str, version: str | None) -> str:
        return f"/v2/models/{name}" + (f"/versions/{version}" if version else "")

    async def model_metadata(self, name: str, version: str | None, hops: int) -> dict:
        body = await self._request("GET", self._path(name, version), hops)
        try:
            doc = json.loads(body)
            ModelInfo.from_metadata(doc)
        except (ValueError, KeyError, TypeError) as e:
            raise UpstreamUnavailable(f"upstream sent bad model metadata: {e}") from None
        return doc

    async def repository_index(self, hops: int) -> list[dict]:
        """The upstream's ``POST /v2/repository/index``: [{name, version, state, reason}]."""
        body = await self._request("POST", "/v2/repository/index", hops, data=b"{}")
        try:
            items = json.loads(body)
            return [{"name": str(d["name"]), "version": str(d["version"]),
                     "state": str(d["state"]), "reason": str(d.get("reason", ""))}
                    for d in items]
        except (ValueError, KeyError, TypeError) as e:
            raise UpstreamUnavailable(f"upstream sent a bad repository index: {e}") from None

    async def lookup(self, info: ModelInfo, version: str | None, feeds: dict[str, np.ndarray],
                     hops: int) -> tuple[bytes, str, str, str]:
        """(value, upstream tier, model version, model digest)."""
        datatypes = {s.name: s.datatype for s in info.inputs}
        path = "/internal/v1" + self._path(info.name, version)[3:] + "/lookup"
        headers: dict = {}
        body = await self._request("POST", path, hops, data=encode_lookup(feeds, datatypes),
                                   headers_out=headers)
        return (body, headers.get("X-Cache-Tier", "?"),
                headers.get("X-Model-Version", info.version),
                headers.get("X-Model-Digest", info.digest))

    async def _request(self, method: str, path: str, hops: int, data: bytes | None = None,
                       headers_out: dict | None = None) -> bytes:
        try:
            async with self._client().request(
                    method, self.base_url + path, data=data,
                    headers={HOPS_HEADER: str(hops + 1)}) as resp:
                body = await resp.read()
                self.ok = resp.status < 500
                if resp.status >= 500:
                    raise UpstreamUnavailable(
                        f"upstream {self.base_url} answered {resp.status}: {_message(body)}")
                if resp.status >= 400:
                    raise UpstreamRejected(_message(body), resp.status)
                if headers_out is not None:
                    headers_out.update(resp.headers)
                return body
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            self.ok = False
            raise UpstreamUnavailable(f"upstream {self.base_url} unreachable: "
                                      f"{type(e).__name__} {e}") from None

    async def probe(self) -> None:
        """Ask the upstream whether it is alive (`GET /v2/health/live`); sets `ok`."""
        with contextlib.suppress(UpstreamError):
            await self._request("GET", "/v2/health/live", 0)

    async def download(self, name: str, version: str, file: str, dest: Path,
                       hops: int) -> tuple[str, int]:
        """Stream an artifact to `dest` (atomically); returns (sha256, size). The ETag (the
        SHA-256, required) and the length are checked before the file is renamed into
        place: a partial, corrupt or unverifiable transfer never lands."""
        url = f"{self.base_url}/models/{name}/{version}/{file}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                async with self._client().get(
                        url, headers={HOPS_HEADER: str(hops + 1)},
                        timeout=aiohttp.ClientTimeout(total=None, sock_read=30,
                                                      connect=2)) as resp:
                    if resp.status >= 500:
                        raise UpstreamUnavailable(f"upstream answered {resp.status}")
                    if resp.status != 200:
                        raise UpstreamRejected(_message(await resp.read()), resp.status)
                    etag = (resp.headers.get("ETag") or "").strip('"')
                    length = resp.content_length
                    h, size = hashlib.sha256(), 0
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        h.update(chunk)
                        size += len(chunk)
                        await asyncio.to_thread(f.write, chunk)
                    await asyncio.to_thread(_sync, f)
            digest = h.hexdigest()
            if length is not None and size != length:
                raise UpstreamUnavailable(f"{url}: got {size} of {length} bytes")
            if etag != digest:  # also when the upstream sent no ETag: nothing to verify
                raise UpstreamUnavailable(f"{url}: content SHA-256 {digest} != ETag {etag}")
            os.replace(tmp, dest)
            self.ok = True
            return digest, size
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            self.ok = False
            raise UpstreamUnavailable(f"{url}: download failed: {type(e).__name__} {e}") \
                from None
        finally:
            Path(tmp).unlink(missing_ok=True)


def _sync(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode(errors="replace")
