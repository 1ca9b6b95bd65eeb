"""`EdgeConfig`: the one configuration object of a node (edge, shield or origin).

Loaded from a YAML or TOML file (`load_config`), then overridden by command-line flags
(`edge serve --help`). Keys in files may use dashes or underscores. Every option has a
default chosen so that `edge serve --models DIR` alone runs an origin on loopback.

A node is an *origin* when `upstream` is empty: it holds the master model folder and
answers every miss by computing. With an `upstream`, a node is an *edge* (or a regional
*shield* when other edges name it as their upstream): a miss goes to the upstream first
(whose caches are shared by all the edges below it), and the local model, when the node
holds one, answers only when the upstream cannot. `miss_order = "local-first"` turns this
around for models that are cheaper to run than one network hop.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edge.errors import EdgeError
from geocdn.hostport import HostPortError, parse_host_port


class ConfigError(EdgeError, ValueError):
    """A configuration value is missing, unknown or malformed; the message says which."""


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
               "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def parse_size(value: str | int) -> int:
    """`"64MiB"` → 67108864; plain integers are bytes."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ConfigError(f"not a size: {value!r} (use e.g. 67108864, 64MiB, 1GB)")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_hostport(value: str) -> tuple[str, int]:
    try:
        return parse_host_port(value)
    except HostPortError as exc:
        raise ConfigError(f"listen address: {exc}") from None


def parse_location(value: str | list | tuple | None) -> tuple[float, float] | None:
    if value is None or value == "":
        return None
    try:
        lat, lon = (float(x) for x in (value.split(",") if isinstance(value, str) else value))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"location must be LAT,LON, got {value!r}") from e
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ConfigError(f"location out of range: {value!r}")
    return lat, lon


MISS_ORDERS = ("upstream-first", "local-first")


