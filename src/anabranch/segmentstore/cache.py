"""A bounded, scan-resistant cache of blocks read from LTS, keyed by (LTS object name, block number).

Owns only bytes that are already in LTS, so an entry can be dropped at any time. LTS object names
are unique per segment incarnation and LTS bytes never change once written, so entries never go
stale; a block read at a segment's end may be short and is re-read when a longer one is needed.

It is a segmented LRU: a block read once waits in a *probation* segment bounded to
``probation_bytes``; only a block read again moves to the *protected* segment, which the container
bounds with ``evict_to``. A one-off scan (the controller's startup sweep reading every stream's
table once, a reader catching up through a long segment) therefore cycles through probation and
cannot push out the blocks that are read again and again, nor fill the whole cache budget.
"""

from __future__ import annotations

from collections import OrderedDict

Key = tuple[str, int]


class BlockCache:
    def __init__(self, block_size: int = 1024 * 1024, probation_bytes: int | None = None) -> None:
        self.block_size = block_size
        self._probation_limit = probation_bytes
        self._probation: OrderedDict[Key, bytes] = OrderedDict()
        self._protected: OrderedDict[Key, bytes] = OrderedDict()
        self._probation_size = 0
        self.size = 0
        self.hits = 0
        self.misses = 0

    def get(self, name: str, block: int, min_length: int) -> bytes | None:
        """The cached block if it holds at least ``min_length`` bytes (a hit in probation promotes it)."""
        key = (name, block)
        data = self._protected.get(key)
        if data is not None and len(data) >= min_length:
            self._protected.move_to_end(key)
            self.hits += 1
            return data
        data = self._probation.get(key)
        if data is not None and len(data) >= min_length:
            del self._probation[key]
            self._probation_size -= len(data)
            self._protected[key] = data
            self.hits += 1
            return data
        self.misses += 1
        return None

    def put(self, name: str, block: int, data: bytes) -> None:
        """Keep a block just read from LTS (in probation, replacing any shorter copy)."""
        key = (name, block)
        old = self._protected.pop(key, None)
        if old is not None:
            self.size -= len(old)
        old = self._probation.pop(key, None)
        if old is not None:
            self.size -= len(old)
            self._probation_size -= len(old)
        self._probation[key] = data
        self._probation_size += len(data)
        self.size += len(data)
        if self._probation_limit is not None:
            while self._probation_size > self._probation_limit and len(self._probation) > 1:
                self._drop_oldest(self._probation, probation=True)

    def evict_to(self, limit: int) -> None:
        """Drop blocks until the cache holds at most ``limit`` bytes: probation first, then the protected LRU."""
        while self.size > limit and self._probation:
            self._drop_oldest(self._probation, probation=True)
        while self.size > limit and self._protected:
            self._drop_oldest(self._protected, probation=False)

    def _drop_oldest(self, blocks: OrderedDict[Key, bytes], *, probation: bool) -> None:
        _, data = blocks.popitem(last=False)
        self.size -= len(data)
        if probation:
            self._probation_size -= len(data)
