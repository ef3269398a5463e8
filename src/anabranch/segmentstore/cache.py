"""A bounded LRU cache of blocks read from LTS, keyed by (LTS object name, block number).

Owns only bytes that are already in LTS, so an entry can be dropped at any time. LTS object names
are unique per segment incarnation and LTS bytes never change once written, so entries never go
stale; a block read at a segment's end may be short and is re-read when a longer one is needed.
"""

from __future__ import annotations

from collections import OrderedDict


class BlockCache:
    def __init__(self, block_size: int = 1024 * 1024) -> None:
        self.block_size = block_size
        self._blocks: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self.size = 0
        self.hits = 0
        self.misses = 0

    def get(self, name: str, block: int, min_length: int) -> bytes | None:
        """The cached block if it holds at least ``min_length`` bytes."""
        data = self._blocks.get((name, block))
        if data is None or len(data) < min_length:
            self.misses += 1
            return None
        self._blocks.move_to_end((name, block))
        self.hits += 1
        return data

    def put(self, name: str, block: int, data: bytes) -> None:
        old = self._blocks.pop((name, block), None)
        if old is not None:
            self.size -= len(old)
        self._blocks[(name, block)] = data
        self.size += len(data)

    def evict_to(self, limit: int) -> None:
        """Drop least recently used blocks until the cache holds at most ``limit`` bytes."""
        while self.size > limit and self._blocks:
            _, data = self._blocks.popitem(last=False)
            self.size -= len(data)
