"""The caller's audio as the media loop reads it: one frame at a time into its row, silent rows left alone."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.format import SAMPLE_DTYPE, SAMPLES_PER_FRAME

_FRAME = SAMPLES_PER_FRAME
#: A sample index past any audio: "nothing sounds any more".
NO_SOUND = sys.maxsize


class CallerStream:
    """The caller's audio, read one frame at a time; subclasses implement :meth:`_sound_into`.

    :meth:`read` is the general reader; the media loop calls :meth:`read_into` instead (see
    :func:`frame_reader`), which does not allocate and does not touch its row while the caller is silent.
    ``position_samples`` counts the samples read; no sample before ``_quiet_until`` sounds (:data:`NO_SOUND`:
    none will until a subclass says so).
    """

    __slots__ = ("position_samples", "_quiet_until", "_wrote_sound")

    def __init__(self, quiet_until: int = NO_SOUND) -> None:
        self.position_samples = 0
        self._quiet_until = quiet_until
        self._wrote_sound = False  # the last frame written may hold sound

    def read_into(self, rows: np.ndarray, row: int) -> bool:
        """Read the next frame (:data:`SAMPLES_PER_FRAME` samples) into ``rows[row]``, the caller's own row.

        Returns True when it wrote the row; False when it left it alone because the row already holds that
        frame: silence, after the caller wrote silence there (a row is silent when it is given to a caller).
        """
        start = self.position_samples
        end = self.position_samples = start + _FRAME
        if end <= self._quiet_until:
            return self._wrote_sound and self._silence(rows, row)
        self._wrote_sound = True
        return self._sound_into(rows, row, start, end)

    def _sound_into(self, rows: np.ndarray, row: int, start: int, end: int) -> bool:
        """Write samples [``start``, ``end``) into ``rows[row]`` (a frame that may sound); returns True."""
        raise NotImplementedError

    def _silence(self, rows: np.ndarray, row: int) -> bool:
        """Write silence into ``rows[row]`` after sound (then leave it alone); returns True."""
        rows[row] = 0
        self._wrote_sound = False
        return True

    def read(self, count: int) -> np.ndarray:
        """The next ``count`` samples of the caller's audio (int16; ``count`` a whole number of frames)."""
        if count % _FRAME:
            raise ValueError(f"count must be a whole number of {_FRAME}-sample frames, got {count}")
        out = np.zeros((count // _FRAME, _FRAME), dtype=SAMPLE_DTYPE)
        for frame in range(len(out)):
            self.read_into(out, frame)
        return out.reshape(-1)

    def request_started(self) -> None:
        """Called when a request starts playing (a caller's audio runs on regardless, unless it is scripted)."""


def frame_reader(caller: object) -> Callable[[np.ndarray, int], bool] | None:
    """The caller's :meth:`CallerStream.read_into`, or None when the caller must be read with ``read``.

    A caller that is no :class:`CallerStream`, or overrides ``read``, is read through ``read``.
    """
    if isinstance(caller, CallerStream) and type(caller).read is CallerStream.read:
        return caller.read_into
    return None


class _Reading:
    """A caller read with its ``read`` (not a :class:`CallerStream`), written into its row."""

    __slots__ = ("_read",)

    def __init__(self, caller: object) -> None:
        self._read = caller.read  # type: ignore[attr-defined]

    def read_into(self, rows: np.ndarray, row: int) -> bool:
        """The caller's next frame into ``rows[row]``."""
        rows[row] = self._read(_FRAME)
        return True


def row_reader(caller: object) -> Any:
    """What the media loop calls ``read_into(rows, row)`` on for ``caller``: itself, or an adapter of its ``read``."""
    return caller if frame_reader(caller) is not None else _Reading(caller)
