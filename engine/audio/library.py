"""The voice library: ``playFlag`` 1 paths resolved inside one root folder, decoded once per version, cached.

Nothing outside the root is ever read: absolute paths, ``..`` components and links that point out of the
root are refused with a :class:`MediaError` (``108100``) naming the field; messages show the path as the
caller gave it (shortened), never an absolute path. A file is opened one component at a time from the root
with ``O_NOFOLLOW`` (a link swapped in after the check is refused, not followed) and ``O_NONBLOCK`` (a FIFO
does not hang the open); only regular files are decoded.

Decodes are bounded (:func:`~engine.audio.decode.decode_audio`: ``max_file_seconds``, ``max_file_bytes``) and
shared: one decode per file version (path, modification time in ns, size, inode); concurrent first loads
of one version wait for the decode in progress. Results, refusals included, are kept in an LRU bounded by
``cache_bytes`` (samples' bytes; a refusal counts :data:`REFUSAL_BYTES`); a file changed on disk is a new
version, decoded again, and the old version's entry is dropped.
"""

from __future__ import annotations

import os
import stat
import threading
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

import numpy as np

from engine.audio.decode import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_FILE_SECONDS,
    AudioDecodeError,
    check_decode_limits,
    decode_audio,
)
from engine.errors import MediaError
from engine.single_flight import SingleFlight

#: The project's own ``voices/`` folder, the default root.
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "voices"
#: Bytes of decoded audio the library keeps in memory (default of ``cache_bytes``): 256 MiB.
DEFAULT_CACHE_BYTES = 256 * 1024 * 1024
#: What a cached refusal counts against ``cache_bytes``.
REFUSAL_BYTES = 256
_SHOWN_CHARS = 80  # a path in a message is cut to this many characters
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

#: A decoded file (read-only samples) or why it was refused (the message after the path).
Entry = np.ndarray | str


class Version(NamedTuple):
    """One version of one file: what a decode is shared and cached by."""

    path: Path
    mtime_ns: int
    size: int
    inode: int


def shown(relative: str) -> str:
    """``relative`` as messages show it: quoted, cut to :data:`_SHOWN_CHARS` characters."""
    return repr(relative if len(relative) <= _SHOWN_CHARS else relative[:_SHOWN_CHARS] + "…")


