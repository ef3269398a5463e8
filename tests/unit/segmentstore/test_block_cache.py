"""The LTS block cache is a segmented LRU: a one-off scan cannot push out blocks that are read again."""

from anabranch.segmentstore.cache import BlockCache


def test_a_block_read_again_survives_a_scan_that_overflows_probation() -> None:
    cache = BlockCache(block_size=100, probation_bytes=300)
    cache.put("hot", 0, b"h" * 100)
    assert cache.get("hot", 0, 100) == b"h" * 100  # second read: promoted
    for block in range(50):  # a scan of 50 blocks read once each
        cache.put("scan", block, b"s" * 100)
    assert cache.size == 100 + 300  # the hot block plus a full probation segment, not 51 blocks
    assert cache.get("hot", 0, 100) == b"h" * 100
    assert cache.get("scan", 0, 100) is None  # the oldest scanned blocks were dropped
    assert cache.get("scan", 49, 100) == b"s" * 100


def test_evict_to_drops_probation_before_protected_blocks() -> None:
    cache = BlockCache(block_size=100)
    cache.put("hot", 0, b"h" * 100)
    cache.get("hot", 0, 1)
    cache.put("cold", 0, b"c" * 100)
    cache.evict_to(100)
    assert cache.get("cold", 0, 1) is None
    assert cache.get("hot", 0, 1) == b"h" * 100
    cache.evict_to(0)
    assert cache.size == 0
    assert cache.get("hot", 0, 1) is None


def test_a_short_block_is_a_miss_and_its_longer_read_replaces_it() -> None:
    cache = BlockCache(block_size=100, probation_bytes=1000)
    cache.put("tail", 0, b"t" * 40)
    assert cache.get("tail", 0, 60) is None
    cache.put("tail", 0, b"t" * 80)
    assert cache.size == 80
    assert cache.get("tail", 0, 60) == b"t" * 80
    cache.put("tail", 0, b"t" * 100)  # replacing a protected block
    assert cache.size == 100
    assert (cache.hits, cache.misses) == (1, 1)
