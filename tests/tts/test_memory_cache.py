"""The speech cache in memory is bounded in items and in bytes, least recently used out."""

from __future__ import annotations

import numpy as np
import pytest

from engine.tts.cache import MemoryCache


def prompt(samples: int, value: int = 1) -> np.ndarray:
    return np.full(samples, value, dtype=np.int16)


def test_the_memory_cache_is_bounded_in_bytes() -> None:
    cache = MemoryCache(max_items=100, max_bytes=10_000)
    for i in range(10):
        cache.put(f"k{i}", prompt(2000, i))  # 4000 bytes each: two fit
        assert cache.held_bytes <= 10_000
    assert len(cache) == 2 and cache.get("k8") is not None and cache.get("k9") is not None
    assert cache.get("k8") is not None  # now the most recently used
    cache.put("k10", prompt(2000))
    assert cache.get("k9") is None and cache.get("k8") is not None and cache.held_bytes == 8000


def test_an_entry_larger_than_the_bound_is_not_kept_and_replacing_counts_once() -> None:
    cache = MemoryCache(max_items=100, max_bytes=10_000)
    cache.put("huge", prompt(6000))
    assert cache.get("huge") is None and cache.held_bytes == 0
    cache.put("a", prompt(1000))
    cache.put("a", prompt(1000, 2))
    assert cache.held_bytes == 2000 and len(cache) == 1
    cache.clear()
    assert cache.held_bytes == 0 and len(cache) == 0


def test_the_item_bound_still_holds() -> None:
    cache = MemoryCache(max_items=3)
    for i in range(5):
        cache.put(f"k{i}", prompt(10))
    assert len(cache) == 3 and cache.held_bytes == 60


def test_memory_bytes_is_validated() -> None:
    with pytest.raises(ValueError, match="memory_bytes"):
        MemoryCache(4, max_bytes=-1)
