"""The origin's content-addressed model store.

Layout under the store root:

    blobs/sha256/ab/abcdef…           every file and transfer variant, by digest
    models/<name>/versions/<v>.json    one manifest per published version
    models/<name>/pointer.json         {"current", "history", "staged", "updated"}
    .lock                              serialises writers (processes and threads)

Every write is atomic (temporary file, fsync, rename), so a crash leaves the previous
manifest or pointer in place, never a torn one. Names and versions are validated
before they become paths (see `names`).
"""

from __future__ import annotations

import fcntl
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx

from edge.distribution import transfer
from edge.distribution.blobs import BlobStore, atomic_write, sha256_file
from edge.distribution.errors import Conflict, DistributionError, NotFound
from edge.distribution.manifest import BlobRef, Delta, FileEntry, Manifest
from edge.distribution.names import check_name, check_version
from edge.distribution.samples import open_session, sample_inputs
from edge.registry import CONFIG_FILE

HISTORY_LIMIT = 20
DELTA_BASES = 2  # default: deltas from the current version and the one before it


class InvalidModel(DistributionError, ValueError):
    """The uploaded file is not a loadable ONNX model."""


@dataclass
class Pointer:
    current: str | None = None
    history: list[str] = field(default_factory=list)
    staged: str | None = None
    updated: str = ""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def describe_model(path: Path) -> dict[str, Any]:
    """Inputs and outputs of an ONNX file; raises InvalidModel when it is not one."""
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises several unrelated types for bad files
        raise InvalidModel(f"{path.name} is not a valid ONNX model: {exc}") from None
    try:  # edges must be able to serve it: load it and run a sample batch here
        session = open_session(str(path))
        session.run(None, sample_inputs(session, batch=2))
    except Exception as exc:  # onnxruntime raises several unrelated types
        raise InvalidModel(f"{path.name}: onnxruntime cannot run it: {exc}") from None

    def shape(v: onnx.ValueInfoProto) -> list[int | str]:
        return [d.dim_value or d.dim_param or "?" for d in v.type.tensor_type.shape.dim]

    init = {i.name for i in model.graph.initializer}
    return {
        "inputs": {v.name: shape(v) for v in model.graph.input if v.name not in init},
        "outputs": {v.name: shape(v) for v in model.graph.output},
        "opset": max((o.version for o in model.opset_import), default=0),
    }


MAX_CONFIG = 16 * 1024  # bytes of a model's config.json


def check_config(config: Any) -> dict[str, Any]:
    """A model's config.json document: a JSON object of at most MAX_CONFIG bytes."""
    if not isinstance(config, dict) or len(json.dumps(config)) > MAX_CONFIG:
        raise InvalidModel(f"a model's config must be a JSON object of at most "
                           f"{MAX_CONFIG} bytes")
    return config


