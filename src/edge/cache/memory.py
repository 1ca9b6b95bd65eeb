"""L1 in process memory: S3-FIFO bounded by bytes, with a tag index for purges."""

from __future__ import annotations

from edge.cache.s3fifo import S3FIFO, Entry
from edge.cache.tags import TagIndex

ENTRY_OVERHEAD = 120  # bytes of Python objects per entry, counted against the bound


class MemoryL1:
    kind = "memory"

    def __init__(self, capacity_bytes: int) -> None:
        self._policy = S3FIFO(capacity_bytes)
        self._policy.on_evict = self._forget_tags
        self._tags = TagIndex()
        self.errors = 0  # memory never fails; kept for the common tier interface
        self.ok = True

    async def get(self, key: str) -> tuple[bytes, float] | None:
        entry = self._policy.get(key)
        return None if entry is None else (entry.value, entry.expires)

    async def set(self, key: str, value: bytes, expires: float, tags: tuple[str, ...]) -> None:
        old = self._policy.remove(key)
        if old is not None:
            self._forget_tags(key, old)
        if self._policy.put(key, Entry(value, len(value) + len(key) + ENTRY_OVERHEAD,
                                       expires, tags)):
            self._tags.add(key, tags)

    async def delete(self, key: str) -> int:
        entry = self._policy.remove(key)
        if entry is None:
            return 0
        self._forget_tags(key, entry)
        return 1

    async def purge_prefix(self, prefix: str) -> int:
        return sum([await self.delete(k) for k in self._policy.keys() if k.startswith(prefix)])

    async def purge_tag(self, tag: str) -> int:
        return sum([await self.delete(k) for k in self._tags.keys(tag)])

    async def flush(self) -> int:
        n = len(self._policy)
        self._policy.clear()
        self._tags.clear()
        return n

    def stats(self) -> dict:
        return {"kind": self.kind, "ok": True, "entries": len(self._policy),
                "bytes": self._policy.bytes, "capacity_bytes": self._policy.capacity}

    async def close(self) -> None:
        pass

    def _forget_tags(self, key: str, entry: Entry) -> None:
        self._tags.discard(key, entry.tags)
