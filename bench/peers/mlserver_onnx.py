"""An MLServer runtime that answers the Open Inference Protocol with an ONNX model on
onnxruntime (MLServer ships no ONNX runtime of its own): the peer `bench/oip_peers.py`
serves the edge's ranker with. Runs in the bench's own virtual environment."""

from __future__ import annotations

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # as the edge runs its sessions
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.settings.parameters.uri, options,
                                            providers=["CPUExecutionProvider"])
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {item.name: NumpyCodec.decode_input(item) for item in payload.inputs}
        outputs = self.session.run(None, feeds)
        return InferenceResponse(
            model_name=self.name, id=payload.id,
            outputs=[NumpyCodec.encode_output(meta.name, array)
                     for meta, array in zip(self.session.get_outputs(), outputs, strict=True)])
