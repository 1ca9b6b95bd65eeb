"""The SQLite L2 on its own: its bound is in real bytes on disk, an entry read while old
survives eviction, purges by tag and prefix, and it reopens with what it held."""

from __future__ import annotations

import os
import time

from edge.cache.disk import DB_FILE, DiskL2

FAR = time.time() + 3600


def key(i: int) -> str:
    return f"p/ranker/0123456789abcdef/{i:032x}"


async def test_bound_is_real_bytes_and_read_entries_get_a_second_chance(tmp_path):
    l2 = DiskL2(tmp_path, capacity_bytes=256 * 1024, fsync=False)
    l2.start()
    value = b'{"prediction": 0.5, "outputs": []}' + b" " * 200
    for i in range(4000):
        l2.put_later(key(i), value, FAR, ("model:ranker",))
        if i % 100 == 99:
            await l2.drain()
            assert l2.get(key(0)) is not None  # read while old: written again
    await l2.drain()
    stats = l2.stats()
    assert stats["bytes"] <= 256 * 1024 and 0 < stats["entries"] < 4000
    assert stats["data_bytes"] <= stats["bytes"]
    assert l2.get(key(0)) is not None and l2.get(key(1)) is None  # the unread one went
    await l2.close()
    assert os.stat(tmp_path / DB_FILE).st_size <= 256 * 1024 + 64 * 1024


async def test_purges_and_reopen(tmp_path):
    l2 = DiskL2(tmp_path, capacity_bytes=1 << 20, fsync=False)
    for i in range(10):
        l2.put_later(key(i), b"v%d" % i, FAR, ("model:ranker", f"digest:{i % 2}"))
    assert l2.purge_tag("digest:1") == 5
    assert l2.purge_prefix(key(0)) == 1 and l2.purge_prefix("p/other/") == 0
    assert l2.delete(key(2)) == 1 and l2.delete(key(2)) == 0
    await l2.close()
    again = DiskL2(tmp_path, capacity_bytes=1 << 20, fsync=False)
    assert again.entries == 3
    assert again.get(key(4)) == (b"v4", FAR, ("model:ranker", "digest:0"))
    assert again.flush() == 3 and again.get(key(4)) is None
    await again.close()


async def test_a_burst_of_writes_is_all_kept_and_close_writes_what_is_queued(tmp_path):
    """4,000 misses at once (within the write queue's bound): none is dropped, and what
    is still queued or waiting for its batch when the edge closes is in the file."""
    l2 = DiskL2(tmp_path, capacity_bytes=64 << 20, fsync=True)
    l2.start()
    for i in range(4000):
        l2.put_later(key(i), b"v%d" % i, FAR, ("model:ranker",))
    await l2.close()  # at once: no drain of our own first
    assert l2.dropped_writes == 0
    reopened = DiskL2(tmp_path, capacity_bytes=64 << 20, fsync=True)
    assert reopened.stats()["entries"] == 4000
    assert [reopened.get(key(i))[0] for i in (0, 1999, 3999)] == [b"v0", b"v1999", b"v3999"]
    await reopened.close()
