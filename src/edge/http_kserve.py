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

import json

import numpy as np
from aiohttp import web

from edge import __version__
from edge.http_predict import is_cached, request_hops
from edge.node import NODE
from edge.tensors import DATATYPES, BadInput, tensor_from_bytes, tensor_from_data

HEADER_LENGTH = "Inference-Header-Content-Length"


async def server_metadata(request: web.Request) -> web.Response:
    return web.json_response({"name": "geocdn-edge", "version": __version__,
                              "extensions": ["binary_tensor_data", "model_repository"]})


async def live(request: web.Request) -> web.Response:
    return web.json_response({"live": True})


async def ready(request: web.Request) -> web.Response:
    node = request.app[NODE]
    is_ready = not node.draining and (bool(node.registry.active()) or node.upstream is not None) \
        and (node.rollout is None or node.rollout.ready)
    return web.json_response({"ready": is_ready}, status=200 if is_ready else 503)


async def model_metadata(request: web.Request) -> web.Response:
    node = request.app[NODE]
    doc = await node.model_metadata(request.match_info["model"],
                                    request.match_info.get("version"), request_hops(request))
    return web.json_response(doc)


async def model_ready(request: web.Request) -> web.Response:
    node = request.app[NODE]
    info, _ = await node.resolve(request.match_info["model"], request.match_info.get("version"),
                                 request_hops(request))
    return web.json_response({"name": info.name, "version": info.version, "ready": True})


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
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadInput(f"inference request is not JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise BadInput('inference request must be an object with an "inputs" list')
    return doc, binary


async def infer(request: web.Request) -> web.Response:
    node = request.app[NODE]
    hops = request_hops(request)
    version = request.match_info.get("version")
    doc, binary = _parse_request(await request.read(), request.headers.get(HEADER_LENGTH))
    info, mv = await node.resolve(request.match_info["model"], version, hops)
    specs = {s.name: s for s in info.inputs}
    feeds: dict[str, np.ndarray] = {}
    offset = 0
    for item in doc["inputs"]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadInput('each input must be an object with a "name"')
        name = item["name"]
        if name not in specs:
            raise BadInput(f"unknown input {name!r}; model {info.name!r} takes {sorted(specs)}")
        if name in feeds:
            raise BadInput(f"input {name!r} given twice")
        datatype, shape = item.get("datatype"), item.get("shape")
        if datatype not in DATATYPES:
            raise BadInput(f"input {name!r}: unsupported datatype {datatype!r}")
        size = (item.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise BadInput(f"input {name!r}: binary_data_size {size!r} exceeds the body")
            feeds[name] = tensor_from_bytes(specs[name], datatype, shape,
                                            bytes(binary[offset:offset + size]))
            offset += size
        elif "data" in item:
            feeds[name] = tensor_from_data(specs[name], datatype, shape, item["data"])
        else:
            raise BadInput(f"input {name!r} has neither data nor binary_data_size")
    if set(feeds) != set(specs):
        raise BadInput(f"missing inputs {sorted(set(specs) - set(feeds))}")
    if len({a.shape[0] for a in feeds.values()}) > 1:
        raise BadInput("inputs disagree on the batch size (first dimension)")

    wanted = _requested_outputs(doc, [s.name for s in info.outputs])
    value, tier = await node.predict(info, mv, feeds, version, hops)
    result = json.loads(value)
    outputs, chunks = [], []
    for out in result["outputs"]:
        if out["name"] not in wanted:
            continue
        if wanted[out["name"]]:
            raw = np.asarray(out["data"], dtype=DATATYPES[out["datatype"]]).astype(
                DATATYPES[out["datatype"]].newbyteorder("<")).tobytes()
            chunks.append(raw)
            outputs.append({"name": out["name"], "datatype": out["datatype"],
                            "shape": out["shape"], "parameters": {"binary_data_size": len(raw)}})
        else:
            outputs.append(out)
    answer = {"model_name": result["model_name"], "model_version": result["model_version"],
              "outputs": outputs,
              "parameters": {"cache_tier": tier, "cached": is_cached(tier),
                             "region": node.config.region}}
    if "id" in doc:
        answer["id"] = doc["id"]
    header = json.dumps(answer, separators=(",", ":")).encode()
    if not chunks:
        return web.Response(body=header, content_type="application/json",
                            headers={"X-Cache-Tier": tier})
    return web.Response(body=header + b"".join(chunks), content_type="application/octet-stream",
                        headers={HEADER_LENGTH: str(len(header)), "X-Cache-Tier": tier})


def _requested_outputs(doc: dict, names: list[str]) -> dict[str, bool]:
    """Output name → send binary? (all outputs when the request names none)."""
    default_binary = bool((doc.get("parameters") or {}).get("binary_data_output", False))
    requested = doc.get("outputs")
    if not requested:
        return {n: default_binary for n in names}
    if not isinstance(requested, list):
        raise BadInput('"outputs" must be a list')
    wanted = {}
    for out in requested:
        if not isinstance(out, dict) or out.get("name") not in names:
            raise BadInput(f"unknown output {out!r}; the model has {names}")
        binary = (out.get("parameters") or {}).get("binary_data", default_binary)
        wanted[out["name"]] = bool(binary)
    return wanted


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2", server_metadata, name="v2")
    r.add_get("/v2/health/live", live, name="v2_live")
    r.add_get("/v2/health/ready", ready, name="v2_ready")
    for suffix, tag in (("", ""), ("/versions/{version}", "_version")):
        base = "/v2/models/{model}" + suffix
        r.add_get(base, model_metadata, name="v2_model" + tag)
        r.add_get(base + "/ready", model_ready, name="v2_model_ready" + tag)
        r.add_post(base + "/infer", infer, name="v2_infer" + tag)
