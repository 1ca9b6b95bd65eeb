"""The L1 eviction policy (S3-FIFO) against LRU and Bélády's bound."""

from __future__ import annotations

from edge.cache.s3fifo import S3FIFO, Entry
from edge.planner import belady_hits, lru_hits, s3fifo_hits, zipf_trace


def test_s3fifo_keeps_its_byte_bound_and_readmits_ghosts():
    c = S3FIFO(1000)
    for i in range(100):
        assert c.put(f"k{i}", Entry(b"", 90, 0.0, ()))
        assert c.bytes <= 1000
    assert len(c) == 11 and "k99" in c and "k0" not in c
    assert not c.put("huge", Entry(b"", 2000, 0.0, ()))
    c.put("k90", Entry(b"", 90, 0.0, ()))  # k90 was evicted to the ghost queue
    assert "k90" in c


def test_one_hit_wonders_do_not_flush_the_hot_set():
    c = S3FIFO(100)
    for _ in range(3):
        for i in range(50):
            if c.get(f"hot{i}") is None:
                c.put(f"hot{i}", Entry(None, 1, 0.0, ()))
    for i in range(1000):  # a scan of keys seen once
        c.put(f"scan{i}", Entry(None, 1, 0.0, ()))
    assert sum(f"hot{i}" in c for i in range(50)) == 50


def test_on_a_zipf_trace_s3fifo_beats_lru_and_belady_bounds_both():
    trace = zipf_trace(5000, 60_000, 0.9, seed=3).tolist()
    sizes = [1] * len(trace)
    for capacity in (50, 250):
        s3 = sum(s3fifo_hits(trace, sizes, capacity))
        lru = sum(lru_hits(trace, sizes, capacity))
        opt = belady_hits(trace, capacity)
        assert lru < s3 <= opt, (capacity, lru, s3, opt)
