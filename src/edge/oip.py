"""The Open Inference Protocol (KServe v2), independent of its transport.

REST (`edge.http_kserve`) and gRPC (`edge.grpc_service`) decode a request into
`InferInput`s, call `infer()` and encode the `InferResult`; both go through the node's
one prediction path (its tiers, the upstream, the local model) and are counted in the
same Triton statistics. Server and model metadata, Triton's model configuration and
statistics and the repository index are built here once, as JSON documents: REST sends
them as they are, gRPC parses them into the protocol's messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from edge import __version__
from edge.cache import TierUnavailable
from edge.node import EdgeNode, ModelNotFound, Unavailable
from edge.tensors import (
    DATATYPES,
    BadInput,
    ModelInfo,
    output_array,
    tensor_from_bytes,
    tensor_from_data,
    tensor_to_bytes,
)
from edge.upstream import UpstreamError

SERVER_NAME = "geocdn-edge"
EXTENSIONS = ["binary_tensor_data", "model_repository", "model_configuration", "statistics"]
# KServe datatype → Triton model configuration data_type
CONFIG_TYPES = {name: "TYPE_STRING" if name == "BYTES" else f"TYPE_{name}" for name in DATATYPES}


@dataclass(slots=True)
class InferInput:
    """One input as the client sent it: JSON values (`data`) or raw wire bytes (`raw`)."""

    name: str
    datatype: object  # checked: a client may send anything
    shape: object
    data: object = None
    raw: bytes | None = None


@dataclass(slots=True)
class OutputTensor:
    name: str
    datatype: str
    shape: list[int]
    data: list  # flat, as JSON values
    binary: bool = False  # the client asked for it as raw bytes

    def array(self) -> np.ndarray:
        return output_array({"datatype": self.datatype, "shape": self.shape, "data": self.data})

    def raw(self) -> bytes:
        return tensor_to_bytes(self.array())


@dataclass(slots=True)
class InferResult:
    model_name: str
    model_version: str
    outputs: list[OutputTensor]
    tier: str  # l1, l2, stale, compute or upstream/<the upstream's tier>
    info: ModelInfo  # what the model resolved to
    key: str  # the cache key
    value: bytes  # the cache value


def error_status(e: BaseException) -> int | None:
    """The HTTP status of an expected failure to answer (gRPC maps it to its codes);
    None for anything else (a bug: 500)."""
    if isinstance(e, BadInput):
        return 400
    if isinstance(e, ModelNotFound):
        return 404
    if isinstance(e, Unavailable | TierUnavailable):
        return 503
    if isinstance(e, UpstreamError):
        return e.status
    return None


def parameters(value: object, where: str) -> dict:
    """A ``parameters`` field: absent, or an object."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadInput(f'{where}: "parameters" must be an object')
    return value


