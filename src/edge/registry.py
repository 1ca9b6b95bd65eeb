"""The models a node holds in memory: per name, the active version, the previous one (kept
loaded for instant rollback) and any staged ones.

Life of a version: `stage()` loads a model file into an onnxruntime session, checks its
SHA-256 against the expected digest when one is given, and runs one warm-up inference;
`activate()` makes it the version new requests get, in one assignment, so requests in
flight finish on the version (session and micro-batcher) they started with; the version
it replaces becomes `previous`, and `rollback()` swaps the two back. Cache keys use the
model's content digest (`ModelInfo.key_digest`), so a new version never hits an old
version's cache entries.

Used by the model distribution code as::

    mv = await asyncio.to_thread(registry.stage, "ranker", "2", path, expected_sha256=d)
    registry.activate("ranker", "2")
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument

from edge.batcher import BatchObserver, MicroBatcher, RunFn
from edge.errors import DigestMismatch, ModelError
from edge.tensors import DATATYPES, ONNX_TO_KSERVE, BadInput, ModelInfo, TensorSpec

log = logging.getLogger(__name__)
BF16 = DATATYPES["BF16"]
MODEL_FILE = "model.onnx"
CONFIG_FILE = "config.json"  # beside it: description, inputs/outputs, file list
CURRENT_FILE = "CURRENT"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")  # use .match: \Z ends it



def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def version_order(version: str) -> tuple[int, int | str]:
    return (0, int(version)) if version.isdigit() else (1, version)


class ModelVersion:
    """One loaded version: its session, its micro-batcher and its `ModelInfo`."""

    def __init__(self, info: ModelInfo, session: ort.InferenceSession, folder: Path,
                 batcher: MicroBatcher) -> None:
        self.info = info
        self.session = session
        self.folder = folder
        self.batcher = batcher
        self.last_used = time.monotonic()

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def version(self) -> str:
        return self.info.version

    async def infer(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.last_used = time.monotonic()
        return await self.batcher.infer(feeds)


@dataclass
class _Slot:
    active: ModelVersion | None = None
    previous: ModelVersion | None = None
    staged: dict[str, ModelVersion] = field(default_factory=dict)


class ModelRegistry:
    def __init__(self, *, max_batch: int = 64, max_delay_s: float = 0.002,
                 intra_op_threads: int = 1,
                 observer: Callable[[str, str], BatchObserver] | None = None) -> None:
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.intra_op_threads = intra_op_threads
        self._observer = observer or (lambda name, version: BatchObserver())
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="onnx")
        self._slots: dict[str, _Slot] = {}

    # -- queries ---------------------------------------------------------------------
    def get(self, name: str, version: str | None = None) -> ModelVersion | None:
        """The active version, or the named one if it is active, previous or staged."""
        slot = self._slots.get(name)
        if slot is None:
            return None
        if version is None or (slot.active and slot.active.version == version):
            return slot.active
        if slot.previous and slot.previous.version == version:
            return slot.previous
        return slot.staged.get(version)

    def versions(self, name: str) -> list[str]:
        slot = self._slots.get(name)
        if slot is None:
            return []
        found = {mv.version for mv in (slot.active, slot.previous) if mv} | set(slot.staged)
        return sorted(found, key=version_order)

    def names(self) -> list[str]:
        """Every model with at least one loaded version (active, previous or staged)."""
        return list(self._slots)

    def active(self) -> dict[str, ModelVersion]:
        return {name: s.active for name, s in self._slots.items() if s.active}

    # -- changes ---------------------------------------------------------------------
    def stage(self, name: str, version: str, model_file: Path,
              expected_sha256: str | None = None) -> ModelVersion:
        """Load and warm up a version without serving it. Blocking (run it in a thread)."""
        if not SAFE_NAME.match(name) or not SAFE_NAME.match(version):
            raise ModelError(f"invalid model name or version: {name!r} {version!r}")
        model_file = Path(model_file)
        try:
            digest = file_sha256(model_file)
        except OSError as e:
            raise ModelError(f"{name} {version}: cannot read {model_file}: {e.strerror}") \
                from None
        if expected_sha256 and digest != expected_sha256.lower():
            raise DigestMismatch(f"{name} {version}: SHA-256 of {model_file} is {digest}, "
                                 f"expected {expected_sha256}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 4  # run errors are the client's; they are answered, not logged
        try:
            session = ort.InferenceSession(str(model_file), options,
                                           providers=["CPUExecutionProvider"])
            info = ModelInfo(name, version, digest,
                             tuple(_spec(a) for a in session.get_inputs()),
                             tuple(_spec(a) for a in session.get_outputs()))
            run = _runner(session, name, version)
            run({s.name: _zeros(s) for s in info.inputs})
        except Exception as e:  # onnxruntime raises several unrelated types
            raise ModelError(f"{name} {version}: onnxruntime cannot load {model_file}: {e}") \
                from None
        batcher = MicroBatcher(run,
                               max_batch=self.max_batch, max_delay_s=self.max_delay_s,
                               executor=self._executor, observer=self._observer(name, version))
        mv = ModelVersion(info, session, model_file.parent, batcher)
        self._slots.setdefault(name, _Slot()).staged[version] = mv
        log.info("staged %s version %s (sha256 %s)", name, version, digest[:16])
        return mv

    def activate(self, name: str, version: str) -> ModelVersion:
        """Serve `version` (staged or previous) from now on; the old active becomes previous."""
        slot = self._slots.get(name)
        mv = (slot.staged.get(version) or self.get(name, version)) if slot else None
        if slot is None or mv is None:
            raise ModelError(f"{name} {version} is not loaded; stage it first")
        if slot.active is mv:
            return mv
        slot.staged.pop(version, None)
        old = slot.active
        slot.active = mv
        slot.previous = old if old is not None and old is not mv else None
        log.info("activated %s version %s", name, version)
        return mv

    def rollback(self, name: str) -> ModelVersion:
        slot = self._slots.get(name)
        if slot is None or slot.previous is None:
            raise ModelError(f"{name}: no previous version to roll back to")
        return self.activate(name, slot.previous.version)

    def unload(self, name: str) -> None:
        self._slots.pop(name, None)

    def unload_idle(self, max_idle_s: float) -> list[str]:
        """Drop models unused for `max_idle_s` (in-flight requests keep their reference)."""
        cutoff = time.monotonic() - max_idle_s
        idle = [n for n, s in self._slots.items()
                if all(mv.last_used < cutoff
                       for mv in (s.active, s.previous, *s.staged.values()) if mv)]
        for name in idle:
            self.unload(name)
        return idle

    def load_folder(self, models_dir: Path) -> list[str]:
        """Stage and activate the current version of every model under `models_dir`.
        Returns one message per model that could not be loaded (the rest still load)."""
        errors = []
        for name, version in current_versions(models_dir).items():
            try:
                self.stage(name, version, models_dir / name / version / MODEL_FILE)
                self.activate(name, version)
            except ModelError as e:
                errors.append(str(e))
                log.error("%s", e)
        return errors

    def load_model(self, models_dir: Path, name: str) -> ModelVersion | None:
        """Stage and activate the current version of one model from the folder (used to
        bring back a model unloaded while idle); None when the folder lacks it."""
        version = current_versions(models_dir, only=name).get(name)
        if version is None:
            return None
        self.stage(name, version, models_dir / name / version / MODEL_FILE)
        return self.activate(name, version)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def current_versions(models_dir: Path, only: str | None = None) -> dict[str, str]:
    """name → version to serve: the CURRENT file's content, else the highest version."""
    found: dict[str, str] = {}
    if not models_dir or not Path(models_dir).is_dir():
        return found
    if only is not None:
        candidates = [Path(models_dir) / only] if SAFE_NAME.match(only) else []
    else:
        candidates = sorted(Path(models_dir).iterdir())
    for model_dir in candidates:
        if not model_dir.is_dir() or not SAFE_NAME.match(model_dir.name):
            continue
        versions = [v.name for v in model_dir.iterdir()
                    if SAFE_NAME.match(v.name) and (v / MODEL_FILE).is_file()]
        current = model_dir / CURRENT_FILE
        if current.is_file() and current.read_text().strip() in versions:
            found[model_dir.name] = current.read_text().strip()
        elif versions:
            found[model_dir.name] = max(versions, key=version_order)
    return found


