"""Model versions as OCI artifacts, through a registry (the `oras` client).

A version is pushed as one artifact, tagged ``NAME-VERSION`` in a repository: one layer
per file, the weights (``model.onnx``) in a layer of their own and the model's
``config.json`` (when it has one) in another, and the name, version and SHA-256 of the
weights as manifest annotations. Layers are addressed by their SHA-256, the same digest
the origin's manifests carry, so a registry stores a file once, a push skips every
layer the registry already holds (a new version whose config is unchanged uploads only
its weights), and an edge can fetch any file of a manifest by its digest from the
registry of its region and check it like any download.

A registry is named by a URL, ``http://[USER:PASSWORD@]HOST:PORT/REPOSITORY``
(``https://`` for TLS); ``${NAME}`` in it is the environment variable NAME, so a password
need not be on a command line (``https://ci:${OCI_PASSWORD}@registry.example/models``).
The credentials are kept apart from the host: they go to the client's authentication
(HTTP Basic where the registry asks for it, as an htpasswd registry does; else the
token flow most registries use) and never into a repr, a message, a log or a metric.
The client is synchronous (requests), so every call runs in a thread.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import oras.client
import requests
import urllib3

from edge.distribution.blobs import sha256_bytes, sha256_file
from edge.distribution.errors import DistributionError
from edge.distribution.names import check_name, check_version
from geocdn.urls import expand, redacted

WEIGHTS_TYPE = "application/vnd.geocdn.model.onnx"
CONFIG_TYPE = "application/vnd.geocdn.model.config+json"


class RegistryError(DistributionError):
    """The registry refused or could not be reached; the message says which and why."""


@lru_cache(maxsize=64)
def asks_for_basic(base_url: str) -> bool:
    """The registry at `base_url` challenges with HTTP Basic (an htpasswd registry), not
    the token flow: oras has one auth backend for each, and cannot tell them apart."""
    response = requests.get(f"{base_url}/v2/", timeout=10)
    response.close()
    challenge = response.headers.get("Www-Authenticate", "")
    return response.status_code == 401 and challenge.lower().startswith("basic")


@dataclass(frozen=True)
class Registry:
    """One repository of one registry, and who we are there."""

    host: str  # HOST:PORT
    repository: str
    insecure: bool  # plain HTTP
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> Registry:
        """The registry `url` names; errors quote it with any password redacted."""
        usage = (f"{redacted(url)!r}: name a registry as "
                 "http(s)://[USER:PASSWORD@]HOST:PORT/REPOSITORY")
        try:
            parts = urlsplit(expand(url, "the registry URL"))
            host = parts.netloc.rpartition("@")[2]
            repository = parts.path.strip("/")
            username, password = parts.username, parts.password
        except ValueError as exc:  # an unset ${NAME}, a malformed host
            raise RegistryError(f"{usage} ({exc})") from None
        if parts.scheme not in ("http", "https") or not host or not repository \
                or (username is None) != (password is None):
            raise RegistryError(usage)
        return cls(host, repository, parts.scheme == "http",
                   unquote(username) if username is not None else None,
                   unquote(password) if password is not None else None)

    def _client(self) -> oras.client.OrasClient:
        basic = asks_for_basic(f"{'http' if self.insecure else 'https'}://{self.host}")
        if self.username is None or self.password is None:
            if basic:  # else oras would look for a token service, retrying for minutes
                raise RegistryError(f"{self.host} requires a user and password: "
                                    "http(s)://USER:PASSWORD@HOST:PORT/REPOSITORY")
            return oras.client.OrasClient(hostname=self.host, insecure=self.insecure)
        client = oras.client.OrasClient(hostname=self.host, insecure=self.insecure,
                                        auth_backend="basic" if basic else "token")
        client.auth.set_basic_auth(self.username, self.password)
        return client

    def target(self, name: str, version: str) -> str:
        return f"{self.host}/{self.repository}:{check_name(name)}-{check_version(version)}"

    def push(self, name: str, version: str, weights: Path, config: Path | None) -> str:
        """Push one version; the tag it got. Layers the registry has are not sent."""
        files = [f"{weights}:{WEIGHTS_TYPE}"]
        if config is not None:
            files.append(f"{config}:{CONFIG_TYPE}")
        annotations = {"org.geocdn.model.name": name, "org.geocdn.model.version": version,
                       "org.geocdn.model.digest": sha256_file(weights)}
        target = self.target(name, version)
        try:
            response = self._client().push(
                target, files=files, manifest_annotations=annotations,
                disable_path_validation=True, quiet=True)
        except (requests.RequestException, ValueError, OSError) as exc:
            raise RegistryError(f"pushing {target}: {exc}") from None
        if not response.ok:
            raise RegistryError(f"pushing {target}: HTTP {response.status_code}")
        return target

    def blob(self, digest: str, max_size: int) -> bytes:
        """The bytes of blob `digest`, checked against it."""
        container = f"{self.host}/{self.repository}"
        try:
            with self._client().get_blob(container, digest, stream=True) as response:
                if response.status_code != 200:
                    raise RegistryError(f"{container}: blob {digest[:19]}: HTTP "
                                        f"{response.status_code}")
                data = response.raw.read(max_size + 1, decode_content=True)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise RegistryError(f"{container}: {exc}") from None
        if len(data) > max_size:
            raise RegistryError(f"blob {digest[:19]} is larger than announced")
        if sha256_bytes(data) != digest:
            raise RegistryError(f"blob {digest[:19]} from {container} does not match its "
                                "digest")
        return data


class RegistryBlobs:
    """The fetcher's view of a registry: `blob(digest, max_size)` like the origin's."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def blob(self, digest: str, max_size: int) -> bytes:
        return await asyncio.to_thread(self.registry.blob, digest, max_size)
