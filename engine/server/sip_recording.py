"""A SIP call's recording (``[sip] record``): the RTP session and a WAV of both directions, written together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.media.sinks import WavSink
from engine.server.vault import app_dir, create_private


class Tee:
    """The RTP session, and a recording of both directions."""

    def __init__(self, first: Any, second: WavSink) -> None:
        self.first, self.second = first, second

    def write(self, played: np.ndarray, heard: np.ndarray) -> None:
        """One frame each way to both."""
        self.first.write(played, heard)
        self.second.write(played, heard)

    def close(self) -> None:
        """Close both."""
        self.first.close()
        self.second.close()


def recording_path(recordings: Path, app_id: str, call_id: str) -> tuple[Path, str]:
    """Where a SIP call's recording goes (its folders made 0700): the path and the one relative to ``recordings``.

    The file is created 0600 by :func:`engine.server.vault.create_private` (here, or in the call's media process).
    """
    folder = app_dir(recordings, app_id)
    path = folder / f"sip-{call_id}.wav"
    return path, path.relative_to(recordings).as_posix()


def recorded(session: Any, recordings: Path, app_id: str, call_id: str) -> tuple[Any, str]:
    """``session`` teed into ``<recordings>/<app>/sip-<call_id>.wav``; returns the sink and that relative path."""
    path, recording = recording_path(recordings, app_id, call_id)
    return Tee(session, WavSink(create_private(path))), recording
