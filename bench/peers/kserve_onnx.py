"""KServe's Python model server answering the Open Inference Protocol with an ONNX model
on onnxruntime: the peer `bench/oip_peers.py` serves the edge's ranker with (no
per-request latency log, as the edge keeps none). Runs in the bench's own virtual
environment.

    python kserve_onnx.py NAME MODEL.onnx HTTP_PORT GRPC_PORT
"""

from __future__ import annotations

import sys
import uuid

import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class OnnxModel(Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # as the edge runs its sessions
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.ready = True

    async def predict(self, payload: InferRequest, headers: dict | None = None,
                      response_headers: dict | None = None) -> InferResponse:
        feeds = {item.name: item.as_numpy() for item in payload.inputs}
        outputs = self.session.run(None, feeds)
        return InferResponse(
            model_name=self.name, response_id=payload.id or str(uuid.uuid4()),
            infer_outputs=[InferOutput(name=meta.name, shape=list(array.shape),
                                       datatype="FP32", data=array)
                           for meta, array in zip(self.session.get_outputs(), outputs,
                                                  strict=True)])


if __name__ == "__main__":
    name, path, http_port, grpc_port = sys.argv[1:5]
    sys.argv = sys.argv[:1]  # kserve parses the command line too
    ModelServer(http_port=int(http_port), grpc_port=int(grpc_port), workers=1,
                enable_latency_logging=False).start([OnnxModel(name, path)])
