"""HTTP client of the origin's distribution API (used by edges and by the CLI)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from edge.distribution.errors import Conflict, DistributionError, InvalidName, NotFound
from edge.distribution.manifest import Manifest
from edge.distribution.names import check_digest, check_name, check_version

API = "/dist/v1"
CONFIG_HEADER = "X-Model-Config"  # a published model's config.json, as compact JSON


class OriginError(DistributionError):
    """The origin answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"origin answered {status}: {message}")
        self.status = status


_BY_STATUS = {404: NotFound, 409: Conflict, 400: InvalidName}


class OriginClient:
    def __init__(self, base_url: str, token: str | None = None,
                 timeout: float = 60.0) -> None:
        self.base = base_url.rstrip("/") + API
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> OriginClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._session = aiohttp.ClientSession(headers=headers, timeout=self.timeout)
        return self._session

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        async with self._http().request(method, self.base + path, **kw) as resp:
            if resp.status >= 400:
                try:
                    message = (await resp.json()).get("error", resp.reason)
                except (aiohttp.ContentTypeError, ValueError):
                    message = (await resp.text())[:200]
                exc = _BY_STATUS.get(resp.status)
                raise exc(message) if exc else OriginError(resp.status, message)
            return await resp.json()

    # ----- reads (public)
    async def summary(self) -> dict[str, Any]:
        return (await self._call("GET", "/models"))["models"]

    async def manifest(self, name: str, version: str) -> Manifest:
        path = f"/models/{check_name(name)}/versions/{check_version(version)}"
        return Manifest.from_dict(await self._call("GET", path))

    async def blob(self, digest: str, max_size: int) -> bytes:
        """Download one blob; the caller verifies its digest (see transfer.rebuild)."""
        url = f"{self.base}/blobs/sha256/{check_digest(digest).split(':', 1)[1]}"
        async with self._http().get(url) as resp:
            if resp.status != 200:
                raise OriginError(resp.status, f"blob {digest}")
            data = await resp.content.read(max_size + 1)
            if len(data) > max_size:
                raise DistributionError(f"blob {digest} is larger than announced")
            return data

    # ----- mutations (token)
    async def publish(self, model_file: Path, name: str, version: str, *, int8: bool = False,
                      activate: bool = False, stage: bool = False,
                      config: dict[str, Any] | None = None) -> dict[str, Any]:
        """Upload a model file; `config` (its config.json) goes in the X-Model-Config
        header."""
        params = {k: "1" for k, on in (("int8", int8), ("activate", activate),
                                       ("stage", stage)) if on}
        path = f"/models/{check_name(name)}/versions/{check_version(version)}"
        headers = {"Content-Type": "application/octet-stream"}
        if config is not None:
            headers[CONFIG_HEADER] = json.dumps(config, separators=(",", ":"))
        with open(model_file, "rb") as f:
            return await self._call("PUT", path, data=f, params=params, headers=headers)

    async def activate(self, name: str, version: str) -> dict[str, Any]:
        return await self._call("POST", f"/models/{check_name(name)}/activate",
                                json={"version": check_version(version)})

    async def stage(self, name: str, version: str) -> dict[str, Any]:
        return await self._call("POST", f"/models/{check_name(name)}/stage",
                                json={"version": check_version(version)})

    async def rollback(self, name: str) -> dict[str, Any]:
        return await self._call("POST", f"/models/{check_name(name)}/rollback")

    async def purge(self, kind: str, value: str) -> dict[str, Any]:
        return await self._call("POST", "/purge", json={kind: value})

    async def rollout(self) -> dict[str, Any]:
        return await self._call("GET", "/rollout")

    async def report(self, edge_id: str, state: dict[str, Any]) -> None:
        await self._call("POST", f"/rollout/{edge_id}", json=state)
