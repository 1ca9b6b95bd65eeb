"""The model description Triton's ``perf_analyzer`` reads before it sends a request,
derived from an onnxruntime session: the V2 metadata of its tensors, and the Triton model
configuration (``GET /v2/models/{m}/config``, Triton's model-configuration extension),
which MLServer and KServe do not serve and the bench's peers add through each server's
own extension point (MLServer's custom handlers, KServe's FastAPI app).

Only what perf_analyzer reads is given: name, platform and backend, max_batch_size, and
each tensor's name, data type and dims (without the batch dimension when the model
batches, as Triton writes them)."""

from __future__ import annotations

import onnxruntime as ort

# onnxruntime's tensor type -> the V2 datatype (Triton's config prefixes it with TYPE_)
DATATYPES = {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(int64)": "INT64",
             "tensor(int32)": "INT32", "tensor(bool)": "BOOL"}


def tensor(arg: ort.NodeArg) -> dict[str, str | list[int]]:
    """One input or output as V2 metadata (a named dimension is variable: -1)."""
    if arg.type not in DATATYPES:
        raise ValueError(f"{arg.name}: {arg.type} is not a type this peer serves")
    return {"name": arg.name, "datatype": DATATYPES[arg.type],
            "shape": [d if isinstance(d, int) else -1 for d in arg.shape]}


def inputs(session: ort.InferenceSession) -> list[dict[str, str | list[int]]]:
    return [tensor(arg) for arg in session.get_inputs()]


def outputs(session: ort.InferenceSession) -> list[dict[str, str | list[int]]]:
    return [tensor(arg) for arg in session.get_outputs()]


def model_config(name: str, session: ort.InferenceSession,
                 max_batch_size: int) -> dict[str, object]:
    """Triton's configuration of the ONNX model `session` runs. With max_batch_size > 0
    the first dimension of every tensor is the batch and is left out of its dims."""
    def config(meta: dict[str, str | list[int]]) -> dict[str, object]:
        shape = list(meta["shape"])
        return {"name": meta["name"], "data_type": f"TYPE_{meta['datatype']}",
                "dims": shape[1:] if max_batch_size > 0 else shape}
    return {"name": name, "platform": "onnxruntime_onnx", "backend": "onnxruntime",
            "max_batch_size": max_batch_size,
            "input": [config(t) for t in inputs(session)],
            "output": [config(t) for t in outputs(session)]}
