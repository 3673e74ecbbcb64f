"""The speech cache on disk is bounded in bytes: least recently used entries go first, leftovers are swept."""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from engine.tts.disk_cache import LOW_WATER, STALE_TMP_S, DiskCache
from engine.tts.synthesizer import Synthesizer

SAMPLES = 1000
ENTRY_BYTES = 44 + 2 * SAMPLES  # a 44-byte WAV header and 16-bit samples


def tone(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-3000, 3000, SAMPLES).astype(np.int16)


def on_disk(cache: DiskCache) -> dict[str, int]:
    return {p.stem: p.stat().st_size for p in cache.directory.glob("*.wav")}


def counting_clock(start_ns: int = 10**18) -> itertools.count:
    return itertools.count(start_ns, 1_000_000)  # a millisecond per reading


def test_the_speech_cache_on_disk_is_bounded_in_bytes(tmp_path: Path) -> None:
    ticks = counting_clock()
    cache = DiskCache(tmp_path, max_bytes=5 * ENTRY_BYTES, now_ns=lambda: next(ticks))
    for i in range(40):
        cache.put(f"k{i:02d}", tone(i))
        held = sum(on_disk(cache).values())
        assert held <= cache.max_bytes and held == cache.held_bytes
    assert set(on_disk(cache)) == {f"k{i:02d}" for i in range(36, 40)}  # swept down to 90 %: 4 entries kept
    assert cache.evictions == 36
    assert np.array_equal(cache.get("k39"), tone(39))


def test_least_recently_used_entries_go_first(tmp_path: Path) -> None:
    ticks = counting_clock()
    cache = DiskCache(tmp_path, max_bytes=int(4.5 * ENTRY_BYTES), now_ns=lambda: next(ticks))
    for key in "abcd":
        cache.put(key, tone(ord(key)))
    assert np.array_equal(cache.get("a"), tone(ord("a")))  # a hit: "a" is now the most recently used
    cache.put("e", tone(ord("e")))  # 5 entries > 4.5: down to 90 % of the bound, one entry goes
    assert sorted(on_disk(cache)) == ["a", "c", "d", "e"]
    assert cache.get("b") is None and cache.evictions == 1
    assert sum(on_disk(cache).values()) <= LOW_WATER * cache.max_bytes


def test_a_directory_already_over_the_bound_is_swept_at_the_next_store(tmp_path: Path) -> None:
    ticks = counting_clock()
    big = DiskCache(tmp_path, max_bytes=100 * ENTRY_BYTES, now_ns=lambda: next(ticks))
    for i in range(20):
        big.put(f"k{i:02d}", tone(i))
    small = DiskCache(tmp_path, max_bytes=10 * ENTRY_BYTES, now_ns=lambda: next(ticks))  # another process
    assert small.held_bytes == 20 * ENTRY_BYTES
    small.put("new", tone(99))
    kept = on_disk(small)
    assert sum(kept.values()) <= LOW_WATER * small.max_bytes and "new" in kept and "k00" not in kept
    assert len(kept) == 9 and "k19" in kept


def test_stale_temporary_files_are_swept_and_fresh_ones_kept(tmp_path: Path) -> None:
    now_ns = 10**18
    cache = DiskCache(tmp_path, max_bytes=ENTRY_BYTES, now_ns=lambda: now_ns)
    cache.directory.mkdir(parents=True)
    stale, fresh = cache.directory / ".crashed.tmp", cache.directory / ".writing.tmp"
    for path, age_s in ((stale, STALE_TMP_S + 1), (fresh, 1)):
        path.write_bytes(b"x" * 100)
        os.utime(path, ns=(now_ns - age_s * 10**9,) * 2)
    cache.put("a", tone(1))
    cache.put("b", tone(2))  # over the bound: a sweep
    assert not stale.exists() and fresh.exists()


def test_disk_bytes_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="disk_bytes"):
        DiskCache(tmp_path, max_bytes=-1)


def test_a_synthesizer_keeps_its_disk_cache_within_disk_bytes(tmp_path: Path) -> None:
    speaker = Synthesizer(tmp_path, disk_bytes=40_000)
    texts = ["One moment please.", "Press one for sales.", "Press two for support.", "Goodbye."]
    sizes = [2 * len(speaker.synthesize(text)) + 44 for text in texts]
    held = sum(p.stat().st_size for p in (tmp_path / "tts").glob("*.wav"))
    assert held <= 40_000 < sum(sizes)
    assert speaker.misses == len(texts)


def test_entries_are_0600_in_0700_folders_and_an_older_open_folder_is_tightened_when_opened(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "cache", max_bytes=10 * ENTRY_BYTES)
    cache.put("a", tone(1))
    modes = [stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "cache", cache.directory, cache.path_for("a"))]
    assert modes == [0o700, 0o700, 0o600]
    older = tmp_path / "older" / "tts"
    older.mkdir(parents=True, mode=0o755)
    older.chmod(0o755)  # as an earlier version left it
    reopened = DiskCache(tmp_path / "older", max_bytes=10 * ENTRY_BYTES)
    assert stat.S_IMODE(older.stat().st_mode) == 0o700  # at once: its entries may all be hits from now on
    reopened.put("b", tone(2))
    assert stat.S_IMODE((older / "b.wav").stat().st_mode) == 0o600
    assert np.array_equal(DiskCache(tmp_path / "older").get("b"), tone(2))
