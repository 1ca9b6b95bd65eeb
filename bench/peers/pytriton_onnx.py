"""Triton Inference Server (the ``tritonserver`` that the ``nvidia-pytriton`` wheel
bundles) serving an ONNX model through a Python callable on onnxruntime, with Triton's
dynamic batcher (64 rows, 2 ms, as the edge's micro-batching): the Triton peer
`bench/oip_peers.py` serves the edge's ranker with. Runs in the bench's own virtual
environment.

    python pytriton_onnx.py NAME MODEL.onnx HTTP_PORT GRPC_PORT METRICS_PORT
"""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import DEFAULT_PROTECTED_ENDPOINTS, Triton, TritonConfig, TritonSecurityConfig

MAX_BATCH = 64


def main(name: str, path: str, http_port: int, grpc_port: int, metrics_port: int) -> None:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as the edge runs its sessions
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    inputs = [arg.name for arg in session.get_inputs()]
    outputs = [arg.name for arg in session.get_outputs()]

    @batch
    def infer(**feeds: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(outputs, session.run(outputs, feeds), strict=True))

    config = TritonConfig(http_address="127.0.0.1", http_port=http_port,
                          grpc_address="127.0.0.1", grpc_port=grpc_port,
                          metrics_address="127.0.0.1", metrics_port=metrics_port)
    # perf_analyzer reads the model's statistics, which pytriton guards with a token
    security = TritonSecurityConfig(restricted_endpoints=[
        e for e in DEFAULT_PROTECTED_ENDPOINTS if e != "statistics"])
    with Triton(config=config, security_config=security) as triton:
        triton.bind(
            model_name=name, infer_func=infer,
            inputs=[Tensor(name=n, dtype=np.float32, shape=(-1,)) for n in inputs],
            outputs=[Tensor(name=n, dtype=np.float32, shape=(-1,)) for n in outputs],
            config=ModelConfig(max_batch_size=MAX_BATCH, batcher=DynamicBatcher(
                max_queue_delay_microseconds=2000)))
        triton.serve()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(p) for p in sys.argv[3:6]))