class VoiceLibrary:
    """Audio files under ``root``, decoded to the call's format, shared and cached.

    ``max_file_seconds`` (default 600 s of audio) and ``max_file_bytes`` (default 64 MiB on disk) bound each
    decode; ``cache_bytes`` (default 256 MiB) bounds the decoded audio kept. Counters: ``decodes`` (decodes
    started), ``hits`` (loads served from the cache), ``waits`` (loads that waited for another's decode).
    """

    def __init__(self, root: str | Path = DEFAULT_ROOT, *, max_file_seconds: float = DEFAULT_MAX_FILE_SECONDS,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(f"voice library root {self.root} is not a folder")
        check_decode_limits(max_file_seconds, max_file_bytes)
        if not isinstance(cache_bytes, int) or cache_bytes < 0:
            raise ValueError(f"cache_bytes: must be a whole number of bytes >= 0, got {cache_bytes!r}")
        self.max_file_seconds = max_file_seconds
        self.max_file_bytes = max_file_bytes
        self.cache_bytes = cache_bytes
        self._entries: OrderedDict[Version, Entry] = OrderedDict()
        self._latest: dict[Path, Version] = {}
        self._flights: SingleFlight[Entry] = SingleFlight()
        self._held_bytes = 0
        self._lock = threading.Lock()
        self.decodes = self.hits = self.waits = 0

    @property
    def held_bytes(self) -> int:
        """Bytes the cache holds now (samples, and :data:`REFUSAL_BYTES` per refusal)."""
        return self._held_bytes

    def stats(self) -> dict[str, int]:
        """Counters and the cache's size, for status pages: decodes, hits, waits, entries, held and bound bytes."""
        with self._lock:
            return {"decodes": self.decodes, "hits": self.hits, "waits": self.waits, "entries": len(self._entries),
                    "held_bytes": self._held_bytes, "cache_bytes": self.cache_bytes}

    def resolve(self, relative: str, field: str = "voiceStr") -> Path:
        """The file ``relative`` names inside the root; ``MediaError`` naming ``field`` when it is not one."""
        if "\x00" in relative:
            raise MediaError(field, "the path contains a NUL character")
        candidate = Path(relative)
        if candidate.is_absolute() or relative.startswith(("/", "\\")):
            raise MediaError(field, f"{shown(relative)} is absolute; paths are relative to the voice library")
        if ".." in candidate.parts:
            raise MediaError(field, f"{shown(relative)} contains '..'; paths stay inside the voice library")
        try:
            path = (self.root / candidate).resolve()
            if not path.is_relative_to(self.root):
                raise MediaError(field, f"{shown(relative)} is a link that points outside the voice library")
            if not path.is_file():
                raise MediaError(field, f"{shown(relative)} does not exist in the voice library")
        except (OSError, RuntimeError) as exc:  # a name too long, a folder without permission; a loop of links
            why = exc.strerror if isinstance(exc, OSError) else "a loop of links"
            raise MediaError(field, f"{shown(relative)} cannot be found in the voice library ({why})") from None
        return path

    def load(self, relative: str, field: str = "voiceStr") -> np.ndarray:
        """Decode ``relative`` to 8 kHz mono int16 (read-only array, shared between callers).

        Raises :class:`MediaError` naming ``field`` when the path is refused, the file is not decodable audio or
        it passes a limit (the message names the limit).
        """
        path = self.resolve(relative, field)
        fd = self._open(path, relative, field)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise MediaError(field, f"{shown(relative)} is not a regular file")
            entry = self._shared(Version(path, info.st_mtime_ns, info.st_size, info.st_ino), fd)
        finally:
            os.close(fd)
        if isinstance(entry, str):
            raise MediaError(field, f"{shown(relative)} {entry}")
        return entry

    def _open(self, path: Path, relative: str, field: str) -> int:
        """Open ``path`` (inside the root) one component at a time, following no link."""
        *folders, name = path.relative_to(self.root).parts
        try:
            folder_fd = os.open(self.root, _DIR_FLAGS)
        except OSError as exc:
            raise MediaError(field, f"the voice library cannot be opened ({exc.strerror})") from None
        try:
            for folder in folders:
                inner_fd = os.open(folder, _DIR_FLAGS, dir_fd=folder_fd)
                os.close(folder_fd)
                folder_fd = inner_fd
            return os.open(name, _FILE_FLAGS, dir_fd=folder_fd)
        except OSError as exc:
            raise MediaError(field, f"{shown(relative)} cannot be opened inside the voice library "
                                    f"({exc.strerror})") from None
        finally:
            os.close(folder_fd)

    def _shared(self, version: Version, fd: int) -> Entry:
        """The entry of ``version``: cached, awaited from the decode in progress, or decoded from ``fd`` now."""
        with self._lock:
            entry = self._entries.get(version)
            if entry is not None:
                self._entries.move_to_end(version)
                self.hits += 1
                return entry
            owner, pending = self._flights.claim(version)
            if owner:
                self.decodes += 1
            else:
                self.waits += 1
        if not owner:
            return pending.result()
        return self._flights.run(version, pending, lambda: self._decode_and_store(version, fd))

    def _decode_and_store(self, version: Version, fd: int) -> Entry:
        entry = self._decode(fd)
        self._store(version, entry)
        return entry

    def _decode(self, fd: int) -> Entry:
        try:
            samples = decode_audio(fd, max_file_seconds=self.max_file_seconds, max_file_bytes=self.max_file_bytes)
        except AudioDecodeError as exc:
            return str(exc)
        samples.setflags(write=False)
        return samples

    def _store(self, version: Version, entry: Entry) -> None:
        """Keep ``entry`` (dropping the path's older version and the least recently used beyond the bound)."""
        size = entry.nbytes if isinstance(entry, np.ndarray) else REFUSAL_BYTES
        with self._lock:
            older = self._latest.get(version.path)
            if older is not None and older != version:
                self._drop(older)
            if size > self.cache_bytes:
                return
            self._entries[version] = entry
            self._latest[version.path] = version
            self._held_bytes += size
            while self._held_bytes > self.cache_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, version: Version) -> None:
        entry = self._entries.pop(version, None)
        if entry is not None:
            self._held_bytes -= entry.nbytes if isinstance(entry, np.ndarray) else REFUSAL_BYTES
        if self._latest.get(version.path) == version:
            del self._latest[version.path]
