"""L2 on local disk: one SQLite database, bounded by bytes (oldest out, with a second
chance for entries read near the end of their life), surviving restarts.

Layout: ``<root>/l2.sqlite`` (write-ahead log beside it). One row per entry, numbered
in write order, holding a 64-bit hash of its key (indexed: the lookup), the key itself,
the expiry time, the ids of its tags, the value, and a checksum (BLAKE2b-64 over key,
expiry, tags and value). Every read compares the stored key with the key asked for and
recomputes the checksum: an entry that fails is never served; it is dropped and counted
(`corrupt`). Tags are numbered in a small table, and a (tag, entry) table finds the
entries of a tag without a scan.

Rows are appended in write order, so SQLite fills its pages completely, and eviction
deletes the oldest rows, which frees whole pages that the next writes reuse: the disk
use stays close to the data (`bench/l2_store.py`). An entry read while it is among the
oldest quarter is written again at the end (a second chance, as CLOCK gives), so hot
entries are not evicted for their age alone. Opening costs the same whatever the size:
nothing is scanned (the entry count and data bytes are kept in a `meta` table, updated
with every write). `disk_bytes` (`bytes` in `stats()`) is the database's real size on
disk (pages in use); `data_bytes` the keys, values and tags it holds.

Reads are synchronous on the caller's connection: a prediction value is a few hundred
bytes in the page cache, cheaper to read than a thread hop, and with the write-ahead log
a read never waits for a writer. Writes go through a write-behind queue drained by a
background task, a burst per transaction in a worker thread (`start()`): when fewer than
`WRITE_BATCH` writes are waiting, the first one waits `WRITE_LINGER_S` for others, so a
steady trickle of misses costs one transaction per 10 ms rather than one each, and a
full batch is written at once. A write is in SQLite (and, with fsync, durable) at most
`WRITE_LINGER_S` plus one transaction after `put_later`; a crash in between loses it
(the entry is fetched again on its next miss). `drain()` waits until the queue is empty;
`close()` drains first.
Purges and flushes write directly (taking the writer's lock).
"""

from __future__ import annotations

import asyncio
import builtins  # the class below has a `bytes` property
import hashlib
import logging
import sqlite3
import struct
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
WRITE_QUEUE = 4096  # pending writes beyond this are dropped (counted) under overload
WRITE_LINGER_S = 0.01
WRITE_BATCH = 256  # writes per transaction at most
DB_FILE = "l2.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY, hash INTEGER NOT NULL, key TEXT NOT NULL,
    expires REAL NOT NULL, tags TEXT NOT NULL, checksum INTEGER NOT NULL,
    value BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS entries_hash ON entries (hash);