def request_id(value: object) -> str:
    """The protocol's ``id`` is a string, echoed as given."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadInput('"id" must be a string')
    return value


async def infer(node: EdgeNode, model: str, version: str | None, inputs: list[InferInput],
                wanted: dict[str, bool] | None, hops: int, started: float,
                binary_default: bool = False) -> InferResult:
    """Answer one inference request. `wanted`: output name → as raw bytes? (None: every
    output, raw when `binary_default`). `started`: `time.perf_counter()` when the request
    arrived."""
    info, mv = await node.resolve(model, version, hops)
    with node.metrics.track(info.name, info.version, started) as tracked:
        feeds = _feeds(info, inputs)
        names = [s.name for s in info.outputs]
        if wanted is None:
            wanted = dict.fromkeys(names, binary_default)
        for name in wanted:
            if name not in names:
                raise BadInput(f"unknown output {name!r}; model {info.name!r} has {names}")
        key = info.cache_key(feeds)
        value, tier = await node.predict(info, mv, feeds, version, hops, key=key)
        tracked.tier = tier
    doc = json.loads(value)
    outputs = [OutputTensor(o["name"], o["datatype"], o["shape"], o["data"], wanted[o["name"]])
               for o in doc["outputs"] if o["name"] in wanted]
    return InferResult(doc["model_name"], doc["model_version"], outputs, tier, info, key, value)


def _feeds(info: ModelInfo, inputs: list[InferInput]) -> dict[str, np.ndarray]:
    specs = {s.name: s for s in info.inputs}
    feeds: dict[str, np.ndarray] = {}
    for item in inputs:
        spec = specs.get(item.name)
        if spec is None:
            raise BadInput(f"unknown input {item.name!r}; model {info.name!r} takes "
                           f"{sorted(specs)}")
        if item.name in feeds:
            raise BadInput(f"input {item.name!r} given twice")
        if item.datatype not in DATATYPES:
            raise BadInput(f"input {item.name!r}: unsupported datatype {item.datatype!r}")
        if item.raw is not None:
            feeds[item.name] = tensor_from_bytes(spec, item.datatype, item.shape, item.raw)
        elif item.data is not None:
            feeds[item.name] = tensor_from_data(spec, item.datatype, item.shape, item.data)
        else:
            raise BadInput(f"input {item.name!r} has no data")
    if set(feeds) != set(specs):
        raise BadInput(f"missing inputs {sorted(set(specs) - set(feeds))}")
    if len({a.shape[0] for a in feeds.values() if a.ndim}) > 1:
        raise BadInput("inputs disagree on the batch size (first dimension)")
    return feeds


# -- documents -----------------------------------------------------------------------
def server_metadata() -> dict:
    return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}


def server_ready(node: EdgeNode) -> bool:
    return not node.draining and (bool(node.registry.active()) or node.upstream is not None) \
        and (node.rollout is None or node.rollout.ready)


def model_config(node: EdgeNode, info: ModelInfo) -> dict:
    """Triton's model configuration. A model whose every tensor has a variable first
    dimension batches: ``max_batch_size`` > 0 and ``dims`` without that dimension, as
    Triton's clients and perf_analyzer expect."""
    tensors = info.inputs + info.outputs
    batching = all(t.shape and t.shape[0] == -1 for t in tensors)

    def io(spec) -> dict:
        dims = list(spec.shape[1:] if batching else spec.shape)
        return {"name": spec.name, "data_type": CONFIG_TYPES[spec.datatype], "dims": dims}

    doc = {"name": info.name, "platform": info.platform, "backend": "onnxruntime",
           "version_policy": {"latest": {"num_versions": 1}},
           "max_batch_size": node.config.max_batch if batching else 0,
           "input": [io(s) for s in info.inputs], "output": [io(s) for s in info.outputs],
           "instance_group": [{"name": info.name, "kind": "KIND_CPU", "count": 1}],
           "response_cache": {"enable": True}}
    if batching and node.config.max_batch > 1:
        doc["dynamic_batching"] = {
            "max_queue_delay_microseconds": int(node.config.max_queue_delay_ms * 1000)}
    return doc


async def model_statistics(node: EdgeNode, name: str | None, version: str | None,
                           hops: int) -> dict:
    """Triton's statistics extension: every model this node counted, or one model (all its
    versions counted here, or one version)."""
    if name is None:
        return {"model_stats": [s.to_json() for s in node.metrics.model_stats()]}
    info, _ = await node.resolve(name, version, hops)
    stats = node.metrics.model_stats(info.name, version) \
        or [node.metrics.model(info.name, info.version)]
    return {"model_stats": [s.to_json() for s in stats]}


async def repository_index(node: EdgeNode, ready_only: bool, hops: int) -> list[dict]:
    """The models this node serves: its own (every loaded version), then those its
    upstream serves (answered through it), each ``READY``."""
    index: dict[tuple[str, str], dict] = {}
    for name in node.registry.names():
        for version in node.registry.versions(name):
            index[(name, version)] = {"name": name, "version": version, "state": "READY",
                                      "reason": ""}
    if node.upstream is not None:
        try:
            for item in await node.upstream.repository_index(hops):
                index.setdefault((item["name"], item["version"]), item)
        except (UpstreamError, Unavailable):
            pass  # the upstream's models are simply not listed while it is away
    items = sorted(index.values(), key=lambda d: (d["name"], d["version"]))
    return [d for d in items if d["state"] == "READY"] if ready_only else items


async def model_ready(node: EdgeNode, name: str, version: str | None, hops: int) -> bool:
    try:
        await node.resolve(name, version, hops)
    except ModelNotFound:
        return False
    return True
