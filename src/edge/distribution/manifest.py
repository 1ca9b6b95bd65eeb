"""The manifest of one published model version: files, digests, sizes, transfer variants.

JSON shape (`Manifest.to_dict`):

    {"name": "ranker", "version": "2", "created": "2026-11-22T12:00:00Z",
     "files": {"model": {"digest": "sha256:…", "size": 81234,
                         "zstd": {"digest": "sha256:…", "size": 70001} | null,
                         "deltas": [{"base_version": "1", "base_digest": "sha256:…",
                                     "method": "zstd-patch", "digest": "sha256:…",
                                     "size": 2048}]},
               "int8": {…same shape…}},
     "metadata": {"inputs": {...}, "outputs": {...}, ...},
     "quantization": {"method": "onnxruntime.quantize_dynamic", "size": …,
                      "fp32_size": …, "agreement": {...}} | null}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edge.distribution.names import check_digest, check_name, check_version


@dataclass(frozen=True)
class BlobRef:
    digest: str
    size: int


@dataclass(frozen=True)
class Delta:
    """A patch that rebuilds the file from the same file of an earlier version."""

    base_version: str
    base_digest: str
    method: str
    digest: str
    size: int


@dataclass(frozen=True)
class FileEntry:
    digest: str
    size: int
    zstd: BlobRef | None = None
    deltas: tuple[Delta, ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileEntry:
        z = d.get("zstd")
        return cls(
            digest=check_digest(d["digest"]),
            size=int(d["size"]),
            zstd=BlobRef(check_digest(z["digest"]), int(z["size"])) if z else None,
            deltas=tuple(
                Delta(
                    base_version=check_version(x["base_version"]),
                    base_digest=check_digest(x["base_digest"]),
                    method=str(x["method"]),
                    digest=check_digest(x["digest"]),
                    size=int(x["size"]),
                )
                for x in d.get("deltas", ())
            ),
        )

    def blobs(self) -> list[str]:
        """Every blob this entry refers to (the file itself and its variants)."""
        out = [self.digest]
        if self.zstd:
            out.append(self.zstd.digest)
        out += [d.digest for d in self.deltas]
        return out


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    created: str
    files: dict[str, FileEntry]
    metadata: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] | None = None

    @property
    def digest(self) -> str:
        """The digest of the main model file: what an activation announces."""
        return self.files["model"].digest

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        return cls(
            name=check_name(d["name"]),
            version=check_version(d["version"]),
            created=str(d["created"]),
            files={str(k): FileEntry.from_dict(v) for k, v in d["files"].items()},
            metadata=dict(d.get("metadata") or {}),
            quantization=d.get("quantization"),
        )
