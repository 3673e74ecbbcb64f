"""Private folders and files: 0700 and 0600 (recordings, the state, the speech cache: voices, an IVR's text)."""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) 0700 if missing; tighten it to 0700 if it exists.

    :class:`NotADirectoryError` when ``path`` is a symbolic link (never followed).
    """
    if path.is_symlink():
        raise NotADirectoryError(f"the folder {path.name!r} is a symbolic link")
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)
    return path
