"""S3-FIFO eviction, bounded by bytes (Yang et al., "FIFO queues are all you need for
cache eviction", SOSP 2023).

Three queues: a small FIFO (10% of the bytes) where every new key lands, a main FIFO,
and a ghost FIFO of recently evicted keys (no values). A key leaving the small queue
moves to main only if it was read while there; otherwise it goes to the ghost, and a
key found in the ghost on insert goes straight to main. One-hit wonders of a skewed
trace therefore never push the popular keys out of main: the small queue is the
admission filter. Main evicts FIFO with a 2-bit frequency giving a second chance.

Hits cost a dict lookup and a counter increment (no list reordering as in LRU).
The class holds opaque values and is also used by the planner and the benchmark.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any


class Entry:
    __slots__ = ("value", "size", "expires", "tags", "freq", "in_main")

    def __init__(self, value: Any, size: int, expires: float, tags: tuple[str, ...]) -> None:
        self.value = value
        self.size = size
        self.expires = expires
        self.tags = tags
        self.freq = 0
        self.in_main = False


class S3FIFO:
    def __init__(self, capacity: int, small_ratio: float = 0.1) -> None:
        self.capacity = capacity
        self.small_capacity = max(1, int(capacity * small_ratio))
        self._entries: dict[str, Entry] = {}
        self._small: OrderedDict[str, None] = OrderedDict()
        self._main: OrderedDict[str, None] = OrderedDict()
        self._ghost: OrderedDict[str, None] = OrderedDict()
        self.small_bytes = 0
        self.main_bytes = 0
        self.on_evict: Callable[[str, Entry], None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def keys(self) -> Iterator[str]:
        return iter(list(self._entries))

    @property
    def bytes(self) -> int:
        return self.small_bytes + self.main_bytes

    def get(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.freq < 3:
            entry.freq += 1
        return entry

    def put(self, key: str, entry: Entry) -> bool:
        """Insert or replace; False when the entry is larger than the whole cache."""
        if entry.size > self.capacity:
            self.remove(key)
            return False
        old = self._entries.get(key)
        if old is not None:
            entry.freq, entry.in_main = old.freq, old.in_main
            self._account(old, -1)
            self._entries[key] = entry
            self._account(entry, +1)
        else:
            if key in self._ghost:
                del self._ghost[key]
                entry.in_main = True
                self._main[key] = None
            else:
                self._small[key] = None
            self._entries[key] = entry
            self._account(entry, +1)
        while self.bytes > self.capacity:
            self._evict_one()
        return True

    def remove(self, key: str) -> Entry | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            (self._main if entry.in_main else self._small).pop(key, None)
            self._account(entry, -1)
        return entry

    def clear(self) -> None:
        self._entries.clear()
        self._small.clear()
        self._main.clear()
        self._ghost.clear()
        self.small_bytes = self.main_bytes = 0

    def _account(self, entry: Entry, sign: int) -> None:
        if entry.in_main:
            self.main_bytes += sign * entry.size
        else:
            self.small_bytes += sign * entry.size

    def _evict_one(self) -> None:
        if self._small and (self.small_bytes >= self.small_capacity or not self._main):
            key, _ = self._small.popitem(last=False)
            entry = self._entries[key]
            if entry.freq > 0:  # read while on probation: admit to main
                self.small_bytes -= entry.size
                entry.in_main, entry.freq = True, 0
                self.main_bytes += entry.size
                self._main[key] = None
                return
            self._drop(key, entry)
            self._ghost[key] = None
            while len(self._ghost) > max(len(self._main), 1):
                self._ghost.popitem(last=False)
            return
        key, _ = self._main.popitem(last=False)
        entry = self._entries[key]
        if entry.freq > 0:  # second chance
            entry.freq -= 1
            self._main[key] = None
            return
        self._drop(key, entry)

    def _drop(self, key: str, entry: Entry) -> None:
        del self._entries[key]
        self._account(entry, -1)
        if self.on_evict is not None:
            self.on_evict(key, entry)
