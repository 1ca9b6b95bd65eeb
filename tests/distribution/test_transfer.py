"""Transfer variants: every delta method rebuilds the exact file, and any flipped byte
in a payload is rejected."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.distribution import transfer
from edge.distribution.blobs import sha256_bytes
from edge.distribution.manifest import BlobRef, Delta, FileEntry
from edge.errors import DigestMismatch


def entry_for(base: bytes, target: bytes) -> tuple[FileEntry, dict[str, bytes]]:
    payloads = {"full": target}
    packed = transfer.compress(target)
    zstd = None
    if packed:
        zstd = BlobRef(sha256_bytes(packed), len(packed))
        payloads["zstd"] = packed
    deltas = []
    for method, patch in transfer.make_deltas(base, target).items():
        deltas.append(Delta("1", sha256_bytes(base), method, sha256_bytes(patch), len(patch)))
        payloads[method] = patch
    return FileEntry(sha256_bytes(target), len(target), zstd, tuple(deltas)), payloads


edits = st.lists(st.tuples(st.integers(0, 4095), st.binary(min_size=0, max_size=64)),
                 max_size=8)


@settings(max_examples=40, deadline=None)
@given(base=st.binary(min_size=0, max_size=4096), changes=edits)
def test_every_variant_rebuilds_the_exact_file(base, changes):
    target = bytearray(base)
    for pos, data in changes:
        pos = min(pos, len(target))
        target[pos:pos + len(data)] = data
    target = bytes(target)
    entry, payloads = entry_for(base, target)
    for step in transfer.plan(entry, {sha256_bytes(base)}):
        payload = payloads[step.method or step.kind]
        assert transfer.rebuild(step, payload, entry, base) == target


def test_plan_prefers_the_cheapest_usable_variant():
    base = bytes(range(256)) * 64
    target = base[:8000] + b"changed" + base[8007:]
    entry, _ = entry_for(base, target)
    assert [s.kind for s in transfer.plan(entry, set())][-1] == "full"
    steps = transfer.plan(entry, {sha256_bytes(base)})
    assert steps[0].kind == "delta" and steps[-1].kind == "full"
    assert [s.size for s in steps[:-1]] == sorted(s.size for s in steps[:-1])
    assert all(s.kind != "delta" for s in transfer.plan(entry, set()))


@pytest.mark.parametrize("kind", ["full", "zstd", "zstd-patch", "bsdiff4"])
def test_a_flipped_byte_is_rejected(kind):
    base = bytes(range(256)) * 64
    target = base[:5000] + b"new weights" + base[5011:]
    entry, payloads = entry_for(base, target)
    step = next(s for s in transfer.plan(entry, {sha256_bytes(base)})
                if (s.method or s.kind) == kind)
    bad = bytearray(payloads[kind])
    bad[len(bad) // 2] ^= 0x40
    with pytest.raises(DigestMismatch):
        transfer.rebuild(step, bytes(bad), entry, base)


def test_delta_is_kept_only_when_clearly_smaller():
    import os

    base, target = os.urandom(20000), os.urandom(20000)
    assert transfer.best_delta(base, target, full_cost=len(target)) is None
    near = base[:10000] + b"x" + base[10001:]
    method, patch = transfer.best_delta(base, near, full_cost=len(near))
    assert len(patch) < 0.5 * len(near) and method in transfer.DELTA_METHODS
