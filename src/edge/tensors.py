"""Tensors on the wire: KServe v2 datatypes, validation against a model's inputs, the
canonical input digest used in cache keys, and the cached prediction value.

The cache value of a prediction is JSON bytes (never pickle)::

    {"model_name": "ranker", "model_version": "1", "prediction": 0.53,
     "outputs": [{"name": "score", "datatype": "FP32", "shape": [1, 1], "data": [0.53]}]}

`prediction` is the first output flattened (a scalar when it has one element); both the
simple API and KServe answers are built from these bytes.
"""

from __future__ import annotations

import array
import hashlib
import json
import struct
from dataclasses import dataclass

import numpy as np

from edge.errors import EdgeError

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
}
ONNX_TO_KSERVE = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(int8)": "INT8",
    "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
}
MAX_ROWS = 65536  # rows in one request; the body size limit usually binds first


class BadInput(EdgeError, ValueError):
    """The request does not match the model (shape, datatype, missing input...)."""


@dataclass(frozen=True, slots=True)
class TensorSpec:
    name: str
    datatype: str  # KServe name, e.g. "FP32"
    shape: tuple[int, ...]  # -1 for a dynamic dimension (the first is the batch)

    def to_json(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, d: dict) -> TensorSpec:
        return cls(str(d["name"]), str(d["datatype"]), tuple(int(x) for x in d["shape"]))


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a node needs to validate inputs and key the cache, local model or not."""

    name: str
    version: str
    digest: str  # SHA-256 hex of model.onnx
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    platform: str = "onnxruntime_onnx"

    @property
    def key_digest(self) -> str:
        return self.digest[:16]

    @property
    def tags(self) -> tuple[str, ...]:
        return (f"model:{self.name}", f"digest:{self.key_digest}")

    def cache_key(self, feeds: dict[str, np.ndarray]) -> str:
        return f"p/{self.name}/{self.key_digest}/{input_digest(feeds)}"

    def metadata(self, versions: list[str]) -> dict:
        return {"name": self.name, "versions": versions, "platform": self.platform,
                "inputs": [s.to_json() for s in self.inputs],
                "outputs": [s.to_json() for s in self.outputs],
                "version": self.version, "digest": self.digest}

    @classmethod
    def from_metadata(cls, d: dict) -> ModelInfo:
        return cls(str(d["name"]), str(d["version"]), str(d["digest"]),
                   tuple(TensorSpec.from_json(s) for s in d["inputs"]),
                   tuple(TensorSpec.from_json(s) for s in d["outputs"]),
                   str(d.get("platform", "onnxruntime_onnx")))


def input_digest(feeds: dict[str, np.ndarray]) -> str:
    """BLAKE2b-128 over a canonical encoding: per input in name order, the name, the
    datatype, the shape (int64 little endian) and the C-order little-endian bytes."""
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(feeds):
        a = feeds[name]
        h.update(name.encode())
        h.update(b"\0" + a.dtype.str.encode() + b"\0")
        h.update(struct.pack(f"<{a.ndim}q", *a.shape))
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def check_tensor(spec: TensorSpec, arr: np.ndarray) -> np.ndarray:
    if arr.ndim != len(spec.shape):
        raise BadInput(f"input {spec.name!r}: expected {len(spec.shape)} dimensions "
                       f"{list(spec.shape)}, got shape {list(arr.shape)}")
    for want, got in zip(spec.shape, arr.shape, strict=True):
        if want >= 0 and want != got:
            raise BadInput(f"input {spec.name!r}: expected shape {list(spec.shape)}, "
                           f"got {list(arr.shape)}")
    if arr.shape and not 0 < arr.shape[0] <= MAX_ROWS:
        raise BadInput(f"input {spec.name!r}: batch size must be 1..{MAX_ROWS}")
    return arr


def tensor_from_data(spec: TensorSpec, datatype: str, shape: object, data: object) -> np.ndarray:
    """A JSON tensor (`data` nested or flat) checked against `spec`."""
    if datatype != spec.datatype:
        raise BadInput(f"input {spec.name!r}: datatype must be {spec.datatype}, got {datatype}")
    dims = _shape(spec.name, shape)
    arr = to_array(spec.name, data, DATATYPES[datatype])
    if arr.size != int(np.prod(dims)):
        raise BadInput(f"input {spec.name!r}: shape {dims} needs {int(np.prod(dims))} "
                       f"values, got {arr.size}")
    return check_tensor(spec, arr.reshape(dims))


def tensor_from_bytes(spec: TensorSpec, datatype: str, shape: object, raw: bytes) -> np.ndarray:
    if datatype != spec.datatype:
        raise BadInput(f"input {spec.name!r}: datatype must be {spec.datatype}, got {datatype}")
    dims = _shape(spec.name, shape)
    dtype = DATATYPES[datatype].newbyteorder("<")
    if len(raw) != int(np.prod(dims)) * dtype.itemsize:
        raise BadInput(f"input {spec.name!r}: {len(raw)} bytes do not hold shape {dims} "
                       f"of {datatype}")
    return check_tensor(spec, np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
                        .reshape(dims))


_ACCEPTED_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}


def to_array(name: str, data: object, dtype: np.dtype) -> np.ndarray:
    """JSON numbers → `dtype`, refusing strings, ragged lists, fractions for integer
    types and values out of the type's range (numpy alone would coerce all of these)."""
    if dtype.kind == "f" and type(data) is list:
        try:  # fast path: a flat list of numbers (array() refuses strings and lists)
            return np.frombuffer(array.array("d", data), dtype=np.float64).astype(dtype)
        except TypeError:
            pass  # the general path says what is wrong
    try:
        raw = np.asarray(data)
    except (TypeError, ValueError) as e:
        raise BadInput(f"input {name!r}: data is not a rectangular array of numbers: {e}") \
            from None
    if raw.dtype.kind not in _ACCEPTED_KINDS[dtype.kind]:
        kind = "strings" if raw.dtype.kind in "USO" else str(raw.dtype)
        raise BadInput(f"input {name!r}: expected {dtype.name} numbers, got {kind}")
    with np.errstate(all="ignore"):
        arr = raw.astype(dtype)
    if dtype.kind in "iu" and raw.dtype != dtype and not np.array_equal(arr, raw):
        raise BadInput(f"input {name!r}: values out of range for {dtype.name}")
    return arr


def _shape(name: str, shape: object) -> list[int]:
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise BadInput(f"input {name!r}: shape must be a list of non-negative integers")
    return shape


def prediction_value(info: ModelInfo, outputs: list[np.ndarray]) -> bytes:
    """The cache value (JSON bytes) for one request's outputs."""
    first = outputs[0].ravel().tolist()
    doc = {
        "model_name": info.name,
        "model_version": info.version,
        "prediction": first[0] if len(first) == 1 else first,
        "outputs": [{"name": spec.name, "datatype": spec.datatype, "shape": list(arr.shape),
                     "data": arr.ravel().tolist()} for spec, arr in zip(info.outputs, outputs,
                                                                        strict=True)],
    }
    return json.dumps(doc, separators=(",", ":")).encode()
