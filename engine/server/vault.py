"""Secure files: recordings opened inside a per-application folder, never through a symlink, never over a file.

:func:`open_recording` is what ``wav:NAME`` opens (``engine/server/endpoints.py``: ``WavSink`` writes into the
file object). Folders are created 0700, files 0600; a recording is opened with
``O_CREAT | O_EXCL | O_NOFOLLOW``, so a symlink planted at its name, or an existing recording (of this
application: other applications have their own folder), is refused. :func:`private_dir` makes a state folder 0700.
:func:`create_private` opens any such new file by its path (a SIP call's recording, in the call's media
process). Error messages name the recording, never an absolute path.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import BinaryIO

from engine.errors import EndpointError
from engine.private_files import FILE_MODE
from engine.private_files import private_dir as private_folder

_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")


def private_dir(path: Path) -> Path:
    """:func:`engine.private_files.private_dir`; a symlink is :class:`EndpointError` (``108100`` naming ``called``)."""
    try:
        return private_folder(path)
    except NotADirectoryError as exc:
        raise EndpointError("called", str(exc)) from None


def app_folder_name(app_id: str) -> str:
    """A folder name for ``app_id``: itself when it is a plain name, else a digest of it."""
    if _SAFE.fullmatch(app_id) and ".." not in app_id:
        return app_id
    return "app-" + hashlib.sha256(app_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def open_recording(root: Path, app_id: str, name: str) -> BinaryIO:
    """A new recording ``name`` of ``app_id`` under ``root``, opened for reading and writing (``w+b``, 0600).

    ``name`` must be a plain file name (the endpoint checked it). :class:`EndpointError` (``108100`` naming
    ``called``) when it exists already, is a symlink, or cannot be created.
    """
    if not _FILE.fullmatch(name) or ".." in name:
        raise EndpointError("called", f"the recording name {name[:40]!r} is not a plain file name")
    return create_private(app_dir(root, app_id) / name)


def app_dir(root: Path, app_id: str) -> Path:
    """The folder of ``app_id``'s recordings under ``root``, both made (or tightened to) 0700."""
    return private_dir(private_dir(root) / app_folder_name(app_id))


def create_private(path: Path) -> BinaryIO:
    """A new file at ``path`` (0600), opened for reading and writing (``w+b``); never over a file or a symlink.

    :class:`EndpointError` (``108100`` naming ``called``, the message naming the file, not its folder) when it
    exists already, is a symlink, or cannot be created.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileExistsError:
        raise EndpointError("called", f"the recording {path.name!r} exists already") from None
    except OSError as exc:  # ELOOP: a symlink at the name
        raise EndpointError("called", f"the recording {path.name!r} cannot be created ({exc.strerror})") from None
    return os.fdopen(fd, "w+b")
