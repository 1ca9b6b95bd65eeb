"""The simple prediction API and the node-to-node lookup.

``POST /predict`` ``{"features": [...], "model"?: name, "version"?: v}`` →
``{"cached": bool, "tier": "l1"|"l2"|"compute"|"stale"|"upstream/...", "region": ...,
"model_name", "model_version", "prediction", "outputs": [...]}``

``POST /batch_predict`` ``{"features": [[...], ...]}``: each row is predicted (and
cached) on its own, so rows already asked for are hits; misses of one call are inferred
together by the micro-batcher. Answers ``{"predictions": [...], "cached": [...],
"tiers": [...], "model_name", "model_version", "region"}``.

Both take models with one input; the first dimension is the batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Generic, TypeVar

import msgpack
from aiohttp import web

from edge import routes
from edge.node import NODE, EdgeNode
from edge.registry import ModelVersion
from edge.tensors import (
    DATATYPES,
    BadInput,
    ModelInfo,
    check_tensor,
    tensor_from_bytes,
    to_array,
)
from edge.upstream import HOPS_HEADER, MAX_HOPS, UpstreamError

MAX_BATCH_PREDICT_ROWS = 1024
E = TypeVar("E")
JSON = "application/json"


def request_hops(request: web.Request) -> int:
    """The nodes a request has passed (the loop guard): a small non-negative integer."""
    raw = request.headers.get(HOPS_HEADER)
    if raw is None:  # a client's request: the common case
        return 0
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()):
        raise BadInput(f"{HOPS_HEADER} must be a non-negative integer, got {raw[:20]!r}")
    hops = int(raw) if len(raw) <= 4 else MAX_HOPS + 1
    if hops > MAX_HOPS:
        raise UpstreamError(f"request passed {hops} nodes: an upstream loop?", 508)
    return hops


def parse_json(body: bytes) -> dict:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadInput(f"body is not JSON: {e}") from None
    except RecursionError:
        raise BadInput("body is JSON nested too deep") from None
    if not isinstance(doc, dict):
        raise BadInput("body must be a JSON object")
    return doc


async def json_body(request: web.Request) -> dict:
    return parse_json(await request.read())


def _single_input(info: ModelInfo) -> str:
    if len(info.inputs) != 1:
        raise BadInput(f"model {info.name!r} has {len(info.inputs)} inputs; "
                       f"use POST /v2/models/{info.name}/infer")
    return info.inputs[0].name


async def _resolve(node: EdgeNode, doc: dict,
                   hops: int) -> tuple[ModelInfo, ModelVersion | None, str | None]:
    model = doc.get("model", node.config.default_model)
    version = doc.get("version")
    if not isinstance(model, str) or not (version is None or isinstance(version, str)):
        raise BadInput('"model" and "version" must be strings')
    info, mv = await node.resolve(model, version, hops)
    if "features" not in doc:
        raise BadInput('missing "features"')
    return info, mv, version


class _Prefixes:
    """Pre-serialized response heads per tier: the hit path only joins bytes."""

    def __init__(self, region: str) -> None:
        self._region = json.dumps(region)
        self._heads: dict[str, bytes] = {}

    def head(self, tier: str) -> bytes:
        head = self._heads.get(tier)
        if head is None:
            head = (f'{{"cached":{json.dumps(is_cached(tier))},"tier":{json.dumps(tier)},'
                    f'"region":{self._region},').encode()
            self._heads[tier] = head
        return head


def is_cached(tier: str) -> bool:
    return not tier.endswith("compute")


PREFIXES = web.AppKey("edge_predict_prefixes", _Prefixes)


class BodyAliases(Generic[E]):
    """Recent exact request bodies → what answering them again needs (here: model,
    version, ModelInfo and cache key; for KServe requests, the whole answer).

    A repeated body (the common case for hot keys) then skips JSON parsing, conversion
    and the canonical digest: one BLAKE2b of the raw bytes and an L1 lookup. An alias is
    used only while its model still resolves to the very same `ModelInfo` object, so a
    new version (or a refreshed remote catalog entry) is never answered through it.
    Bounded; the oldest aliases go first."""

    def __init__(self, max_entries: int = 32768) -> None:
        self._max = max_entries
        self._map: dict[bytes, E] = {}

    def get(self, digest: bytes) -> E | None:
        return self._map.get(digest)

    def put(self, digest: bytes, entry: E) -> None:
        if len(self._map) >= self._max:
            del self._map[next(iter(self._map))]
        self._map[digest] = entry


ALIASES = web.AppKey("edge_body_aliases", BodyAliases[tuple[str, str | None, ModelInfo, str]])


def _answer(app: web.Application, value: bytes, tier: str) -> web.Response:
    return web.Response(body=app[PREFIXES].head(tier) + value[1:],
                        headers={"Content-Type": JSON, "X-Cache-Tier": tier})


async def predict(request: web.Request) -> web.Response:
    started = time.perf_counter()
    app = request.app
    node = app[NODE]
    hops = request_hops(request)
    body = await request.read()
    body_digest = hashlib.blake2b(body, digest_size=16).digest()
    aliases = app[ALIASES]
    alias = aliases.get(body_digest)
    if alias is not None:
        model, version, info, key = alias
        if node.current_info(model, version) is info:
            value = await node.l1_hit(info, key)
            if value is not None:
                node.metrics.request_done(info.name, info.version, "l1",
                                          time.perf_counter() - started)
                return _answer(app, value, "l1")
    doc = parse_json(body)
    info, mv, version = await _resolve(node, doc, hops)
    with node.metrics.track(info.name, info.version, started) as tracked:
        name = _single_input(info)
        arr = to_array(name, doc["features"], DATATYPES[info.inputs[0].datatype])
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        check_tensor(info.inputs[0], arr)
        feeds = {name: arr}
        key = info.cache_key(feeds)
        value, tier = await node.predict(info, mv, feeds, version, hops, key=key)
        tracked.tier = tier
    aliases.put(body_digest, (doc.get("model", node.config.default_model), version, info, key))
    return _answer(app, value, tier)


async def batch_predict(request: web.Request) -> web.Response:
    started = time.perf_counter()
    node = request.app[NODE]
    hops = request_hops(request)
    doc = await json_body(request)
    info, mv, version = await _resolve(node, doc, hops)
    with node.metrics.track(info.name, info.version, started) as tracked:
        name = _single_input(info)
        arr = to_array(name, doc["features"], DATATYPES[info.inputs[0].datatype])
        if arr.ndim < 2:
            raise BadInput('"features" must be a list of rows')
        if not 0 < arr.shape[0] <= MAX_BATCH_PREDICT_ROWS:
            raise BadInput(f'"features" must have 1..{MAX_BATCH_PREDICT_ROWS} rows')
        check_tensor(info.inputs[0], arr)
        results = await asyncio.gather(*(node.predict(info, mv, {name: arr[i:i + 1]}, version,
                                                      hops) for i in range(arr.shape[0])))
        tiers = {tier for _, tier in results}  # one tier answers for the request: the slowest
        tracked.tier = next((t for t in ("compute", "upstream", "stale", "l2") if
                             any(x.startswith(t) for x in tiers)), "l1")
    docs = [json.loads(value) for value, _ in results]
    body = {
        "predictions": [d["prediction"] for d in docs],
        "cached": [is_cached(tier) for _, tier in results],
        "tiers": [tier for _, tier in results],
        "model_name": info.name,
        "model_version": docs[0]["model_version"],
        "region": node.config.region,
    }
    return web.json_response(body)


async def lookup(request: web.Request) -> web.Response:
    """Node-to-node: the cache value for msgpack-encoded raw inputs (see edge.upstream)."""
    started = time.perf_counter()
    node = request.app[NODE]
    hops = request_hops(request)
    version = request.match_info.get("version")
    info, mv = await node.resolve(request.match_info["model"], version, hops)
    with node.metrics.track(info.name, info.version, started) as tracked:
        try:
            doc = msgpack.unpackb(await request.read())
            items = doc["inputs"]
            specs = {s.name: s for s in info.inputs}
            feeds = {}
            for name, datatype, shape, raw in items:
                if name not in specs:
                    raise BadInput(f"unknown input {name!r}")
                feeds[name] = tensor_from_bytes(specs[name], datatype, shape, raw)
        except BadInput:
            raise
        except (ValueError, KeyError, TypeError, msgpack.UnpackException) as e:
            raise BadInput(f"bad lookup body: {e}") from None
        if set(feeds) != set(specs):
            raise BadInput(f"inputs must be exactly {sorted(specs)}")
        value, tier = await node.predict(info, mv, feeds, version, hops)
        tracked.tier = tier
    return web.Response(body=value, content_type=JSON, headers={
        "X-Cache-Tier": tier, "X-Model-Version": info.version, "X-Model-Digest": info.digest})


def add_routes(app: web.Application) -> None:
    app[PREFIXES] = _Prefixes(app[NODE].config.region)
    app[ALIASES] = BodyAliases()
    routes.add(app, "POST", "/predict", predict, "predict")
    routes.add(app, "POST", "/batch_predict", batch_predict, "batch_predict")
    routes.add(app, "POST", "/internal/v1/models/{model}/lookup", lookup, "lookup")
    routes.add(app, "POST", "/internal/v1/models/{model}/versions/{version}/lookup", lookup,
               "lookup_version")
