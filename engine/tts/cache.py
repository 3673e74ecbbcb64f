"""What sits between espeak and the caller: trimming, the sha256 key, an LRU of arrays, a directory of WAVs.

Disk entries (:mod:`engine.tts.disk_cache`) are ``<cache_dir>/tts/<key>.wav``, at most ``disk_bytes`` of them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.audio.decode import to_call_format
from engine.format import SAMPLE_DTYPE, SAMPLE_RATE_HZ
from engine.single_flight import SingleFlight
from engine.tts.disk_cache import DEFAULT_DISK_BYTES, DiskCache

#: Bump when the processing between espeak and the cache changes (trimming, resampling, file layout).
CACHE_FORMAT_VERSION = 1
EDGE_MARGIN_MS = 50  # near-silence kept before the first and after the last loud sample
SILENCE_THRESHOLD = 33  # int16 units, ≈ −60 dBFS
#: Bytes of samples the memory cache keeps (default of ``memory_bytes``): 128 MiB.
DEFAULT_MEMORY_BYTES = 128 * 1024 * 1024


def default_cache_dir() -> Path:
    """``$IPCC_CACHE_DIR``, else ``$XDG_CACHE_HOME/ipcc-engine``, else ``~/.cache/ipcc-engine``."""
    if os.environ.get("IPCC_CACHE_DIR"):
        return Path(os.environ["IPCC_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "ipcc-engine"
    return Path.home() / ".cache" / "ipcc-engine"


def trim_to_margin(samples: np.ndarray, rate_hz: int = SAMPLE_RATE_HZ, margin_ms: float = EDGE_MARGIN_MS,
                   threshold: int = SILENCE_THRESHOLD) -> np.ndarray:
    """Cut leading/trailing near-silence (int16 ``|x| <= threshold``) down to ``margin_ms`` each side."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    if len(loud) == 0:
        return samples
    margin = int(round(margin_ms * rate_hz / 1000))
    return samples[max(0, loud[0] - margin): loud[-1] + 1 + margin]


def wav_to_native(wav: bytes) -> tuple[np.ndarray, int]:
    """Espeak's WAV → (int16 samples at espeak's rate, that rate in Hz), trimmed by :func:`trim_to_margin`."""
    data, rate_hz = sf.read(io.BytesIO(wav), dtype="int16")
    return trim_to_margin(data, rate_hz), rate_hz


def wav_to_prompt(wav: bytes) -> np.ndarray:
    """Espeak's WAV → the call's format (soxr), trimmed by :func:`trim_to_margin` after the conversion."""
    data, rate_hz = sf.read(io.BytesIO(wav), dtype="int16")
    return trim_to_margin(to_call_format(data, rate_hz))


def cache_key(fields: dict[str, object]) -> str:
    """The sha256 hex digest of ``fields`` as canonical JSON (sorted keys); every field that changes audio."""
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def frozen(samples: np.ndarray) -> np.ndarray:
    """A private, contiguous, read-only int16 copy of ``samples`` (cache entries are shared by callers)."""
    out = np.array(samples, dtype=SAMPLE_DTYPE, copy=True, order="C")
    out.setflags(write=False)
    return out


class MemoryCache:
    """A thread-safe LRU of read-only arrays: at most ``max_items`` of them and ``max_bytes`` of samples.

    ``max_items`` ``0`` disables it; ``max_bytes`` defaults to :data:`DEFAULT_MEMORY_BYTES` (128 MiB). An array
    larger than ``max_bytes`` is not kept.
    """

    def __init__(self, max_items: int, max_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
        if max_items < 0:
            raise ValueError(f"memory_items: must be >= 0, got {max_items}")
        if not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"memory_bytes: must be a whole number of bytes >= 0, got {max_bytes!r}")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.held_bytes = 0
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        """Return the entry ``key`` (marking it most recently used), or None."""
        with self._lock:
            samples = self._items.get(key)
            if samples is not None:
                self._items.move_to_end(key)
            return samples

    def put(self, key: str, samples: np.ndarray) -> None:
        """Store ``samples`` under ``key``, evicting the least recently used beyond either bound."""
        if self.max_items == 0 or samples.nbytes > self.max_bytes:
            return
        with self._lock:
            replaced = self._items.pop(key, None)
            if replaced is not None:
                self.held_bytes -= replaced.nbytes
            self._items[key] = samples
            self.held_bytes += samples.nbytes
            while len(self._items) > self.max_items or self.held_bytes > self.max_bytes:
                self.held_bytes -= self._items.popitem(last=False)[1].nbytes

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._items.clear()
            self.held_bytes = 0

    def __len__(self) -> int:
        return len(self._items)


class PromptCache:
    """Memory LRU (``memory_items``, ``memory_bytes``) before an optional disk directory (``disk_bytes``), coalescing.

    While one thread makes an entry, others asking for the same key wait for it. Counters: ``misses`` (entries made),
    ``memory_hits`` (including waits on another thread's entry), ``disk_hits``.
    """

    def __init__(self, cache_dir: Path | None, memory_items: int, disk_bytes: int = DEFAULT_DISK_BYTES,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
        self._memory = MemoryCache(memory_items, memory_bytes)
        self._disk = DiskCache(cache_dir, disk_bytes) if cache_dir is not None else None
        self._lock = threading.Lock()
        self._flights: SingleFlight[np.ndarray] = SingleFlight()
        self.closed = False
        self.misses = 0
        self.memory_hits = 0
        self.disk_hits = 0

    def get_or_make(self, key: str, make: Callable[[], np.ndarray]) -> np.ndarray:
        """The entry ``key``; on a miss ``frozen(make())``, stored in memory and on disk."""
        samples = self._memory.get(key)
        with self._lock:
            if samples is not None:
                self.memory_hits += 1
                return samples
            owner, pending = self._flights.claim(key)
        if not owner:
            samples = pending.result()
            with self._lock:
                self.memory_hits += 1
            return samples
        return self._flights.run(key, pending, lambda: self._load_or_make(key, make))

    def peek(self, key: str) -> np.ndarray | None:
        """The entry ``key`` if it is in memory now (a memory hit), else None; never makes nor loads it."""
        samples = self._memory.get(key)
        if samples is not None:
            with self._lock:
                self.memory_hits += 1
        return samples

    def _load_or_make(self, key: str, make: Callable[[], np.ndarray]) -> np.ndarray:
        samples = self._disk.get(key) if self._disk is not None else None
        if samples is not None:
            with self._lock:
                self.disk_hits += 1
        else:
            samples = frozen(make())
            with self._lock:
                self.misses += 1
            if self._disk is not None:
                self._disk.put(key, samples)
        self._memory.put(key, samples)
        return samples

    def close(self) -> None:
        """Drop the memory entries and mark the cache closed (its owner refuses calls; disk files stay)."""
        with self._lock:
            self.closed = True
        self._memory.clear()