CREATE TABLE IF NOT EXISTS tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS tagged (
    tag INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (tag, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_EXPIRES = struct.Struct("<d")
Found = tuple[bytes, float, tuple[str, ...]]
Row = tuple[int, str, str, bytes]  # seq, key, tag ids, value: what a delete accounts


def key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little",
                          signed=True)


def checksum(key: str, expires: float, tags: str, value: bytes) -> int:
    h = hashlib.blake2b(digest_size=8)
    for part in (key.encode(), _EXPIRES.pack(expires), tags.encode()):
        h.update(len(part).to_bytes(4, "little"))
        h.update(part)
    h.update(value)
    return int.from_bytes(h.digest(), "little", signed=True)


class DiskL2:
    def __init__(self, root: Path, capacity_bytes: int, fsync: bool = True) -> None:
        self.root = Path(root)
        self.capacity = capacity_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / DB_FILE
        self._lock = threading.Lock()  # one writer at a time: the queue's thread or a purge
        self._db = self._connect(fsync)  # writes (under _lock)
        self._db.executescript(_SCHEMA)
        self._reader = self._connect(fsync)  # reads, on the caller's thread
        self._page_size = _pragma(self._db, "page_size")
        meta = dict(self._db.execute("SELECT name, value FROM meta"))
        self.entries = meta.get("entries", 0)
        self.data_bytes = meta.get("data_bytes", 0)
        # one aggregate per query: SQLite reads min/max of the rowid from the tree's ends
        # only then (both in one query would scan the table)
        first = self._db.execute("SELECT min(seq) FROM entries").fetchone()[0]
        last = self._db.execute("SELECT max(seq) FROM entries").fetchone()[0]
        self._first_seq, self._next_seq = first or 1, (last or 0) + 1
        self._tag_names: dict[int, str] = dict(self._db.execute("SELECT id, name FROM tags"))
        self._tag_ids = {name: i for i, name in self._tag_names.items()}
        self._bad: set[int] = set()  # corrupt entries found, being dropped
        self.errors = 0
        self.corrupt = 0
        self.dropped_writes = 0
        self._queue: asyncio.Queue | None = None
        self._writer: asyncio.Task | None = None

    def _connect(self, fsync: bool) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                             timeout=30.0)
        # auto_vacuum takes effect only on a new database: pages freed by a purge go back
        # to the file system at `incremental_vacuum`, instead of staying in the file.
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {'FULL' if fsync else 'NORMAL'}")
        return db

    @property
    def disk_bytes(self) -> int:
        """Bytes of the database on disk that hold data (pages in use, not free ones)."""
        return _used_bytes(self._reader, self._page_size)

    # -- reads -----------------------------------------------------------------------
    def get(self, key: str) -> Found | None:
        try:
            rows = self._reader.execute(
                "SELECT seq, key, expires, tags, checksum, value FROM entries WHERE hash = ?",
                (key_hash(key),)).fetchall()
        except sqlite3.Error as e:
            self.errors += 1
            log.warning("L2 read failed: %s", e)
            return None
        for seq, stored_key, expires, tags, check, value in rows:
            if seq in self._bad:
                continue
            if checksum(stored_key, expires, tags, value) != check:
                self._drop_corrupt(seq, key)
            elif stored_key == key:
                found = value, expires, self._names(tags)
                if seq < self._first_seq + (self._next_seq - self._first_seq) // 4:
                    self.put_later(key, *found)  # read while old: a second chance
                return found
        return None

    def _drop_corrupt(self, seq: int, key: str) -> None:
        self.corrupt += 1
        self._bad.add(seq)
        log.warning("L2 entry %d (looked up as %r) fails its checksum; dropped", seq, key)
        self._write(lambda db: self._delete(db, "seq = ?", (seq,)))

    def _names(self, tags: str) -> tuple[str, ...]:
        return tuple(self._tag_names.get(int(t), "") for t in tags.split())

    # -- writes ----------------------------------------------------------------------
    def start(self) -> None:
        self._queue = asyncio.Queue(WRITE_QUEUE)
        self._writer = asyncio.create_task(self._write_loop())

    def put_later(self, key: str, value: builtins.bytes, expires: float,
                  tags: tuple[str, ...]) -> None:
        """Queue a write; without a started writer (tools, tests) write synchronously."""
        if self._queue is None:
            self._write_many([(key, value, expires, tags)])
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
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._reader.close()
        self._db.close()

    async def _write_loop(self) -> None:
        """Write everything queued in one transaction per wake-up, in a worker thread."""
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            if self._queue.qsize() < WRITE_BATCH - 1:  # a full batch does not wait
                await asyncio.sleep(WRITE_LINGER_S)
            while not self._queue.empty() and len(batch) < WRITE_BATCH:
                batch.append(self._queue.get_nowait())
            try:
                await asyncio.to_thread(self._write_many, batch)
            except Exception:  # noqa: BLE001 - the writer must outlive any one bad batch
                self.errors += 1
                log.exception("L2 writer: batch of %d entries lost", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _write_many(self, batch: list[tuple[str, builtins.bytes, float, tuple[str, ...]]]) -> None:
        latest = {key: (value, expires, tags) for key, value, expires, tags in batch}

        def write(db: sqlite3.Connection) -> None:
            hashes = [(key_hash(k),) for k in latest]
            for (h,) in hashes:  # a replaced entry (or one with the same hash) goes first
                self._delete(db, "hash = ?", (h,))
            rows, tagged, added = [], [], 0
            for (h,), (key, (value, expires, tags)) in zip(hashes, latest.items(),
                                                            strict=True):
                tag_ids = " ".join(str(self._tag_id(db, t)) for t in tags)
                seq = self._next_seq
                self._next_seq += 1
                rows.append((seq, h, key, expires, tag_ids,
                             checksum(key, expires, tag_ids, value), value))
                tagged += [(int(t), seq) for t in tag_ids.split()]
                added += _size(key, tag_ids, value)
            db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            db.executemany("INSERT INTO tagged VALUES (?, ?)", tagged)
            self._account(db, len(rows), added)
            self._evict(db)
        self._write(write)

    def _write(self, change: Callable[[sqlite3.Connection], int | None]) -> int:
        """Run `change(db)` in one transaction; returns its count (0 when it failed)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = change(self._db)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                self.errors += 1
                log.warning("L2 write failed: %s", e)
                meta = dict(self._db.execute("SELECT name, value FROM meta"))
                self.entries = meta.get("entries", 0)
                self.data_bytes = meta.get("data_bytes", 0)
                return 0
        return result or 0

    def _tag_id(self, db: sqlite3.Connection, name: str) -> int:
        tid = self._tag_ids.get(name)
        if tid is None:
            tid = db.execute("INSERT INTO tags (name) VALUES (?)", (name,)).lastrowid
            assert tid is not None
            self._tag_ids[name], self._tag_names[tid] = tid, name
        return tid

    def _account(self, db: sqlite3.Connection, entries: int, data_bytes: int) -> None:
        self.entries += entries
        self.data_bytes += data_bytes
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                       [("entries", self.entries), ("data_bytes", self.data_bytes)])

    def _evict(self, db: sqlite3.Connection) -> None:
        """The oldest entries out until the pages in use fit the capacity."""
        while self.entries:
            used = _used_bytes(db, self._page_size)
            if used <= self.capacity:
                return
            count = (used - self.capacity) * self.entries // used + 16
            cut = db.execute("SELECT seq FROM entries ORDER BY seq LIMIT 1 OFFSET ?",
                             (min(count, self.entries - 1),)).fetchone()[0]
            self._delete(db, "seq < ?", (max(cut, self._first_seq + 1),))

    def _delete(self, db: sqlite3.Connection, where: str, args: tuple) -> int:
        rows: list[Row] = db.execute(
            f"SELECT seq, key, tags, value FROM entries WHERE {where}", args).fetchall()
        if not rows:
            return 0
        db.execute(f"DELETE FROM entries WHERE {where}", args)
        db.executemany("DELETE FROM tagged WHERE tag = ? AND seq = ?",
                       [(int(t), seq) for seq, _, tags, _ in rows for t in tags.split()])
        self._account(db, -len(rows), -sum(_size(k, t, v) for _, k, t, v in rows))
        self._bad.difference_update(seq for seq, *_ in rows)
        first = db.execute("SELECT min(seq) FROM entries").fetchone()[0]
        self._first_seq = first or self._next_seq
        return len(rows)

    # -- purges ----------------------------------------------------------------------
    def delete(self, key: str) -> int:
        """The entry under `key` (and any other with its hash)."""
        return self._write(lambda db: self._delete(db, "hash = ?", (key_hash(key),)))

    def purge_prefix(self, prefix: str) -> int:
        """Entries whose key starts with `prefix` (a scan of the keys)."""
        return self._release(self._write(lambda db: self._delete(
            db, "substr(key, 1, ?) = ?", (len(prefix), prefix))))

    def purge_tag(self, tag: str) -> int:
        tid = self._tag_ids.get(tag)
        if tid is None:
            return 0
        return self._release(self._write(lambda db: self._delete(
            db, "seq IN (SELECT seq FROM tagged WHERE tag = ?)", (tid,))))

    def flush(self) -> int:
        return self._release(self._write(lambda db: self._delete(db, "1", ())))

    def _release(self, removed: int) -> int:
        """Give the pages a purge freed back to the file system."""
        if removed:
            with self._lock:
                self._db.execute("PRAGMA incremental_vacuum")
        return removed

    def stats(self) -> dict:
        return {"kind": "disk", "entries": self.entries, "bytes": self.disk_bytes,
                "data_bytes": self.data_bytes, "capacity_bytes": self.capacity,
                "errors": self.errors, "corrupt": self.corrupt,
                "dropped_writes": self.dropped_writes}


def _pragma(db: sqlite3.Connection, name: str) -> int:
    return int(db.execute(f"PRAGMA {name}").fetchone()[0])


def _used_bytes(db: sqlite3.Connection, page_size: int) -> int:
    return (_pragma(db, "page_count") - _pragma(db, "freelist_count")) * page_size


def _size(key: str, tags: str, value: bytes) -> int:
    return len(key.encode()) + len(tags) + len(value)