@dataclass
class EdgeConfig:
    listen: str = "127.0.0.1:8000"
    grpc_listen: str | None = None  # HOST:PORT of the gRPC inference service (None = off)
    upstream: str | None = None  # base URL of the shield or origin; None = this is the origin
    models_dir: Path | None = None  # local model folder (master store on the origin)
    # L2 entries and downloaded artifacts; default var/edge-cache/<host>-<port>, so that
    # several nodes on one machine never share a folder
    cache_dir: Path | None = None
    l1: str = "memory"  # "memory" (per process) or "redis" (shared by a site's workers)
    redis_url: str | None = None  # the L1's Redis (l1 = redis)
    # The Redis of the model and invalidation stream (the origin's --redis); unset = the
    # L1's `redis_url` (one Redis, one database for both).
    dist_redis_url: str | None = None
    redis_prefix: str = "edge:"  # namespace of this node's keys in a shared Redis
    l1_bytes: int = 64 * 1024**2
    l2_bytes: int = 1024**3  # prediction entries on disk
    artifact_bytes: int = 4 * 1024**3  # artifacts downloaded from the upstream
    l1_ttl_s: float = 300.0
    l2_ttl_s: float = 3600.0
    # An expired entry may still be served this long when the upstream cannot be reached.
    stale_grace_s: float = 600.0
    l2_fsync: bool = True  # fsync L2 files before the atomic rename (crash safety)
    region: str = "local"
    location: tuple[float, float] | None = None
    capacity: int = 256  # concurrent requests that count as load 1.0 in /health
    max_batch: int = 64  # rows per inference micro-batch (1 disables batching)
    max_queue_delay_ms: float = 2.0  # longest a request waits for its batch to fill
    inference_threads: int = 1  # onnxruntime intra-op threads per session
    default_model: str = "ranker"  # model of /predict and /batch_predict without "model"
    max_body_bytes: int = 4 * 1024**2
    upstream_timeout_s: float = 5.0
    # Where a miss goes when the node both holds the model and has an upstream:
    # "upstream-first" (the shield's caches, then the local model) or "local-first".
    miss_order: str = "upstream-first"
    catalog_ttl_s: float = 5.0  # how long a remote model's version/digest is trusted
    model_idle_unload_s: float = 0.0  # unload models unused this long (0 = never)
    admin_token: str | None = None  # bearer token for /admin/*; unset = loopback clients only
    # Model distribution (edge.distribution): on the origin, the content-addressed store
    # behind /dist/v1; on edges, the origin URL versions come from (default: upstream).
    dist_store: Path | None = None
    dist_url: str | None = None
    # Edges: the OCI registry of this edge's region (http(s)://HOST:PORT/REPOSITORY), where
    # version files are fetched first (`edge publish --oci` pushes them there).
    oci_registry: str | None = dataclasses.field(default=None, repr=False)  # credentials
    edge_id: str | None = None  # name in rollout reports; default <region>-<host>-<port>
    prefetch_threshold: int = 20  # requests per minute that make a model prefetched
    # Edges: run the INT8 variant of versions published with one (smaller, faster, a little
    # less exact: see the agreement figures in the manifest).
    prefer_int8: bool = False
    # Latency measurements (`latency.edge`): beacons and kernel RTTs go to this Redis;
    # `latency_name` is this node's member name in the pool (default: edge_id), and
    # `latency_peers` the other members clients may time, NAME -> base URL.
    latency_redis: str | None = None
    latency_name: str | None = None
    latency_peers: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def is_origin(self) -> bool:
        return not self.upstream

    @property
    def stream_redis_url(self) -> str | None:
        """The Redis the model and invalidation stream is read from (or written to)."""
        return self.dist_redis_url or self.redis_url

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_hostport(self.listen)

    @property
    def cache_root(self) -> Path:
        """`cache_dir`, or its default var/edge-cache/<host>-<port> (one per node)."""
        if self.cache_dir is not None:
            return self.cache_dir
        host, port = self.host_port
        return Path("var/edge-cache") / f"{host}-{port}"

    def validate(self) -> EdgeConfig:
        self.host_port  # noqa: B018 - raises ConfigError when malformed
        if self.grpc_listen:
            parse_hostport(self.grpc_listen)
        if self.l1 not in ("memory", "redis"):
            raise ConfigError(f"l1 must be 'memory' or 'redis', got {self.l1!r}")
        if self.miss_order not in MISS_ORDERS:
            raise ConfigError(f"miss_order must be one of {', '.join(MISS_ORDERS)}, "
                              f"got {self.miss_order!r}")
        if self.l1 == "redis" and not self.redis_url:
            raise ConfigError("l1 = redis needs redis_url (e.g. redis://127.0.0.1:6379/0)")
        if self.upstream and not re.match(r"[a-z]+://", self.upstream):
            self.upstream = "http://" + self.upstream  # HOST:PORT is enough
        if self.upstream and not re.match(r"http://[^/]", self.upstream):
            raise ConfigError(f"upstream must be an http:// URL, got {self.upstream!r}")
        if self.upstream:
            self.upstream = self.upstream.rstrip("/")
        self.cache_dir = self.cache_root
        for name in ("capacity", "max_batch", "inference_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        for name in ("l1_ttl_s", "l2_ttl_s", "stale_grace_s", "max_queue_delay_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        return self

    def replace(self, **changes: Any) -> EdgeConfig:
        return config_from_mapping(changes, base=self)


_FIELDS = {f.name: f for f in dataclasses.fields(EdgeConfig)}
_CONVERTERS: dict[str, Any] = {
    "models_dir": lambda v: Path(v) if v else None,
    "cache_dir": lambda v: Path(v) if v else None,
    "location": parse_location,
    "l1_bytes": parse_size, "l2_bytes": parse_size, "artifact_bytes": parse_size,
    "max_body_bytes": parse_size,
    "capacity": int, "max_batch": int, "inference_threads": int,
    "l1_ttl_s": float, "l2_ttl_s": float, "stale_grace_s": float, "max_queue_delay_ms": float,
    "upstream_timeout_s": float, "catalog_ttl_s": float, "model_idle_unload_s": float,
    "upstream": lambda v: v or None, "grpc_listen": lambda v: v or None,
    "dist_store": lambda v: Path(v) if v else None,
    "dist_url": lambda v: v or None, "prefetch_threshold": int,
    "dist_redis_url": lambda v: v or None, "oci_registry": lambda v: v or None,
    "latency_peers": lambda v: parse_peers(v),
}


def parse_peers(value: str | dict) -> dict[str, str]:
    """`"tokyo=http://127.0.1.1:8000,london=http://127.0.1.2:8000"` or a mapping."""
    if isinstance(value, dict):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        pairs = [tuple(p.split("=", 1)) for p in str(value).split(",") if p]  # type: ignore[misc]
    out = {}
    for pair in pairs:
        if len(pair) != 2 or not re.fullmatch(r"[A-Za-z0-9._-]{1,63}", pair[0]) \
                or not re.match(r"https?://[^/]", pair[1]):
            raise ConfigError(f"peers must be NAME=http://HOST:PORT,..., got {value!r}")
        out[pair[0]] = pair[1].rstrip("/")
    return out


def config_from_mapping(values: dict[str, Any], base: EdgeConfig | None = None,
                        source: str = "config") -> EdgeConfig:
    """Apply `values` (file keys or flags) over `base`; unknown keys are errors."""
    changes: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = raw_key.replace("-", "_")
        if key not in _FIELDS:
            raise ConfigError(f"{source}: unknown option {raw_key!r}")
        if value is None:
            continue
        try:
            changes[key] = _CONVERTERS.get(key, lambda v: v)(value)
        except ConfigError as e:
            raise ConfigError(f"{source}: {raw_key}: {e}") from None
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{source}: {raw_key}: {e}") from None
    try:
        return dataclasses.replace(base or EdgeConfig(), **changes).validate()
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def load_config(path: str | Path, base: EdgeConfig | None = None) -> EdgeConfig:
    """Read a `.yaml`/`.yml` or `.toml` file; the whole file is one mapping of options."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.')}: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of options at the top level")
    return config_from_mapping(data, base=base, source=str(path))
