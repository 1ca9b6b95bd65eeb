"""Triton's own clients (`tritonclient.http` and `tritonclient.grpc`) against `edge serve`
processes: an origin and an edge that holds no model, both serving REST and gRPC.

Every call a Triton user makes first: live, ready, server and model metadata, model
config, statistics, repository index; inference as JSON, binary and gRPC, batched; the
errors; and the BYTES, FP16 and BF16 datatypes on models that take them."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from edgetest import FEATURES
from onnx import TensorProto, helper
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from cdn.redis_server import free_port
from edge.modelgen import make_models

EMBEDDER_ITEMS = 1000


@dataclass
class Node:
    url: str  # http://host:port
    grpc: str  # host:port

    def http_client(self) -> thttp.InferenceServerClient:
        return thttp.InferenceServerClient(self.url.removeprefix("http://"))

    def grpc_client(self) -> tgrpc.InferenceServerClient:
        return tgrpc.InferenceServerClient(self.grpc)


def echo_model() -> onnx.ModelProto:
    """text BYTES [-1, 1] → same; half FP16 [-1, 2] → half * 2."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["text_out"]),
         helper.make_node("Add", ["half", "half"], ["half_out"])],
        "echo",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch", 1]),
         helper.make_tensor_value_info("half", TensorProto.FLOAT16, ["batch", 2])],
        [helper.make_tensor_value_info("text_out", TensorProto.STRING, ["batch", 1]),
         helper.make_tensor_value_info("half_out", TensorProto.FLOAT16, ["batch", 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def bf16_model() -> onnx.ModelProto:
    """x BF16 [-1, 2] → the same (BF16; onnxruntime's CPU Add has no BF16 kernel) and as
    FP32."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["same"]),
         helper.make_node("Cast", ["x"], ["as_fp32"], to=TensorProto.FLOAT)],
        "bf16",
        [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, ["batch", 2])],
        [helper.make_tensor_value_info("same", TensorProto.BFLOAT16, ["batch", 2]),
         helper.make_tensor_value_info("as_fp32", TensorProto.FLOAT, ["batch", 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    path = tmp_path_factory.mktemp("oip-models")
    make_models(path)
    for name, model in (("echo", echo_model()), ("bf16", bf16_model())):
        (path / name / "1").mkdir(parents=True)
        onnx.save(model, path / name / "1" / "model.onnx")
    return path


@pytest.fixture
def pair(serve_process, models):
    def start(*args: str) -> Node:
        grpc_addr = f"127.0.0.1:{free_port()}"
        proc = serve_process("--grpc-listen", grpc_addr, *args)
        return Node(proc.url, grpc_addr)
    origin = start("--models", str(models), "--region", "origin")
    edge = start("--upstream", origin.url, "--region", "eu")
    return origin, edge


def reference(models, model: str, feeds: dict) -> list[np.ndarray]:
    return ort.InferenceSession(str(models / model / "1" / "model.onnx")).run(None, feeds)


def ranker_input(module, x: np.ndarray, binary: bool = True):
    inp = module.InferInput("features", list(x.shape), "FP32")
    if module is thttp:
        inp.set_data_from_numpy(x, binary_data=binary)
    else:
        inp.set_data_from_numpy(x)
    return inp


@pytest.mark.parametrize("protocol", ["json", "binary", "grpc"])
def test_triton_clients_infer_through_edge_and_origin(pair, models, protocol):
    x = np.random.default_rng(7).random((3, FEATURES), dtype=np.float32)
    expected = reference(models, "ranker", {"features": x})[0]
    module = tgrpc if protocol == "grpc" else thttp
    for node in pair:
        c = node.grpc_client() if protocol == "grpc" else node.http_client()
        assert c.is_server_live() and c.is_server_ready()
        assert c.is_model_ready("ranker") and c.is_model_ready("ranker", "1")
        assert not c.is_model_ready("nope")
        meta = c.get_model_metadata("ranker", as_json=True) if module is tgrpc \
            else c.get_model_metadata("ranker")
        assert meta["inputs"][0]["name"] == "features"
        assert meta["inputs"][0]["datatype"] == "FP32"
        assert [int(d) for d in meta["inputs"][0]["shape"]] == [-1, FEATURES]

        binary = protocol != "json"
        kwargs = {"binary_data": binary} if module is thttp else {}
        out = module.InferRequestedOutput("score", **kwargs)
        inp = ranker_input(module, x, binary)
        first = c.infer("ranker", [inp], outputs=[out], request_id="req-1")
        np.testing.assert_allclose(first.as_numpy("score"), expected, rtol=1e-6)
        response = first.get_response(as_json=True) if module is tgrpc else first.get_response()
        assert response["id"] == "req-1" and response["model_version"] == "1"
        second = c.infer("ranker", [inp], outputs=[out])
        third = c.infer("ranker", [inp], outputs=[out])  # REST: the remembered L1 answer
        for again in (second, third):
            tier = (again.get_response(as_json=True) if module is tgrpc
                    else again.get_response())["parameters"]
            assert (tier["cache_tier"]["string_param"] if module is tgrpc
                    else tier["cache_tier"]) == "l1"
            np.testing.assert_array_equal(again.as_numpy("score"), first.as_numpy("score"))


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_config_statistics_and_repository_index(pair, protocol):
    origin, edge = pair
    x = np.random.default_rng(8).random((2, FEATURES), dtype=np.float32)
    for node in (origin, edge):
        c = node.grpc_client() if protocol == "grpc" else node.http_client()
        module = tgrpc if protocol == "grpc" else thttp
        as_json = {"as_json": True} if protocol == "grpc" else {}
        config = c.get_model_config("ranker", **as_json)
        config = config["config"] if protocol == "grpc" else config
        assert config["name"] == "ranker" and config["platform"] == "onnxruntime_onnx"
        assert int(config["max_batch_size"]) > 1  # batches along the first dimension
        assert config["input"][0]["data_type"] == "TYPE_FP32"
        assert [int(d) for d in config["input"][0]["dims"]] == [FEATURES]
        assert [int(d) for d in config["output"][0]["dims"]] == [1]

        for _ in range(3):  # one computation (or upstream answer), then two hits
            c.infer("ranker", [ranker_input(module, x)])
        stats = c.get_inference_statistics("ranker", **as_json)["model_stats"]
        assert [(s["name"], s["version"]) for s in stats] == [("ranker", "1")]
        inference = stats[0]["inference_stats"]
        assert int(inference["success"]["count"]) >= 3 and int(inference["success"]["ns"]) > 0
        assert int(inference["cache_hit"]["count"]) >= 2

        index = c.get_model_repository_index(**as_json)
        index = index["models"] if protocol == "grpc" else index
        assert {(m["name"], m["version"], m["state"]) for m in index} >= {
            ("ranker", "1", "READY"), ("embedder", "1", "READY"), ("echo", "1", "READY"),
            ("bf16", "1", "READY")}
    # the origin computed once for both callers: its model ran, the edge's never did
    origin_stats = origin.http_client().get_inference_statistics("ranker")["model_stats"][0]
    assert int(origin_stats["execution_count"]) == 1


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_errors_are_client_errors_with_messages(pair, protocol):
    for node in pair:
        c = node.grpc_client() if protocol == "grpc" else node.http_client()
        module = tgrpc if protocol == "grpc" else thttp
        ids = module.InferInput("item_id", [2, 1], "INT64")
        ids.set_data_from_numpy(np.array([[3], [EMBEDDER_ITEMS * 5]], dtype=np.int64))
        short = ranker_input(module, np.zeros((1, 5), np.float32))
        cases = [
            (c.infer, ("nope", [ids]), "unknown model 'nope'"),
            (c.infer, ("embedder", [ids]), "rejected the input"),
            (c.infer, ("ranker", [ids]), "unknown input 'item_id'"),
            (c.infer, ("ranker", [short]), r"expected shape \[-1, 32\]"),
            (c.get_model_config, ("nope",), "unknown model"),
        ]
        for call, args, message in cases:
            with pytest.raises(InferenceServerException, match=message) as e:
                call(*args)
            status = str(e.value.status())
            assert status in ("400", "404", "StatusCode.INVALID_ARGUMENT",
                              "StatusCode.NOT_FOUND"), status
        wrong = module.InferInput("item_id", [1, 1], "INT32")
        wrong.set_data_from_numpy(np.array([[1]], dtype=np.int32))
        with pytest.raises(InferenceServerException, match="datatype must be INT64"):
            c.infer("embedder", [wrong])
        assert c.is_server_live() and c.is_server_ready()  # still serving, still ready
        good = module.InferInput("item_id", [1, 1], "INT64")
        good.set_data_from_numpy(np.array([[3]], dtype=np.int64))
        assert c.infer("embedder", [good]).as_numpy("embedding").shape == (1, 16)


@pytest.mark.parametrize("protocol", ["json", "binary", "grpc"])
def test_bytes_and_fp16_tensors(pair, protocol):
    text = np.array([["héllo"], ["wörld"]], dtype=np.object_)
    half = np.array([[1.5, -2.25], [0.125, 1000]], dtype=np.float16)
    module = tgrpc if protocol == "grpc" else thttp
    for node in pair:
        c = node.grpc_client() if protocol == "grpc" else node.http_client()
        inputs = [module.InferInput("text", [2, 1], "BYTES"),
                  module.InferInput("half", [2, 2], "FP16")]
        for inp, arr in zip(inputs, (text, half), strict=True):
            if module is thttp:
                inp.set_data_from_numpy(arr, binary_data=protocol == "binary")
            else:
                inp.set_data_from_numpy(arr)
        kwargs = {"binary_data": protocol == "binary"} if module is thttp else {}
        outputs = [module.InferRequestedOutput(n, **kwargs) for n in ("text_out", "half_out")]
        result = c.infer("echo", inputs, outputs=outputs)
        got = result.as_numpy("text_out")
        assert [v.decode() if isinstance(v, bytes) else v for v in got.ravel()] == \
            ["héllo", "wörld"]
        np.testing.assert_array_equal(result.as_numpy("half_out"), half * 2)


@pytest.mark.parametrize("protocol", ["json", "binary", "grpc"])
def test_bf16_tensors(pair, protocol):
    """BF16 in and out (values a bfloat16 holds exactly): tritonclient sends and reads BF16
    as ml_dtypes.bfloat16 arrays; JSON carries the numbers."""
    x = np.array([[1.5, -2.25], [0.125, 96.0]], dtype=ml_dtypes.bfloat16)
    for node in pair:
        if protocol == "json":
            body = {"inputs": [{"name": "x", "datatype": "BF16", "shape": [2, 2],
                                "data": x.astype(np.float32).ravel().tolist()}]}
            req = urllib.request.Request(node.url + "/v2/models/bf16/infer",
                                         data=json.dumps(body).encode())
            with urllib.request.urlopen(req) as r:
                outputs = {o["name"]: o for o in json.load(r)["outputs"]}
            assert outputs["same"]["datatype"] == "BF16"
            assert outputs["same"]["data"] == x.astype(np.float32).ravel().tolist()
            assert outputs["as_fp32"]["data"] == x.astype(np.float32).ravel().tolist()
            continue
        module = tgrpc if protocol == "grpc" else thttp
        c = node.grpc_client() if protocol == "grpc" else node.http_client()
        inp = module.InferInput("x", [2, 2], "BF16")
        if module is thttp:
            inp.set_data_from_numpy(x, binary_data=True)
        else:
            inp.set_data_from_numpy(x)
        kwargs = {"binary_data": True} if module is thttp else {}
        result = c.infer("bf16", [inp], outputs=[module.InferRequestedOutput(n, **kwargs)
                                                for n in ("same", "as_fp32")])
        np.testing.assert_array_equal(result.as_numpy("same"), x)
        np.testing.assert_array_equal(result.as_numpy("as_fp32"), x.astype(np.float32))


def test_grpc_typed_contents_and_a_raw_mismatch(pair, models):
    """Inputs in the typed `contents` fields (tritonclient sends raw bytes only), through
    the wheel's own stub."""
    import grpc
    _, edge = pair
    with grpc.insecure_channel(edge.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="embedder", id="typed")
        tensor = request.inputs.add(name="item_id", datatype="INT64", shape=[2, 1])
        tensor.contents.int64_contents.extend([3, 999])
        response = stub.ModelInfer(request)
        assert response.id == "typed" and list(response.outputs[0].shape) == [2, 16]
        emb = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(2, 16)
        np.testing.assert_array_equal(emb, np.load(models / "embedder/1/embeddings.npy")[[3, 999]])

        request.inputs.add(name="other", datatype="INT64", shape=[1])
        request.raw_input_contents.append(b"\0" * 8)  # one raw tensor for two inputs
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(request)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "raw_input_contents" in e.value.details()
