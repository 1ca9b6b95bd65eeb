"""`TagIndex`: which keys carry each tag, so a tier can purge by tag without a scan."""

from __future__ import annotations

from collections.abc import Iterable


class TagIndex:
    def __init__(self) -> None:
        self._keys: dict[str, set[str]] = {}

    def add(self, key: str, tags: Iterable[str]) -> None:
        for tag in tags:
            self._keys.setdefault(tag, set()).add(key)

    def discard(self, key: str, tags: Iterable[str]) -> None:
        """Forget `key` under each of `tags`; a tag left with no keys is dropped."""
        for tag in tags:
            keys = self._keys.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys[tag]

    def keys(self, tag: str) -> list[str]:
        """The keys under `tag`, as a list: safe to iterate while deleting them."""
        return list(self._keys.get(tag, ()))

    def clear(self) -> None:
        self._keys.clear()
