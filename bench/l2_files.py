"""The L2 store the edge had before its SQLite one, kept as the reference that
bench/l2_store.py measures beside the current store: one file per entry, bounded by
bytes (LRU), surviving restarts.

File layout: ``<root>/<2 hex>/<32 hex>.entry`` (BLAKE2b of the key), containing
``EDL2`` + u32 header length + JSON header (key, expiry, tags, value length) + value.
A file is written to a temporary name in the same folder, flushed (and fsynced unless
disabled), then renamed over the final name, so a crash leaves either the old entry,
the new one or a stray temporary file (removed at start), never a torn entry. At start
the index is rebuilt from the headers; a file whose length does not match its header
is deleted. `write_entry` writes one file; the bench also calls it from a pool of
processes to fill a GiB in the layout this store reads.

Reads are synchronous: prediction values are a few hundred bytes in the page cache,
cheaper to read than a thread hop. Writes go through a write-behind queue drained by a
background task, a burst at a time in a worker thread (`start()`); `drain()` waits
until it is empty.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from edge.cache.tags import TagIndex

log = logging.getLogger(__name__)
MAGIC = b"EDL2"
_HEADER_LEN = struct.Struct("<I")
WRITE_QUEUE = 4096  # pending writes beyond this are dropped (counted) under overload


@dataclass(slots=True)
class _Meta:
    path: Path
    size: int
    expires: float
    tags: tuple[str, ...]


class FileL2:
    def __init__(self, root: Path, capacity_bytes: int, fsync: bool = True) -> None:
        self.root = Path(root)
        self.capacity = capacity_bytes
        self.fsync = fsync
        self._index: OrderedDict[str, _Meta] = OrderedDict()  # LRU order
        self._tags = TagIndex()
        self.bytes = 0
        self.errors = 0
        self.dropped_writes = 0
        self._queue: asyncio.Queue | None = None
        self._writer: asyncio.Task | None = None
        self._folders: set[str] = set()
        self._tmp_seq = itertools.count()
        self.root.mkdir(parents=True, exist_ok=True)
        self._load_index()

    # -- reads -----------------------------------------------------------------------
    def get(self, key: str) -> tuple[bytes, float, tuple[str, ...]] | None:
        meta = self._index.get(key)
        if meta is None:
            return None
        try:
            with open(meta.path, "rb") as f:
                data = f.read()
            value = _parse(data)[1]
        except (OSError, ValueError) as e:
            self.errors += 1
            log.warning("L2 entry %s unreadable (%s); dropped", meta.path, e)
            self._forget(key)
            return None
        self._index.move_to_end(key)
        return value, meta.expires, meta.tags

    # -- writes ----------------------------------------------------------------------
    def start(self) -> None:
        self._queue = asyncio.Queue(WRITE_QUEUE)
        self._writer = asyncio.create_task(self._write_loop())

    def put_later(self, key: str, value: bytes, expires: float, tags: tuple[str, ...]) -> None:
        """Queue a write; without a started writer (tools, tests) write synchronously."""
        if self._queue is None:
            self._install(key, self._write_file(key, value, expires, tags))
            return
        try:
            self._queue.put_nowait((key, value, expires, tags))
        except asyncio.QueueFull:
            self.dropped_writes += 1

    async def drain(self) -> None:
        if self._queue is not None:
            await self._queue.join()

    async def close(self) -> None:
        if self._writer is not None:
            await self.drain()
            self._writer.cancel()
            self._writer = None
            self._queue = None

    async def _write_loop(self) -> None:
        """Write everything queued in one worker-thread call per wake-up (one thread hop
        for a whole burst of misses, not one per entry)."""
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 256:
                batch.append(self._queue.get_nowait())
            try:
                written = await asyncio.to_thread(self._write_many, batch)
                for (key, *_), meta in zip(batch, written, strict=True):
                    if meta is not None:
                        self._install(key, meta)
            except Exception:  # noqa: BLE001 - the writer must outlive any one bad batch
                self.errors += 1
                log.exception("L2 writer: batch of %d entries lost", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _write_many(self, batch: list[tuple]) -> list[_Meta | None]:
        written: list[_Meta | None] = []
        for key, value, expires, tags in batch:
            try:
                written.append(self._write_file(key, value, expires, tags))
            except OSError as e:
                self.errors += 1
                log.warning("L2 write failed: %s", e)
                written.append(None)
        return written

    def _write_file(self, key: str, value: bytes, expires: float,
                    tags: tuple[str, ...]) -> _Meta:
        folder = entry_name(key)[:2]
        if folder not in self._folders:
            (self.root / folder).mkdir(exist_ok=True)
            self._folders.add(folder)
        path, size = write_entry(self.root, key, value, expires, tags, self.fsync,
                                 f"{os.getpid()}.{next(self._tmp_seq)}")
        return _Meta(path, size, expires, tuple(tags))

    def _install(self, key: str, meta: _Meta) -> None:
        old = self._index.pop(key, None)
        if old is not None:
            self._drop_accounting(key, old)
        self._index[key] = meta
        self.bytes += meta.size
        self._tags.add(key, meta.tags)
        while self.bytes > self.capacity and self._index:
            self.delete(next(iter(self._index)))

    # -- purges ----------------------------------------------------------------------
    def delete(self, key: str) -> int:
        meta = self._forget(key)
        if meta is None:
            return 0
        try:
            meta.path.unlink(missing_ok=True)
        except OSError as e:
            self.errors += 1
            log.warning("L2 delete of %s failed: %s", meta.path, e)
        return 1

    def purge_prefix(self, prefix: str) -> int:
        return sum(self.delete(k) for k in [k for k in self._index if k.startswith(prefix)])

    def purge_tag(self, tag: str) -> int:
        return sum(self.delete(k) for k in self._tags.keys(tag))

    def flush(self) -> int:
        return sum(self.delete(k) for k in list(self._index))

    def stats(self) -> dict:
        return {"kind": "disk", "entries": len(self._index), "bytes": self.bytes,
                "capacity_bytes": self.capacity, "errors": self.errors,
                "dropped_writes": self.dropped_writes}

    # -- index -----------------------------------------------------------------------
    def _forget(self, key: str) -> _Meta | None:
        meta = self._index.pop(key, None)
        if meta is not None:
            self._drop_accounting(key, meta)
        return meta

    def _drop_accounting(self, key: str, meta: _Meta) -> None:
        self.bytes -= meta.size
        self._tags.discard(key, meta.tags)

    def _load_index(self) -> None:
        found = []
        for path in self.root.glob("*/*"):
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)  # a write interrupted by a crash
                continue
            try:
                with open(path, "rb") as f:
                    header = _parse(f.read())[0]
                st = path.stat()
            except (OSError, ValueError) as e:
                log.warning("L2: removing bad entry %s (%s)", path, e)
                path.unlink(missing_ok=True)
                continue
            found.append((st.st_mtime, header["key"],
                          _Meta(path, st.st_size, header["expires"], tuple(header["tags"]))))
        for _, key, meta in sorted(found, key=lambda t: t[0]):
            self._install(key, meta)


def entry_name(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def write_entry(root: Path, key: str, value: bytes, expires: float, tags: tuple[str, ...],
                fsync: bool, unique: str) -> tuple[Path, int]:
    """Write one entry file (its folder ``root/<2 hex>`` exists) atomically: a temporary
    name made unique by `unique` among concurrent writers, then a rename. Returns the
    entry's path and size."""
    name = entry_name(key)
    folder = root / name[:2]
    header = json.dumps({"key": key, "expires": expires, "tags": list(tags),
                         "length": len(value)}).encode()
    tmp = folder / f".{name}.{unique}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + _HEADER_LEN.pack(len(header)) + header + value)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        path = folder / f"{name}.entry"
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path, len(MAGIC) + _HEADER_LEN.size + len(header) + len(value)


def _parse(data: bytes) -> tuple[dict, bytes]:
    if data[:4] != MAGIC or len(data) < 8:
        raise ValueError("not an L2 entry")
    (hlen,) = _HEADER_LEN.unpack_from(data, 4)
    header = json.loads(data[8:8 + hlen])
    value = data[8 + hlen:]
    if len(value) != header["length"]:
        raise ValueError("truncated entry")
    return header, value
