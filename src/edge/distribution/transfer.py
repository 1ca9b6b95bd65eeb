"""How a file travels from the origin to an edge: full, zstd-compressed, or as a delta.

The origin prepares the variants once per release; an edge picks the smallest one it
can use (a delta needs the base file it was made against) and always checks the
digest of what it rebuilt. Two delta methods are tried and the smaller is kept:

* `zstd-patch`: zstd with the base file as raw-content dictionary and long-distance
  matching (zstd's "patch-from"), fast for large files;
* `bsdiff4`: classic bsdiff, often smaller for small files with shifted content.

A delta is kept only when it is clearly smaller (below `DELTA_RATIO` of the best full
transfer), and zstd only when it saves at least `ZSTD_MIN_SAVING`.
"""

from __future__ import annotations

from dataclasses import dataclass

import bsdiff4
import zstandard

from edge.distribution.blobs import sha256_bytes
from edge.distribution.errors import TransferFailed
from edge.distribution.manifest import FileEntry
from edge.errors import DigestMismatch

DELTA_RATIO = 0.5
ZSTD_MIN_SAVING = 0.05
BSDIFF_MAX_BYTES = 256 << 20  # bsdiff needs ~17x the file size in memory
PATCH_FROM_MAX_BYTES = 1 << 30  # zstd's window must cover base + target
ZSTD_MAX_WINDOW_LOG = 31


def zstd_level(size: int) -> int:
    return 19 if size <= 64 << 20 else 9


def compress(data: bytes) -> bytes | None:
    """The zstd frame of `data`, or None when compression does not pay."""
    packed = zstandard.ZstdCompressor(level=zstd_level(len(data))).compress(data)
    return packed if len(packed) <= len(data) * (1 - ZSTD_MIN_SAVING) else None


def decompress(payload: bytes, size: int) -> bytes:
    return zstandard.ZstdDecompressor().decompress(payload, max_output_size=size)


def _window_log(base_size: int, target_size: int) -> int:
    return min(ZSTD_MAX_WINDOW_LOG, max(10, (base_size + target_size).bit_length()))


def zstd_patch(base: bytes, target: bytes) -> bytes:
    wlog = _window_log(len(base), len(target))
    params = zstandard.ZstdCompressionParameters.from_level(
        zstd_level(len(target)), window_log=wlog, enable_ldm=True
    )
    dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    return zstandard.ZstdCompressor(dict_data=dictionary, compression_params=params).compress(
        target
    )


def zstd_unpatch(base: bytes, patch: bytes, size: int) -> bytes:
    dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    window = 1 << _window_log(len(base), size)
    return zstandard.ZstdDecompressor(dict_data=dictionary, max_window_size=window).decompress(
        patch, max_output_size=size
    )


DELTA_METHODS = ("zstd-patch", "bsdiff4")


def make_deltas(base: bytes, target: bytes) -> dict[str, bytes]:
    """Every applicable delta method's patch from `base` to `target`."""
    out: dict[str, bytes] = {}
    if max(len(base), len(target)) <= PATCH_FROM_MAX_BYTES:
        out["zstd-patch"] = zstd_patch(base, target)
    if max(len(base), len(target)) <= BSDIFF_MAX_BYTES:
        out["bsdiff4"] = bsdiff4.diff(base, target)
    return out


def best_delta(base: bytes, target: bytes, full_cost: int) -> tuple[str, bytes] | None:
    """The smallest delta, if it is below DELTA_RATIO of the cheapest full transfer."""
    candidates = make_deltas(base, target)
    if not candidates:
        return None
    method, patch = min(candidates.items(), key=lambda kv: len(kv[1]))
    return (method, patch) if len(patch) < DELTA_RATIO * full_cost else None


def apply_delta(method: str, base: bytes, patch: bytes, size: int) -> bytes:
    if method == "zstd-patch":
        return zstd_unpatch(base, patch, size)
    if method == "bsdiff4":
        return bsdiff4.patch(base, patch)
    raise TransferFailed(f"unknown delta method {method!r}")


@dataclass(frozen=True)
class Step:
    """One way to obtain a file: download blob `digest` (`size` bytes) and decode it."""

    kind: str  # "registry" (the plain file from an OCI registry), "delta", "zstd" or "full"
    digest: str
    size: int
    method: str = ""
    base_digest: str = ""


def plan(entry: FileEntry, have: set[str], registry: bool = False) -> list[Step]:
    """Ways to get `entry`: from the region's registry first when there is one, then the
    origin's cheapest first; the plain file from the origin is always the last resort."""
    steps = [
        Step("delta", d.digest, d.size, d.method, d.base_digest)
        for d in entry.deltas
        if d.base_digest in have
    ]
    if entry.zstd:
        steps.append(Step("zstd", entry.zstd.digest, entry.zstd.size))
    steps.sort(key=lambda s: s.size)
    steps.append(Step("full", entry.digest, entry.size))
    if registry:
        steps.insert(0, Step("registry", entry.digest, entry.size))
    return steps


def rebuild(step: Step, payload: bytes, entry: FileEntry, base: bytes | None = None) -> bytes:
    """Decode a downloaded payload and verify both the payload and the result."""
    got = sha256_bytes(payload)
    if got != step.digest:
        raise DigestMismatch(f"{step.kind} payload is {got}, expected {step.digest}")
    if step.kind in ("full", "registry"):
        data = payload
    elif step.kind == "zstd":
        data = decompress(payload, entry.size)
    else:
        if base is None:
            raise TransferFailed("a delta needs its base file")
        data = apply_delta(step.method, base, payload, entry.size)
    got = sha256_bytes(data)
    if got != entry.digest:
        raise DigestMismatch(f"rebuilt file is {got}, expected {entry.digest}")
    return data
