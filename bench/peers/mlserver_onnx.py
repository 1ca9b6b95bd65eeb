"""An MLServer runtime that answers the Open Inference Protocol with an ONNX model on
onnxruntime (MLServer ships no ONNX runtime of its own): the peer `bench/oip_peers.py`
serves the edge's ranker with. Runs in the bench's own virtual environment.

Its metadata lists the model's tensors (set at load time, as MLServer allows), and a
custom handler (MLServer's own extension point, `mlserver.handlers.custom_handler`)
serves Triton's model configuration at ``GET /v2/models/{m}/config``, which Triton's
``perf_analyzer`` reads before it sends anything; inference is MLServer's own path."""

from __future__ import annotations

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import ModelNotFound
from mlserver.handlers import custom_handler
from mlserver.types import InferenceRequest, InferenceResponse, MetadataTensor
from triton_config import inputs, model_config, outputs


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # as the edge runs its sessions
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.settings.parameters.uri, options,
                                            providers=["CPUExecutionProvider"])
        self.inputs = [MetadataTensor(**t) for t in inputs(self.session)]
        self.outputs = [MetadataTensor(**t) for t in outputs(self.session)]
        return True

    @custom_handler(rest_path="/v2/models/{model_name}/config", rest_method="GET")
    async def triton_config(self, model_name: str) -> dict[str, object]:
        if model_name != self.name:
            raise ModelNotFound(model_name)
        return model_config(self.name, self.session, self.settings.max_batch_size)

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {item.name: NumpyCodec.decode_input(item) for item in payload.inputs}
        results = self.session.run(None, feeds)
        return InferenceResponse(
            model_name=self.name, id=payload.id,
            outputs=[NumpyCodec.encode_output(meta.name, array).model_copy(
                         update={"parameters": None})
                     for meta, array in zip(self.session.get_outputs(), results, strict=True)])
