"""KServe's Python model server answering the Open Inference Protocol with an ONNX model
on onnxruntime: the peer `bench/oip_peers.py` serves the edge's ranker with (no
per-request log lines, as the edge writes none). Runs in the bench's own virtual
environment.

Its metadata lists the model's tensors (`get_input_types`/`get_output_types`, KServe's
hooks for it), and a route added to KServe's own FastAPI app (`kserve.model_server.app`,
the app KServe documents for customising the server) serves Triton's model configuration
at ``GET /v2/models/{m}/config``, which Triton's ``perf_analyzer`` reads before it sends
anything; inference is KServe's own path. KServe batches nothing itself: the config's
max_batch_size says that the first dimension is the batch, as every request's is.

    python kserve_onnx.py NAME MODEL.onnx HTTP_PORT GRPC_PORT MAX_BATCH_SIZE
"""

from __future__ import annotations

import logging
import sys
import uuid

import onnxruntime as ort
from fastapi import HTTPException
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
from kserve.model_server import app
from triton_config import inputs, model_config, outputs


class OnnxModel(Model):
    def __init__(self, name: str, path: str, max_batch_size: int) -> None:
        super().__init__(name)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # as the edge runs its sessions
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.max_batch_size = max_batch_size
        self.ready = True

    def get_input_types(self) -> list[dict[str, str | list[int]]]:
        return inputs(self.session)

    def get_output_types(self) -> list[dict[str, str | list[int]]]:
        return outputs(self.session)

    async def predict(self, payload: InferRequest, headers: dict | None = None,
                      response_headers: dict | None = None) -> InferResponse:
        feeds = {item.name: item.as_numpy() for item in payload.inputs}
        results = self.session.run(None, feeds)
        return InferResponse(  # in the tensor format the request asks for
            model_name=self.name, response_id=payload.id or str(uuid.uuid4()),
            infer_outputs=[InferOutput(name=meta.name, shape=list(array.shape),
                                       datatype="FP32", data=array)
                           for meta, array in zip(self.session.get_outputs(), results,
                                                  strict=True)],
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs)


def serve(model: OnnxModel, http_port: int, grpc_port: int) -> None:
    @app.get("/v2/models/{model_name}/config")
    def triton_config(model_name: str) -> dict[str, object]:
        if model_name != model.name:
            raise HTTPException(404, f"model {model_name} not found")
        return model_config(model.name, model.session, model.max_batch_size)

    server = ModelServer(http_port=http_port, grpc_port=grpc_port, workers=1,
                         enable_latency_logging=False)
    for per_request in ("kserve.trace", "uvicorn.access"):  # the edge logs no request
        logging.getLogger(per_request).setLevel(logging.WARNING)
    server.start([model])


if __name__ == "__main__":
    name, path, http_port, grpc_port, max_batch_size = sys.argv[1:6]
    sys.argv = sys.argv[:1]  # kserve parses the command line too
    serve(OnnxModel(name, path, int(max_batch_size)), int(http_port), int(grpc_port))
