"""The Open Inference Protocol (KServe v2 REST), including the binary tensor extension.

Routes: ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``,
``/v2/models/{m}[/versions/{v}]``, ``.../ready``, ``POST .../infer``.

Binary extension: when the request has ``Inference-Header-Content-Length: N``, the first
N bytes of the body are the JSON header and the rest holds, in input order, the raw
little-endian data of each input whose ``parameters.binary_data_size`` is set. Outputs
are sent binary when the request asks (``outputs[i].parameters.binary_data`` or the
request's ``parameters.binary_data_output``), with the same header in the answer.
Model metadata carries two extension fields: ``version`` (served now) and ``digest``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from aiohttp import web

from edge import oip, routes
from edge.http_predict import BodyAliases, is_cached, parse_json, request_hops
from edge.node import NODE, EdgeNode
from edge.tensors import BadInput, ModelInfo

HEADER_LENGTH = "Inference-Header-Content-Length"


async def server_metadata(request: web.Request) -> web.Response:
    return web.json_response(oip.server_metadata())


async def live(request: web.Request) -> web.Response:
    return web.json_response({"live": True})


async def ready(request: web.Request) -> web.Response:
    is_ready = oip.server_ready(request.app[NODE])
    return web.json_response({"ready": is_ready}, status=200 if is_ready else 503)


async def model_metadata(request: web.Request) -> web.Response:
    node = request.app[NODE]
    doc = await node.model_metadata(request.match_info["model"],
                                    request.match_info.get("version"), request_hops(request))
    return web.json_response(doc)


async def model_ready(request: web.Request) -> web.Response:
    node = request.app[NODE]
    info, _ = await node.resolve(request.match_info["model"],
                                 request.match_info.get("version"), request_hops(request))
    return web.json_response({"name": info.name, "version": info.version, "ready": True})


async def model_config(request: web.Request) -> web.Response:
    node = request.app[NODE]
    info, _ = await node.resolve(request.match_info["model"],
                                 request.match_info.get("version"), request_hops(request))
    return web.json_response(oip.model_config(node, info))


async def model_stats(request: web.Request) -> web.Response:
    return web.json_response(await oip.model_statistics(
        request.app[NODE], request.match_info.get("model"), request.match_info.get("version"),
        request_hops(request)))


async def repository_index(request: web.Request) -> web.Response:
    body = await request.read()
    doc = parse_json(body) if body.strip() else {}
    ready_only = doc.get("ready", False)
    if not isinstance(ready_only, bool):
        raise BadInput('"ready" must be true or false')
    return web.json_response(await oip.repository_index(request.app[NODE], ready_only,
                                                        request_hops(request)))


def _parse_request(body: bytes, header_length: str | None) -> tuple[dict, memoryview]:
    binary = memoryview(b"")
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise BadInput(f"{HEADER_LENGTH} must be an integer") from None
        if not 0 < n <= len(body):
            raise BadInput(f"{HEADER_LENGTH} {n} does not fit a body of {len(body)} bytes")
        binary = memoryview(body)[n:]
        body = body[:n]
    doc = parse_json(body)
    if not isinstance(doc.get("inputs"), list):
        raise BadInput('inference request must be an object with an "inputs" list')
    return doc, binary


def _inputs(doc: dict, binary: memoryview) -> list[oip.InferInput]:
    inputs = []
    offset = 0
    for item in doc["inputs"]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadInput('each input must be an object with a "name"')
        name = item["name"]
        size = oip.parameters(item.get("parameters"), f"input {name!r}").get("binary_data_size")
        raw = None
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise BadInput(f"input {name!r}: binary_data_size {size!r} exceeds the body")
            raw = bytes(binary[offset:offset + size])
            offset += size
        elif "data" not in item:
            raise BadInput(f"input {name!r} has neither data nor binary_data_size")
        inputs.append(oip.InferInput(name, item.get("datatype"), item.get("shape"),
                                     item.get("data"), raw))
    return inputs


@dataclass(frozen=True, slots=True)
class _Answered:
    """An answer given from L1, to give again for the same request while the model
    resolves to the same `ModelInfo` and L1 holds the same value."""

    info: ModelInfo
    key: str
    value: bytes
    body: bytes
    headers: dict[str, str]


ANSWERS = web.AppKey("edge_v2_answers", BodyAliases[_Answered])
MAX_REMEMBERED_ANSWER = 64 * 1024


async def infer(request: web.Request) -> web.Response:
    started = time.perf_counter()
    node = request.app[NODE]
    hops = request_hops(request)
    model, version = request.match_info["model"], request.match_info.get("version")
    body = await request.read()
    header_length = request.headers.get(HEADER_LENGTH)
    digest = hashlib.blake2b(f"{model}\0{version}\0{header_length}\0".encode() + body,
                             digest_size=16).digest()
    answered = request.app[ANSWERS].get(digest)
    if answered is not None and node.current_info(model, version) is answered.info:
        value = await node.l1_hit(answered.info, answered.key)
        if value is not None and (value is answered.value or value == answered.value):
            node.metrics.request_done(answered.info.name, answered.info.version, "l1",
                                      time.perf_counter() - started)
            return web.Response(body=answered.body, headers=answered.headers)
    doc, binary = _parse_request(body, header_length)
    request_id = oip.request_id(doc.get("id"))
    wanted, binary_default = _requested_outputs(doc)
    result = await oip.infer(node, model, version, _inputs(doc, binary), wanted, hops,
                             started, binary_default)
    answer_body, headers = _answer(node, doc, request_id, result)
    if result.tier == "l1" and len(answer_body) <= MAX_REMEMBERED_ANSWER:
        request.app[ANSWERS].put(digest, _Answered(result.info, result.key, result.value,
                                                   answer_body, headers))
    return web.Response(body=answer_body, headers=headers)


def _answer(node: EdgeNode, doc: dict, request_id: str, result: oip.InferResult
            ) -> tuple[bytes, dict[str, str]]:
    """The answer's body and headers."""
    outputs, chunks = [], []
    for out in result.outputs:
        if out.binary:
            raw = out.raw()
            chunks.append(raw)
            outputs.append({"name": out.name, "datatype": out.datatype, "shape": out.shape,
                            "parameters": {"binary_data_size": len(raw)}})
        else:
            outputs.append({"name": out.name, "datatype": out.datatype, "shape": out.shape,
                            "data": out.data})
    answer = {"model_name": result.model_name, "model_version": result.model_version,
              "outputs": outputs,
              "parameters": {"cache_tier": result.tier, "cached": is_cached(result.tier),
                             "region": node.config.region}}
    if "id" in doc:
        answer["id"] = request_id
    header = json.dumps(answer, separators=(",", ":")).encode()
    if not chunks:
        return header, {"Content-Type": "application/json", "X-Cache-Tier": result.tier}
    return header + b"".join(chunks), {"Content-Type": "application/octet-stream",
                                        HEADER_LENGTH: str(len(header)),
                                        "X-Cache-Tier": result.tier}


