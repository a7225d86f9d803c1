import numpy as np
import pytest

from segzero_env.segmenters.cache import ByteLRUCache, image_digest


def test_lru_order_and_byte_bound():
    cache = ByteLRUCache(max_bytes=100)
    for key in "abc":
        assert cache.put(key, key.upper(), nbytes=30)
    assert cache.get("a") == "A"  # a becomes most recent; b is now the oldest
    assert cache.put("d", "D", nbytes=30)
    assert "b" not in cache and {"a", "c", "d"} <= {k for k in "abcd" if k in cache}
    assert cache.current_bytes == 90 <= cache.max_bytes and cache.evictions == 1
    assert cache.put("e", "E", nbytes=70)  # needs two evictions: c then a
    assert len(cache) == 2 and "d" in cache and "e" in cache and cache.current_bytes == 100


def test_oversized_values_are_not_stored_and_zero_disables():
    cache = ByteLRUCache(max_bytes=10)
    cache.put("small", 1, nbytes=5)
    assert not cache.put("big", 2, nbytes=11)
    assert "big" not in cache and "small" in cache
    off = ByteLRUCache(max_bytes=0)
    assert not off.put("x", 1, nbytes=1) and len(off) == 0


def test_replacing_a_key_updates_its_size_and_counters():
    cache = ByteLRUCache(max_bytes=10)
    cache.put("k", 1, nbytes=8)
    cache.put("k", 2, nbytes=3)
    assert cache.current_bytes == 3 and cache.get("k") == 2 and cache.get("missing") is None
    assert (cache.hits, cache.misses) == (1, 1)
    cache.clear()
    assert len(cache) == 0 and cache.current_bytes == 0
    with pytest.raises(ValueError, match="max_bytes"):
        ByteLRUCache(-1)


def test_digest_sees_every_pixel_and_the_shape():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 48, 3), dtype=np.uint8)
    changed = image.copy()
    changed[63, 47, 2] ^= 1
    assert image_digest(image) == image_digest(image.copy())
    assert image_digest(image) != image_digest(changed)
    assert image_digest(image) != image_digest(image.reshape(48, 64, 3))
    assert image_digest(image[:, ::2]) == image_digest(np.ascontiguousarray(image[:, ::2]))
