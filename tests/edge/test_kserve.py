"""The Open Inference Protocol with the real tritonclient, against `edge serve` processes
(an origin and an edge that holds no model)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from edgetest import FEATURES
from tritonclient.utils import InferenceServerException


@pytest.fixture
def pair(serve_process, models_dir):
    origin = serve_process("--models", str(models_dir), "--region", "origin")
    edge = serve_process("--upstream", origin.url, "--region", "eu")
    return origin, edge


def client(url: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url.removeprefix("http://"))


def reference(models_dir, model: str, feeds: dict) -> np.ndarray:
    session = ort.InferenceSession(str(models_dir / model / "1" / "model.onnx"))
    return session.run(None, feeds)[0]


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_infers_through_an_edge(pair, models_dir, binary):
    origin, edge = pair
    c = client(edge.url)
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("ranker") and c.is_model_ready("ranker", "1")
    meta = c.get_model_metadata("ranker")
    assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, FEATURES]}]

    x = np.random.default_rng(5).random((3, FEATURES), dtype=np.float32)
    inp = triton.InferInput("features", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = triton.InferRequestedOutput("score", binary_data=binary)
    result = c.infer("ranker", [inp], outputs=[out], request_id="r1")
    scores = result.as_numpy("score")
    assert scores.shape == (3, 1) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, reference(models_dir, "ranker", {"features": x}),
                               rtol=1e-6)
    response = result.get_response()
    assert response["id"] == "r1" and response["model_version"] == "1"
    assert response["parameters"]["cache_tier"] == "upstream/compute"
    again = c.infer("ranker", [inp], outputs=[out]).get_response()
    assert again["parameters"]["cache_tier"] == "l1"


def test_tritonclient_int64_model_and_errors(pair, models_dir):
    _, edge = pair
    c = client(edge.url)
    ids = np.array([[3], [999]], dtype=np.int64)
    inp = triton.InferInput("item_id", [2, 1], "INT64")
    inp.set_data_from_numpy(ids)
    emb = c.infer("embedder", [inp]).as_numpy("embedding")
    np.testing.assert_array_equal(emb, np.load(models_dir / "embedder/1/embeddings.npy")[[3, 999]])

    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        c.infer("nope", [inp])
    assert not c.is_model_ready("nope")
    wrong = triton.InferInput("item_id", [2, 1], "INT32")
    wrong.set_data_from_numpy(ids.astype(np.int32))
    with pytest.raises(InferenceServerException, match="datatype must be INT64"):
        c.infer("embedder", [wrong])
    shape = triton.InferInput("features", [1, 5], "FP32")
    shape.set_data_from_numpy(np.zeros((1, 5), np.float32), binary_data=True)
    with pytest.raises(InferenceServerException, match=r"expected shape \[-1, 32\]"):
        c.infer("ranker", [shape])
    assert c.is_server_live()  # still serving
