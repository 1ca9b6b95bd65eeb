"""Deterministic sample inputs for an ONNX model, from its declared inputs.

Used to compare the INT8 variant with the FP32 model at publish time and to warm a
freshly loaded session on an edge before it takes traffic.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


def sample_inputs(session: ort.InferenceSession, batch: int = 64,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """One feed dict: symbolic dimensions become `batch` (first) or 1 (others)."""
    rng = np.random.default_rng(seed)
    feed: dict[str, np.ndarray] = {}
    for inp in session.get_inputs():
        shape = [
            d if isinstance(d, int) and d > 0 else (batch if i == 0 else 1)
            for i, d in enumerate(inp.shape)
        ]
        dtype = _NUMPY.get(inp.type)
        if dtype is None:
            raise ValueError(f"input {inp.name!r} has unsupported type {inp.type}")
        if np.issubdtype(dtype, np.floating):
            feed[inp.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype is np.bool_:
            feed[inp.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feed[inp.name] = rng.integers(0, 100, shape).astype(dtype)
    return feed


def open_session(model: bytes | str) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def warm(session: ort.InferenceSession, runs: int = 3) -> None:
    """Run a few batches so the first real request does not pay allocation costs."""
    feed = sample_inputs(session, batch=8)
    for _ in range(runs):
        session.run(None, feed)
