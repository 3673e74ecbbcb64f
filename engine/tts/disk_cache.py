"""The speech cache's directory: ``<cache_dir>/tts/<key>.wav``, written atomically, bounded in bytes (LRU).

Entries are 8000 Hz mono 16-bit PCM WAV written with a 44-byte header, 0600 in a 0700 folder (speech can carry
an IVR's personal text: names, balances; a folder an earlier version left open is tightened when the cache opens). A
file is written to a temporary name in the same directory and moved into place with :func:`os.replace`, so a
concurrent reader (thread or process) sees either no file or a whole one. A file that is unreadable, of another
format or shorter than its header says is treated as a miss (and overwritten by the next store).

The directory is bounded: at most ``max_bytes`` (default :data:`DEFAULT_DISK_BYTES`, 512 MiB) of entries. Every
store and every hit stamps the file's access (and modification) time; when a store takes the directory
past the bound, the least recently used entries are removed down to :data:`LOW_WATER` of it (and temporary
files older than :data:`STALE_TMP_S`, left by a crash, go too). Between those sweeps the total is an
estimate kept in memory, so a store costs one directory scan only when the bound is passed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.format import SAMPLE_DTYPE, SAMPLE_RATE_HZ
from engine.private_files import private_dir

log = logging.getLogger(__name__)

#: Bytes of WAV files the disk cache keeps (default of ``max_bytes``): 512 MiB.
DEFAULT_DISK_BYTES = 512 * 1024 * 1024
#: A sweep removes least recently used entries until the directory holds this fraction of ``max_bytes``.
LOW_WATER = 0.9
#: A temporary file older than this (s) is a crash's leftover; a sweep removes it.
STALE_TMP_S = 3600


class DiskCache:
    """WAV files of 8 kHz mono int16 audio under ``<cache_dir>/tts/``, one per key, at most ``max_bytes`` of them.

    ``now_ns``: the wall clock that stamps access times (ns; default :func:`time.time_ns`). Counter:
    ``evictions`` (entries removed by sweeps).
    """

    def __init__(self, cache_dir: Path, max_bytes: int = DEFAULT_DISK_BYTES,
                 now_ns: Callable[[], int] = time.time_ns) -> None:
        if not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"disk_bytes: must be a whole number of bytes >= 0, got {max_bytes!r}")
        self.directory = Path(cache_dir) / "tts"
        self.max_bytes = max_bytes
        self._now_ns = now_ns
        self._last_stamp_ns = 0
        self._held_bytes: int | None = None  # the estimate; None until the first store scans the directory
        self._lock = threading.Lock()
        self.evictions = 0
        self._made = False  # the entries' folder made 0700 by this process
        if self.directory.is_dir():  # an earlier version's open folder
            with contextlib.suppress(OSError):
                self._make_directory()

    def path_for(self, key: str) -> Path:
        """The file that holds (or would hold) the entry ``key``."""
        return self.directory / f"{key}.wav"

    def get(self, key: str) -> np.ndarray | None:
        """The cached samples (read-only), or ``None`` when absent or not a whole, valid entry."""
        path = self.path_for(key)
        try:
            with wave.open(str(path), "rb") as wav:
                if (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) != (1, 2, SAMPLE_RATE_HZ):
                    raise wave.Error("not 8 kHz mono 16-bit")
                frames = wav.getnframes()
                data = wav.readframes(frames)
        except FileNotFoundError:
            return None
        except (OSError, EOFError, wave.Error) as exc:
            log.warning("ignoring unreadable TTS cache file %s: %s", path, exc)
            return None
        if frames == 0 or len(data) != 2 * frames:
            log.warning("ignoring truncated TTS cache file %s", path)
            return None
        samples = np.frombuffer(data, dtype="<i2").astype(SAMPLE_DTYPE, copy=False)
        samples.setflags(write=False)
        self._stamp(path)
        return samples

    def put(self, key: str, samples: np.ndarray) -> None:
        """Store ``samples`` atomically; a failure (read-only or full disk) is logged, never raised."""
        tmp_name = None
        try:
            self._make_directory()
            fd, tmp_name = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=self.directory)  # 0600
            with os.fdopen(fd, "wb") as raw, wave.open(raw, "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(SAMPLE_RATE_HZ)
                wav.writeframes(np.asarray(samples, dtype="<i2").tobytes())
            os.replace(tmp_name, self.path_for(key))
            tmp_name = None
            self._stamp(self.path_for(key))
            self._account(self.path_for(key).stat().st_size)
        except OSError as exc:
            log.warning("could not store TTS cache entry in %s: %s", self.directory, exc)
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)

    def _make_directory(self) -> None:
        """Make the entries' folder 0700 (and the cache's own, when missing), or tighten it to 0700 (once)."""
        if self._made:
            return
        if not self.directory.parent.exists():
            private_dir(self.directory.parent)
        private_dir(self.directory)  # (its files are 0600, as tempfile.mkstemp makes them)
        self._made = True

    @property
    def held_bytes(self) -> int:
        """Bytes of entries in the directory (scanned now when no store has counted them yet)."""
        with self._lock:
            if self._held_bytes is None:
                self._held_bytes = sum(size for _, size, _ in self._entries())
            return self._held_bytes

    def _stamp(self, path: Path) -> None:
        """Mark ``path`` used now (access and modification time; strictly after the previous stamp)."""
        with self._lock:
            stamp = self._last_stamp_ns = max(self._now_ns(), self._last_stamp_ns + 1)
        with contextlib.suppress(OSError):
            os.utime(path, ns=(stamp, stamp))

    def _account(self, added_bytes: int) -> None:
        """Count a stored file; sweep when the directory passes ``max_bytes``."""
        with self._lock:
            if self._held_bytes is None:
                self._held_bytes = sum(size for _, size, _ in self._entries())
            else:
                self._held_bytes += added_bytes
            if self._held_bytes > self.max_bytes:
                self._sweep()

    def _entries(self) -> list[tuple[int, int, Path]]:
        """(access time ns, size, path) of every entry; stale temporary files are removed on the way."""
        entries = []
        stale_before_ns = self._now_ns() - STALE_TMP_S * 1_000_000_000
        with contextlib.suppress(FileNotFoundError), os.scandir(self.directory) as scan:
            for item in scan:
                with contextlib.suppress(FileNotFoundError):
                    info = item.stat(follow_symlinks=False)
                    if item.name.endswith(".wav") and item.is_file(follow_symlinks=False):
                        entries.append((info.st_atime_ns, info.st_size, Path(item.path)))
                    elif item.name.endswith(".tmp") and info.st_mtime_ns < stale_before_ns:
                        os.unlink(item.path)
        return entries

    def _sweep(self) -> None:
        """Remove least recently used entries until at most ``LOW_WATER·max_bytes`` remain (lock held)."""
        entries = sorted(self._entries())
        held = sum(size for _, size, _ in entries)
        for _, size, path in entries:
            if held <= LOW_WATER * self.max_bytes:
                break
            try:
                path.unlink()
            except FileNotFoundError:
                pass  # another process removed it
            except OSError as exc:
                log.warning("could not remove TTS cache file %s: %s", path.name, exc)
                continue
            held -= size
            self.evictions += 1
        self._held_bytes = held
