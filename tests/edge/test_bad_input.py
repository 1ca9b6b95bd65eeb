"""Bad requests get a 4xx with a message, and the node keeps serving."""

from __future__ import annotations

import json

import pytest
from edgetest import features, predict

V2 = "/v2/models/ranker/infer"
GOOD_V2 = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 32],
                       "data": features(1)}]}


def v2(**changes) -> dict:
    return {"inputs": [{**GOOD_V2["inputs"][0], **changes}]}


CASES = [
    ("/predict", {"features": [1.0, 2.0]}, 400, "expected shape [-1, 32]"),
    ("/predict", {"features": [["a"] * 32]}, 400, "got strings"),
    ("/predict", {"features": [[1, [2]] + [0] * 30]}, 400, "rectangular"),
    ("/predict", {"feature": features(1)}, 400, 'missing "features"'),
    ("/predict", [1, 2], 400, "JSON object"),
    ("/predict", {"features": features(1), "model": "nope"}, 404, "unknown model 'nope'"),
    ("/predict", {"features": [1e3] * 31 + [None]}, 400, "expected float32"),
    ("/predict", {"features": [5], "model": "embedder", "version": 3}, 400, "strings"),
    ("/predict", {"features": [2**70], "model": "embedder"}, 400, "int64"),
    ("/predict", {"features": [1.5], "model": "embedder"}, 400, "expected int64"),
    ("/batch_predict", {"features": features(1)}, 400, "list of rows"),
    ("/batch_predict", {"features": [features(1)] * 1025}, 400, "1..1024 rows"),
    (V2, v2(datatype="FP64"), 400, "datatype must be FP32"),
    (V2, v2(datatype="STRING"), 400, "unsupported datatype"),
    (V2, v2(shape=[2, 32]), 400, "needs 64 values"),
    (V2, v2(shape=[1, -3]), 400, "non-negative"),
    (V2, v2(name="other"), 400, "unknown input 'other'"),
    (V2, {"inputs": []}, 400, "missing inputs ['features']"),
    (V2, {"inputs": {"a": 1}}, 400, '"inputs" list'),
    (V2, {**GOOD_V2, "outputs": [{"name": "nope"}]}, 400, "unknown output"),
    ("/v2/models/nope/infer", GOOD_V2, 404, "unknown model"),
    ("/v2/models/ranker/versions/7/infer", GOOD_V2, 404, "version '7'"),
]


@pytest.fixture
async def origin(start_node, models_dir):
    return await start_node(models_dir=models_dir, max_body_bytes=256 * 1024)


async def test_bad_json_requests_get_4xx_with_a_message(origin, http):
    for path, body, status, message in CASES:
        async with http.post(origin.url + path, json=body) as r:
            doc = await r.json()
            assert r.status == status, (path, body, doc)
            assert message in doc["error"], (path, doc)
    assert (await predict(http, origin.url, 1))["tier"] == "compute"


async def test_non_json_huge_and_binary_mismatch(origin, http):
    async with http.post(origin.url + "/predict", data=b"\xff\xfe not json") as r:
        assert r.status == 400 and "not JSON" in (await r.json())["error"]
    async with http.post(origin.url + V2, data=b"{") as r:
        assert r.status == 400 and "not JSON" in (await r.json())["error"]
    async with http.post(origin.url + "/predict", data=b"[" + b"1," * 200_000 + b"1]") as r:
        assert r.status == 413 and "error" in await r.json()
    header = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 32],
                                     "parameters": {"binary_data_size": 128}}]}).encode()
    for length, extra, message in ((str(len(header)), b"\0" * 100, "exceeds the body"),
                                   ("x", b"", "must be an integer"),
                                   (str(len(header) + 999), b"", "does not fit")):
        async with http.post(origin.url + V2, data=header + extra,
                             headers={"Inference-Header-Content-Length": length}) as r:
            assert r.status == 400 and message in (await r.json())["error"]
    async with http.get(origin.url + "/no/such/route") as r:
        assert r.status == 404 and "error" in await r.json()
    async with http.get(origin.url + "/predict") as r:
        assert r.status == 405 and "error" in await r.json()
    assert (await predict(http, origin.url, 2))["tier"] == "compute"
