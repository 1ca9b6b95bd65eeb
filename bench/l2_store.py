"""L2 on disk: the edge's SQLite store (`edge.cache.disk.DiskL2`) beside the store it
replaced (one file per entry, `bench/l2_files.py`), filled with the same small entries.

Both stores get the same entries (a prediction-sized JSON value, a real cache key and
the node's two tags), as many as hold --size bytes of keys and values. The SQLite store
is written through the node's write-behind path. The old store is written the fastest
way it can be without changing what lands on disk: its own `write_entry` (the bytes,
temporary name and rename its writer uses), called by --workers processes at once;
its index, which it rebuilds from the files at every start anyway, is not kept while
filling. Then, for each store, print the entries, the data bytes, the disk use
(allocated blocks of every file in its folder, as `du` counts), their ratio, the writes
per CPU-second (the filling processes' user and system time), and the start time
(opening the store and reading one entry; median of --runs openings, page cache warm,
as after a process restart), also per GiB of data. Nothing is scaled: both rows hold
--size. The old store takes minutes per GiB to fill and to open (2.8 million files).

Usage: .venv/bin/python bench/l2_store.py [--size 1GiB] [--runs 3] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent))

from edge.cache.disk import DiskL2  # noqa: E402
from edge.config import parse_size  # noqa: E402
from l2_files import FileL2, write_entry  # noqa: E402 - the reference store, beside this script

TAGS = ("model:ranker", "digest:0123456789abcdef")
EXPIRES = time.time() + 86400
CHUNK = 8192  # entries per task of the old store's filling pool


class Store(Protocol):
    def get(self, key: str) -> tuple[bytes, float, tuple[str, ...]] | None: ...
    async def close(self) -> None: ...


def entry(i: int) -> tuple[str, bytes]:
    """Entry number i, the same in every process."""
    rng = random.Random(i)
    digest = hashlib.blake2b(str(i).encode(), digest_size=16).hexdigest()
    key = f"p/ranker/0123456789abcdef/{digest}"
    value = json.dumps({"model_name": "ranker", "model_version": "1",
                        "prediction": rng.random(),
                        "outputs": [{"name": "score", "datatype": "FP32", "shape": [1, 1],
                                     "data": [rng.random() for _ in range(8)]}]}).encode()
    return key, value


def disk_use(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            total += os.stat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def cpu_seconds() -> float:
    """User and system time of this process and of its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def fill_sqlite(root: Path, size: int) -> tuple[int, int, float]:
    """(entries, data bytes, CPU seconds) after filling a new DiskL2 to `size`."""
    store = DiskL2(root, capacity_bytes=size * 4, fsync=False)
    store.start()
    written = count = 0
    cpu = cpu_seconds()
    while written < size:
        key, value = entry(count)
        store.put_later(key, value, EXPIRES, TAGS)
        written += len(key) + len(value)
        count += 1
        if count % 2048 == 0:
            await store.drain()
    await store.close()
    return count, written, cpu_seconds() - cpu


def write_files(root: Path, start: int, stop: int) -> int:
    """Write entries start..stop-1 as the old store's files; their keys and values' bytes."""
    written = 0
    for i in range(start, stop):
        key, value = entry(i)
        write_entry(root, key, value, EXPIRES, TAGS, False, f"{os.getpid()}.{i}")
        written += len(key) + len(value)
    return written


def fill_files(root: Path, count: int, workers: int) -> tuple[int, int, float]:
    """(entries, data bytes, CPU seconds) after writing the first `count` entries."""
    cpu = cpu_seconds()
    root.mkdir(parents=True)
    for i in range(256):
        (root / f"{i:02x}").mkdir()
    with ProcessPoolExecutor(workers) as pool:
        starts = range(0, count, CHUNK)
        written = sum(pool.map(write_files, [root] * len(starts), starts,
                               [min(s + CHUNK, count) for s in starts]))
    return count, written, cpu_seconds() - cpu


async def start_time(make: type, root: Path, key: str) -> float:
    t0 = time.perf_counter()
    store: Store = make(root, capacity_bytes=1 << 40, fsync=False)
    found = store.get(key)
    elapsed = time.perf_counter() - t0
    assert found is not None, "the store lost an entry across the restart"
    await store.close()
    return elapsed


def report(name: str, root: Path, count: int, data: int, cpu: float,
           starts: list[float]) -> None:
    disk = disk_use(root)
    start = statistics.median(starts)
    print(f"{name:<22} {count:>10,} {data / 2**20:>10.1f} {disk / 2**20:>10.1f} "
          f"{disk / data:>6.2f}x {count / cpu:>12,.0f} {start:>9.3f} "
          f"{start * 2**30 / data:>9.2f}", flush=True)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1GiB", help="keys and values to write (default 1GiB)")
    ap.add_argument("--runs", type=int, default=3, help="openings timed per store")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="processes writing the old store's files (default: one per CPU)")
    ap.add_argument("--dir", type=Path, default=None, help="where (default: a temp folder)")
    args = ap.parse_args()
    size = parse_size(args.size)
    where = Path(tempfile.mkdtemp(prefix="l2-bench-", dir=args.dir))
    print(f"{'store':<22} {'entries':>10} {'data MiB':>10} {'disk MiB':>10} {'ratio':>7} "
          f"{'writes/CPU-s':>12} {'start s':>9} {'s per GiB':>9}", flush=True)
    try:
        root = where / "sqlite"
        count, data, cpu = await fill_sqlite(root, size)
        key = entry(count - 1)[0]
        report("sqlite (DiskL2)", root, count, data, cpu,
               [await start_time(DiskL2, root, key) for _ in range(args.runs)])
        shutil.rmtree(root)
        root = where / "files"
        count, data, cpu = fill_files(root, count, args.workers)
        report("file per entry (old)", root, count, data, cpu,
               [await start_time(FileL2, root, key) for _ in range(args.runs)])
    finally:
        shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
