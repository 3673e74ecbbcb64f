"""The voice library: ``playFlag`` 1 paths resolved inside one root folder, decoded once, cached.

Nothing outside the root is ever read: absolute paths, ``..`` that leaves the root and links that point out
of it are refused with a :class:`MediaError` (``108100``) naming the path.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from engine.audio.decode import AudioDecodeError, load_audio
from engine.errors import MediaError

#: The project's own ``voices/`` folder, the default root.
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "voices"


class VoiceLibrary:
    """Audio files under ``root``, decoded to the call's format and cached by (path, size, mtime).

    ``cache_items``: how many decoded files stay in memory (least recently used are dropped).
    """

    def __init__(self, root: str | Path = DEFAULT_ROOT, cache_items: int = 128) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(f"voice library root {self.root} is not a folder")
        self._cache: OrderedDict[tuple[Path, int, int], np.ndarray] = OrderedDict()
        self._cache_items = cache_items
        self._lock = threading.Lock()

    def resolve(self, relative: str, field: str = "voiceStr") -> Path:
        """The file ``relative`` names inside the root; ``MediaError`` naming ``field`` when it is not one."""
        if "\x00" in relative:
            raise MediaError(field, "the path contains a NUL character")
        candidate = Path(relative)
        if candidate.is_absolute() or relative.startswith(("/", "\\")):
            raise MediaError(field, f"{relative!r} is absolute; paths are relative to the voice library")
        path = (self.root / candidate).resolve()
        if not path.is_relative_to(self.root):
            raise MediaError(field, f"{relative!r} leaves the voice library")
        if not path.is_file():
            raise MediaError(field, f"{relative!r} does not exist in the voice library")
        return path

    def load(self, relative: str, field: str = "voiceStr") -> np.ndarray:
        """Decode ``relative`` to 8 kHz mono int16 (read-only array, shared between callers)."""
        path = self.resolve(relative, field)
        stat = path.stat()
        key = (path, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        try:
            samples = load_audio(path)
        except AudioDecodeError:
            raise MediaError(field, f"{relative!r} is not decodable audio") from None
        samples.setflags(write=False)
        with self._lock:
            self._cache[key] = samples
            while len(self._cache) > self._cache_items:
                self._cache.popitem(last=False)
        return samples