def _requested_outputs(doc: dict) -> tuple[dict[str, bool] | None, bool]:
    """(output name → send binary?, or None for every output; the default)."""
    default_binary = oip.parameters(doc.get("parameters"), "request").get(
        "binary_data_output", False)
    if not isinstance(default_binary, bool):
        raise BadInput('"binary_data_output" must be true or false')
    requested = doc.get("outputs")
    if not requested:
        return None, default_binary
    if not isinstance(requested, list):
        raise BadInput('"outputs" must be a list')
    wanted = {}
    for out in requested:
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise BadInput('each requested output must be an object with a "name"')
        binary = oip.parameters(out.get("parameters"), f"output {out['name']!r}").get(
            "binary_data", default_binary)
        wanted[out["name"]] = bool(binary)
    return wanted, default_binary


def add_routes(app: web.Application) -> None:
    app[ANSWERS] = BodyAliases()
    versions = (("", ""), ("/versions/{version}", "_version"))
    # inference first: aiohttp tries the routes under one path prefix in their order
    for suffix, tag in versions:
        routes.add(app, "POST", f"/v2/models/{{model}}{suffix}/infer", infer, "v2_infer" + tag)
    routes.add(app, "GET", "/v2", server_metadata, "v2")
    routes.add(app, "GET", "/v2/health/live", live, "v2_live")
    routes.add(app, "GET", "/v2/health/ready", ready, "v2_ready")
    routes.add(app, "POST", "/v2/repository/index", repository_index, "v2_repository_index")
    routes.add(app, "GET", "/v2/models/stats", model_stats, "v2_stats")
    for suffix, tag in versions:
        base = "/v2/models/{model}" + suffix
        routes.add(app, "GET", base, model_metadata, "v2_model" + tag)
        routes.add(app, "GET", base + "/ready", model_ready, "v2_model_ready" + tag)
        routes.add(app, "GET", base + "/config", model_config, "v2_model_config" + tag)
        routes.add(app, "GET", base + "/stats", model_stats, "v2_model_stats" + tag)
