"""Tensors on the wire: KServe v2 datatypes, validation against a model's inputs, the
canonical input digest used in cache keys, and the cached prediction value.

The cache value of a prediction is JSON bytes (never pickle)::

    {"model_name": "ranker", "model_version": "1", "prediction": 0.53,
     "outputs": [{"name": "score", "datatype": "FP32", "shape": [1, 1], "data": [0.53]}]}

`prediction` is the first output flattened (a scalar when it has one element); both the
simple API and KServe answers are built from these bytes.

Tensors in memory: numeric ones as numpy arrays of their own dtype (BF16 as
``ml_dtypes.bfloat16``), BYTES as object arrays of ``str`` (what an ONNX string tensor
takes; BYTES that are not UTF-8 are refused). On the wire, raw tensor data is
little-endian, and a BYTES element is a 4-byte little-endian length and its bytes.
Floating-point inputs must be finite: NaN, Infinity and values beyond the type's range
(``1e400``, or ``1e5`` for FP16) are refused, so no cached answer is built from them and
no answer holds a bare ``NaN``, which is not JSON.
"""

from __future__ import annotations

import array
import hashlib
import json
import math
import struct
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from edge.errors import EdgeError

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
    "BF16": np.dtype(ml_dtypes.bfloat16), "BYTES": np.dtype(object),
}
ONNX_TO_KSERVE = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(int8)": "INT8",
    "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
    "tensor(bfloat16)": "BF16", "tensor(string)": "BYTES",
}
MAX_ROWS = 65536  # rows in one request; the body size limit usually binds first
MAX_DIMS = 16


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
    datatype, the shape (int64 little endian) and the C-order little-endian bytes (BYTES:
    each element's length and UTF-8 bytes)."""
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(feeds):
        a = feeds[name]
        h.update(name.encode())
        h.update(b"\0" + a.dtype.str.encode() + b"\0")
        h.update(struct.pack(f"<{a.ndim}q", *a.shape))
        h.update(_bytes_elements(a) if a.dtype.kind == "O"
                 else np.ascontiguousarray(a).reshape(-1).view(np.uint8).data)
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
    dims, count = _checked_shape(spec, datatype, shape)
    arr = to_array(spec.name, data, DATATYPES[datatype])
    if arr.size != count:
        raise BadInput(f"input {spec.name!r}: shape {dims} needs {count} values, "
                       f"got {arr.size}")
    return check_tensor(spec, arr.reshape(dims))


def tensor_from_bytes(spec: TensorSpec, datatype: str, shape: object, raw: bytes) -> np.ndarray:
    """A tensor from its raw wire bytes (binary extension, gRPC raw contents, lookups)."""
    dims, count = _checked_shape(spec, datatype, shape)
    if datatype == "BYTES":
        arr = _split_bytes(spec.name, raw, count)
    else:
        dtype = DATATYPES[datatype].newbyteorder("<")
        if len(raw) != count * dtype.itemsize:
            raise BadInput(f"input {spec.name!r}: {len(raw)} bytes do not hold shape {dims} "
                           f"of {datatype}")
        arr = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
        _check_finite(spec.name, arr)
    return check_tensor(spec, arr.reshape(dims))


def tensor_to_bytes(arr: np.ndarray) -> bytes:
    """The raw wire bytes of a tensor (the inverse of `tensor_from_bytes`)."""
    if arr.dtype.kind == "O":
        return _bytes_elements(arr)
    return np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def _bytes_elements(arr: np.ndarray) -> bytes:
    parts: list[bytes] = []
    for item in arr.ravel():
        b = item.encode() if isinstance(item, str) else bytes(item)
        parts += (struct.pack("<I", len(b)), b)
    return b"".join(parts)


def _split_bytes(name: str, raw: bytes, count: int) -> np.ndarray:
    items: list[str] = []
    offset = 0
    while offset < len(raw) and len(items) < count:
        if offset + 4 > len(raw):
            break
        (n,) = struct.unpack_from("<I", raw, offset)
        if offset + 4 + n > len(raw):
            break
        items.append(_utf8(name, raw[offset + 4:offset + 4 + n]))
        offset += 4 + n
    if len(items) != count or offset != len(raw):
        raise BadInput(f"input {name!r}: BYTES data must be {count} elements, each a 4-byte "
                       "little-endian length and that many bytes")
    arr = np.empty(count, dtype=object)
    arr[:] = items
    return arr


def _utf8(name: str, b: bytes) -> str:
    try:
        return b.decode()
    except UnicodeDecodeError:
        raise BadInput(f"input {name!r}: BYTES elements must be UTF-8 text for an ONNX "
                       "string tensor") from None


_ACCEPTED_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf", "V": "iuf"}


def to_array(name: str, data: object, dtype: np.dtype) -> np.ndarray:
    """JSON values → `dtype`, refusing strings, ragged lists, fractions for integer types,
    values out of the type's range and non-finite floats (numpy alone would coerce all of
    these). BYTES takes strings."""
    if dtype.kind == "O":
        return _strings(name, data)
    if dtype.kind == "f" and type(data) is list:
        try:  # fast path: a flat list of numbers (array() refuses strings and lists)
            with np.errstate(all="ignore"):
                arr = np.frombuffer(array.array("d", data), dtype=np.float64).astype(dtype)
        except TypeError:
            pass  # the general path says what is wrong
        else:
            _check_finite(name, arr)
            return arr
    try:
        raw = np.asarray(data)
    except (TypeError, ValueError) as e:
        raise BadInput(f"input {name!r}: data is not a rectangular array of numbers: {e}") \
            from None
    kind = "f" if dtype == DATATYPES["BF16"] else dtype.kind  # ml_dtypes' kind is "V"
    if raw.dtype.kind not in _ACCEPTED_KINDS[kind]:
        found = "strings" if raw.dtype.kind in "USO" else str(raw.dtype)
        raise BadInput(f"input {name!r}: expected {dtype.name} numbers, got {found}")
    with np.errstate(all="ignore"):
        arr = raw.astype(dtype)
    if kind in "iu" and raw.dtype != dtype and not np.array_equal(arr, raw):
        raise BadInput(f"input {name!r}: values out of range for {dtype.name}")
    if kind == "f":
        _check_finite(name, arr)
    return arr


def _strings(name: str, data: object) -> np.ndarray:
    try:
        raw = np.asarray(data, dtype=object)
    except (TypeError, ValueError) as e:
        raise BadInput(f"input {name!r}: data is not a rectangular array of strings: {e}") \
            from None
    if not all(isinstance(v, str) for v in raw.flat):
        raise BadInput(f"input {name!r}: BYTES data must be strings")
    return raw


def _check_finite(name: str, arr: np.ndarray) -> None:
    if arr.dtype.kind in "fV" and arr.size and not np.isfinite(arr).all():
        raise BadInput(f"input {name!r}: NaN, Infinity and values beyond the range of "
                       f"{arr.dtype.name} are not accepted")


def _checked_shape(spec: TensorSpec, datatype: object, shape: object) -> tuple[list[int], int]:
    """The shape as a list and its element count, for an input of `spec`'s datatype."""
    if datatype != spec.datatype:
        raise BadInput(f"input {spec.name!r}: datatype must be {spec.datatype}, got {datatype}")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS \
            or not all(type(d) is int and d >= 0 for d in shape):
        raise BadInput(f"input {spec.name!r}: shape must be a list of at most {MAX_DIMS} "
                       "non-negative integers")
    return shape, math.prod(shape)  # Python integers: [2**59 + 1, 32] cannot overflow


def output_data(arr: np.ndarray) -> list:
    """A tensor's elements as a flat JSON list (BF16 as numbers, BYTES as strings)."""
    if arr.dtype == DATATYPES["BF16"]:
        arr = arr.astype(np.float32)
    return arr.ravel().tolist()


def prediction_value(info: ModelInfo, outputs: list[np.ndarray]) -> bytes:
    """The cache value (JSON bytes) for one request's outputs. A model output that is not
    finite cannot be written as JSON: the input that caused it is refused."""
    first = output_data(outputs[0])
    doc = {
        "model_name": info.name,
        "model_version": info.version,
        "prediction": first[0] if len(first) == 1 else first,
        "outputs": [{"name": spec.name, "datatype": spec.datatype, "shape": list(arr.shape),
                     "data": output_data(arr)} for spec, arr in zip(info.outputs, outputs,
                                                                    strict=True)],
    }
    try:
        return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        raise BadInput(f"model {info.name!r} gave a NaN or infinite output for this input") \
            from None


def output_array(out: dict) -> np.ndarray:
    """An output of a cache value as an array of its datatype."""
    datatype = out["datatype"]
    if datatype == "BYTES":
        arr = np.empty(len(out["data"]), dtype=object)
        arr[:] = out["data"]
    else:
        arr = np.asarray(out["data"], dtype=DATATYPES[datatype])
    return arr.reshape(out["shape"])