def read_config(model_path: Path) -> dict[str, Any] | None:
    """The config.json beside a model file, if there is one."""
    path = Path(model_path).with_name(CONFIG_FILE)
    try:
        return check_config(json.loads(path.read_bytes()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InvalidModel(f"{path}: {exc}") from None


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = BlobStore(self.root / "blobs")
        (self.root / "models").mkdir(parents=True, exist_ok=True)
        self._thread_lock = threading.Lock()

    # ----- paths and locking
    def _model_dir(self, name: str) -> Path:
        return self.root / "models" / check_name(name)

    def _manifest_path(self, name: str, version: str) -> Path:
        return self._model_dir(name) / "versions" / f"{check_version(version)}.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock, open(self.root / ".lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # ----- reading
    def models(self) -> list[str]:
        return sorted(p.name for p in (self.root / "models").iterdir() if p.is_dir())

    def versions(self, name: str) -> list[str]:
        vdir = self._model_dir(name) / "versions"
        if not vdir.is_dir():
            raise NotFound(f"no model {name!r}")
        return sorted(p.stem for p in vdir.glob("*.json"))

    def manifest(self, name: str, version: str) -> Manifest:
        path = self._manifest_path(name, version)
        try:
            return Manifest.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise NotFound(f"no version {version!r} of model {name!r}") from None

    def manifest_bytes(self, name: str, version: str) -> bytes:
        try:
            return self._manifest_path(name, version).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no version {version!r} of model {name!r}") from None

    def pointer(self, name: str) -> Pointer:
        path = self._model_dir(name) / "pointer.json"
        if not path.is_file():
            if not (self._model_dir(name) / "versions").is_dir():
                raise NotFound(f"no model {name!r}")
            return Pointer()
        return Pointer(**json.loads(path.read_text()))

    def summary(self) -> dict[str, Any]:
        """Every model: current/staged/history and its versions with digests and sizes."""
        out: dict[str, Any] = {}
        for name in self.models():
            ptr = self.pointer(name)
            versions = {}
            for v in self.versions(name):
                m = self.manifest(name, v)
                versions[v] = {"digest": m.digest, "size": m.files["model"].size,
                               "created": m.created, "int8": "int8" in m.files}
            current = versions.get(ptr.current or "", {})
            out[name] = {**asdict(ptr), "digest": current.get("digest"), "versions": versions}
        return out

    # ----- writing
    def _write_pointer(self, name: str, ptr: Pointer) -> None:
        ptr.updated = _now()
        atomic_write(self._model_dir(name) / "pointer.json",
                     json.dumps(asdict(ptr), indent=2).encode())

    def _entry(self, data: bytes, bases: list[tuple[str, FileEntry]]) -> FileEntry:
        digest = self.blobs.put_bytes(data)
        packed = transfer.compress(data)
        zstd = BlobRef(self.blobs.put_bytes(packed), len(packed)) if packed else None
        full_cost = min(len(data), zstd.size if zstd else len(data))
        deltas = []
        for base_version, base in bases:
            if base.digest == digest:
                continue
            best = transfer.best_delta(self.blobs.read(base.digest), data, full_cost)
            if best:
                method, patch = best
                deltas.append(Delta(base_version, base.digest, method,
                                    self.blobs.put_bytes(patch), len(patch)))
        return FileEntry(digest, len(data), zstd, tuple(deltas))

    def _default_bases(self, name: str) -> list[str]:
        try:
            ptr = self.pointer(name)
        except NotFound:
            return []
        ordered = ([ptr.current] if ptr.current else []) + list(reversed(ptr.history))
        return list(dict.fromkeys(ordered))[:DELTA_BASES]

    def publish(
        self,
        model_path: Path,
        name: str,
        version: str,
        *,
        int8: bool = False,
        metadata: dict[str, Any] | None = None,
        delta_from: list[str] | None = None,
        config: dict[str, Any] | None = None,
    ) -> tuple[Manifest, bool]:
        """Add a version; returns (manifest, created). Re-publishing identical bytes is a
        no-op; other bytes under an existing version are refused (versions are immutable).
        `config` (the model's config.json) travels in the manifest's metadata."""
        if config is not None:
            metadata = {**(metadata or {}), "config": check_config(config)}
        check_name(name)
        check_version(version)
        model_path = Path(model_path)
        described = describe_model(model_path)
        digest = sha256_file(model_path)
        with self._locked():
            try:
                existing = self.manifest(name, version)
            except NotFound:
                existing = None
            if existing is not None:
                if existing.digest != digest:
                    raise Conflict(f"{name} {version} exists with other content "
                                   f"({existing.digest}); publish a new version")
                return existing, False
            base_versions = [check_version(v) for v in delta_from] if delta_from is not None \
                else self._default_bases(name)
            bases = [(v, self.manifest(name, v)) for v in base_versions]
            data = model_path.read_bytes()
            files = {"model": self._entry(data, [(v, m.files["model"]) for v, m in bases])}
            quant = None
            if int8:
                from edge.distribution.quantize import make_int8

                q_bytes, quant = make_int8(model_path)
                files["int8"] = self._entry(
                    q_bytes, [(v, m.files["int8"]) for v, m in bases if "int8" in m.files])
            manifest = Manifest(name, version, _now(), files,
                                {**described, **(metadata or {})}, quant)
            atomic_write(self._manifest_path(name, version),
                         json.dumps(manifest.to_dict(), indent=2).encode())
            if not (self._model_dir(name) / "pointer.json").exists():
                self._write_pointer(name, Pointer())
            return manifest, True

    def activate(self, name: str, version: str) -> Pointer:
        """Make `version` current; the version it replaces goes on the rollback history."""
        with self._locked():
            self.manifest(name, version)
            ptr = self.pointer(name)
            if ptr.current != version:
                if ptr.current:
                    ptr.history = (ptr.history + [ptr.current])[-HISTORY_LIMIT:]
                ptr.current = version
            if ptr.staged == version:
                ptr.staged = None
            self._write_pointer(name, ptr)
            return ptr

    def stage(self, name: str, version: str) -> Pointer:
        with self._locked():
            self.manifest(name, version)
            ptr = self.pointer(name)
            ptr.staged = version
            self._write_pointer(name, ptr)
            return ptr

    def rollback(self, name: str) -> Pointer:
        """Return to the version that was current before this one."""
        with self._locked():
            ptr = self.pointer(name)
            if not ptr.history:
                raise Conflict(f"model {name!r} has no earlier version to roll back to")
            ptr.current = ptr.history.pop()
            self._write_pointer(name, ptr)
            return ptr