def _runner(session: ort.InferenceSession, name: str, version: str) -> RunFn:
    """`session.run`, with the errors that a loaded, warmed-up model raises on some input
    (an index out of its table, a shape its graph refuses) turned into `BadInput`: the
    client's error at every tier, never an outage."""
    bf16 = any(a.type == "tensor(bfloat16)"
               for a in (*session.get_inputs(), *session.get_outputs()))

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return _run_with_bf16(session, feeds) if bf16 else session.run(None, feeds)
        except (InvalidArgument, Fail) as e:
            message = str(e).rpartition("Status Message: ")[2] or str(e)
            raise BadInput(f"model {name!r} version {version} rejected the input: "
                           f"{message}") from None
    return run


def _run_with_bf16(session: ort.InferenceSession,
                   feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """`session.run` for a model with BF16 tensors, which onnxruntime's numpy bridge cannot
    convert: inputs go in as OrtValues of the 16-bit patterns, BF16 outputs are copied out
    of the output's memory."""
    values = {}
    for name, arr in feeds.items():
        arr = np.ascontiguousarray(arr)
        values[name] = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(
            arr.view(np.uint16), onnx.TensorProto.BFLOAT16) if arr.dtype == BF16 \
            else ort.OrtValue.ortvalue_from_numpy(arr)
    outputs = []
    for value in session.run_with_ort_values(None, values):
        if value.data_type() == "tensor(bfloat16)":
            shape = value.shape()
            raw = (ctypes.c_uint16 * math.prod(shape)).from_address(value.data_ptr())
            outputs.append(np.frombuffer(raw, np.uint16).copy().view(BF16).reshape(shape))
        else:
            outputs.append(value.numpy())
    return outputs


def _spec(arg: ort.NodeArg) -> TensorSpec:
    datatype = ONNX_TO_KSERVE.get(arg.type)
    if datatype is None:
        raise ModelError(f"tensor {arg.name!r} has unsupported type {arg.type}")
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
    return TensorSpec(arg.name, datatype, shape)


def _zeros(spec: TensorSpec) -> np.ndarray:
    shape = [1 if d < 0 else d for d in spec.shape]
    if spec.datatype == "BYTES":
        return np.full(shape, "", dtype=object)
    return np.zeros(shape, dtype=DATATYPES[spec.datatype])
