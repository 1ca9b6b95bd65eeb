"""L2 on disk: the edge's SQLite store (`edge.cache.disk.DiskL2`) beside the store it
replaced (one file per entry, `bench/l2_files.py`), filled with the same small entries.

For each store: write entries (a prediction-sized JSON value, a real cache key and the
node's two tags) through the node's write-behind path until they hold --size bytes of
keys and values, then close it and print the entries, the data bytes, the disk use
(allocated blocks of every file in its folder, as `du` counts), their ratio, the write
rate per CPU-second, and the start time (opening the store and reading one entry;
median of --runs openings, page cache warm, as after a process restart), also scaled
to one GiB of data. The old store takes minutes per GiB to write and to open (every
entry is a file, read at start), so --reference-size may be set smaller: both rows come
from the same run.

Usage: .venv/bin/python bench/l2_store.py [--size 1GiB] [--reference-size 1GiB] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent))

from edge.cache.disk import DiskL2  # noqa: E402
from edge.config import parse_size  # noqa: E402
from l2_files import FileL2  # noqa: E402 - the reference store, beside this script

TAGS = ("model:ranker", "digest:0123456789abcdef")


class Store(Protocol):
    def start(self) -> None: ...
    def put_later(self, key: str, value: bytes, expires: float,
                  tags: tuple[str, ...]) -> None: ...
    async def drain(self) -> None: ...
    async def close(self) -> None: ...
    def get(self, key: str) -> tuple[bytes, float, tuple[str, ...]] | None: ...


def entry(i: int, rng: random.Random) -> tuple[str, bytes]:
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


async def fill(make: type, root: Path, size: int) -> tuple[int, int, float, str]:
    """(entries, data bytes, CPU seconds, a key written) after filling a new store."""
    store: Store = make(root, capacity_bytes=size * 4, fsync=False)
    store.start()
    rng = random.Random(1)
    written = count = 0
    expires = time.time() + 86400
    cpu = time.process_time()
    key = ""
    while written < size:
        key, value = entry(count, rng)
        store.put_later(key, value, expires, TAGS)
        written += len(key) + len(value)
        count += 1
        if count % 2048 == 0:
            await store.drain()
    await store.close()
    return count, written, time.process_time() - cpu, key


async def start_time(make: type, root: Path, key: str) -> float:
    t0 = time.perf_counter()
    store: Store = make(root, capacity_bytes=1 << 40, fsync=False)
    found = store.get(key)
    elapsed = time.perf_counter() - t0
    assert found is not None, "the store lost an entry across the restart"
    await store.close()
    return elapsed


async def measure(name: str, make: type, size: int, runs: int, where: Path) -> None:
    root = where / name
    count, data, cpu, key = await fill(make, root, size)
    disk = disk_use(root)
    starts = [await start_time(make, root, key) for _ in range(runs)]
    print(f"{name:<22} {count:>10,} {data / 2**20:>10.1f} {disk / 2**20:>10.1f} "
          f"{disk / data:>6.2f}x {count / cpu:>12,.0f} {statistics.median(starts):>9.3f} "
          f"{statistics.median(starts) * 2**30 / data:>9.2f}",
          flush=True)
    shutil.rmtree(root)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1GiB", help="keys and values to write (default 1GiB)")
    ap.add_argument("--reference-size", default=None,
                    help="the same for the one-file-per-entry store (default: --size)")
    ap.add_argument("--runs", type=int, default=3, help="openings timed per store")
    ap.add_argument("--dir", type=Path, default=None, help="where (default: a temp folder)")
    args = ap.parse_args()
    size = parse_size(args.size)
    reference = parse_size(args.reference_size or args.size)
    where = Path(tempfile.mkdtemp(prefix="l2-bench-", dir=args.dir))
    print(f"{'store':<22} {'entries':>10} {'data MiB':>10} {'disk MiB':>10} {'ratio':>7} "
          f"{'writes/CPU-s':>12} {'start s':>9} {'s per GiB':>9}")
    try:
        await measure("sqlite (DiskL2)", DiskL2, size, args.runs, where)
        await measure("file per entry (old)", FileL2, reference, args.runs, where)
    finally:
        shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
