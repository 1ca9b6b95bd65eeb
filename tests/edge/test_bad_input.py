"""Bad requests get a 4xx with a message, and the node keeps serving."""

from __future__ import annotations

import asyncio
import json

import pytest
from edgetest import features, metric, predict

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


# -- the inputs that once gave a 500, an outage or invalid JSON ----------------------------
DEEP = 200_000
BAD_V2 = [
    ("parameters a list", {**GOOD_V2, "parameters": [1, 2]}, '"parameters" must be an object'),
    ("parameters a string", {**GOOD_V2, "parameters": "binary"}, '"parameters" must be an'),
    ("input parameters a list", v2(parameters=["binary_data_size"]), '"parameters" must be'),
    ("output parameters a string", {**GOOD_V2, "outputs": [{"name": "score",
                                                            "parameters": "x"}]},
     '"parameters" must be an object'),
    ("shape overflow", v2(shape=[2**59 + 1, 32]), "needs 18446744073709551648 values"),
    ("shape of booleans", v2(shape=[True, 32]), "non-negative integers"),
    ("numeric id", {**GOOD_V2, "id": 7}, '"id" must be a string'),
]
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400"]


@pytest.fixture
async def chain(start_node, models_dir):
    """An origin, an edge that holds the models too, and one that holds none."""
    origin = await start_node(models_dir=models_dir)
    holder = await start_node(models_dir=models_dir, upstream=origin.url)
    bare = await start_node(upstream=origin.url)
    return origin, holder, bare


async def assert_all_ok(http, nodes) -> None:
    for node in nodes:
        async with http.get(node.url + "/health") as r:
            doc = await r.json()
            assert doc["status"] == "ok", (node.url, doc)


async def post_error(http, url: str, status: int = 400, **kwargs) -> str:
    async with http.post(url, **kwargs) as r:
        text = await r.text()
        assert r.status == status, (url, r.status, text)
        return json.loads(text)["error"]  # valid JSON with a message


async def test_a_model_error_is_a_client_error_at_every_tier(chain, http):
    """embedder's table has 1000 rows: item 5000 makes the model fail. That is a 400 at the
    origin and through both edges, which neither count as an upstream outage nor recompute."""
    origin, holder, bare = chain
    body = {"inputs": [{"name": "item_id", "datatype": "INT64", "shape": [1, 1],
                        "data": [5000]}]}
    for node in (origin, holder, bare):
        for path, kwargs in (("/v2/models/embedder/infer", {"json": body}),
                             ("/predict", {"json": {"model": "embedder", "features": [5000]}})):
            message = await post_error(http, node.url + path, **kwargs)
            assert "rejected the input" in message and "idx=5000" in message, message
    assert await metric(http, holder.url, "nv_inference_count") == 0  # never recomputed
    assert await metric(http, bare.url, "edge_cache_errors_total") == 0  # not an outage
    assert await metric(http, origin.url, "nv_inference_request_failure") == 6
    await assert_all_ok(http, chain)
    # the good rows of a batch that held the bad one are answered
    rows = [[3], [5000], [7]]
    results = await asyncio.gather(*(
        http.post(origin.url + "/predict", json={"model": "embedder", "features": row})
        for row in rows))
    assert [r.status for r in results] == [200, 400, 200]


@pytest.mark.parametrize("case", BAD_V2, ids=[c[0] for c in BAD_V2])
async def test_malformed_protocol_fields(chain, http, case):
    _, _, bare = chain
    _, body, message = case
    for node in chain:
        assert message in await post_error(http, node.url + V2, json=body)
    assert (await predict(http, bare.url, 1))["tier"] == "upstream/compute"
    await assert_all_ok(http, chain)


async def test_json_nested_200000_deep(chain, http):
    for node in chain:
        for path in (V2, "/predict", "/batch_predict", "/v2/repository/index"):
            deep = b"[" * DEEP + b"]" * DEEP
            assert "nested too deep" in await post_error(http, node.url + path, data=deep)
            deep = b'{"inputs": ' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}"
            assert "nested too deep" in await post_error(http, node.url + path, data=deep)
    await assert_all_ok(http, chain)


@pytest.mark.parametrize("token", NON_FINITE)
async def test_non_finite_numbers_are_refused(chain, http, token):
    row = ", ".join(["0.5"] * 31 + [token])
    for node in chain:
        text = '{"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 32], ' \
               f'"data": [{row}]}}]}}'
        message = await post_error(http, node.url + V2, data=text.encode())
        assert "NaN, Infinity and values beyond the range" in message
        message = await post_error(http, node.url + "/predict",
                                   data=f'{{"features": [{row}]}}'.encode())
        assert "NaN, Infinity" in message
    await assert_all_ok(http, chain)


async def test_non_finite_binary_input_and_fp32_overflow_are_refused(chain, http):
    import numpy as np
    for value in (np.nan, np.inf, 1e39):
        raw = np.full(32, value).astype(np.float32).tobytes() if value != 1e39 else None
        for node in chain:
            if raw is None:  # fits a double, not an FP32
                body = v2(data=[1e39] * 32)
                assert "beyond the range of float32" in await post_error(http, node.url + V2,
                                                                         json=body)
                continue
            header = json.dumps({"inputs": [{"name": "features", "datatype": "FP32",
                                             "shape": [1, 32],
                                             "parameters": {"binary_data_size": 128}}]}).encode()
            message = await post_error(http, node.url + V2, data=header + raw,
                                       headers={"Inference-Header-Content-Length":
                                                str(len(header))})
            assert "NaN, Infinity" in message
    await assert_all_ok(http, chain)
