"""Where a call's audio goes: memory (render), a WAV file, or nowhere. Each gets both directions per frame."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
import soundfile as sf

from engine.format import SAMPLE_RATE_HZ

#: ``--encoding`` name → libsndfile WAV subtype.
ENCODINGS = {"pcm16": "PCM_16", "ulaw": "ULAW", "alaw": "ALAW"}


class Sink(Protocol):
    """Receives, once per tick, the frame played to the caller and the frame heard from the caller."""

    def write(self, played: np.ndarray, heard: np.ndarray) -> None:
        """Take one tick's frame played to the caller and the frame heard from the caller."""

    def close(self) -> None:
        """Finish after the last ``write``: release or write out whatever the sink holds."""


class NullSink:
    """Plays into nothing (load tests)."""

    def write(self, played: np.ndarray, heard: np.ndarray) -> None:
        """Discard both frames."""

    def close(self) -> None:
        """Nothing to close."""


class LazySink:
    """A sink made by ``make()`` on its first ``write`` or ``close``: nothing is opened for a call played elsewhere.

    (A ``wav:`` call placed on a media worker hands its file over unwritten: the worker makes the WAV.)
    """

    def __init__(self, make: Callable[[], Sink]) -> None:
        self._make = make
        self._sink: Sink | None = None

    def _made(self) -> Sink:
        if self._sink is None:
            self._sink = self._make()
            self.write = self._sink.write  # type: ignore[method-assign]  # later frames go straight to it
        return self._sink

    def write(self, played: np.ndarray, heard: np.ndarray) -> None:
        """Make the sink, then write both frames to it."""
        self._made().write(played, heard)

    def close(self) -> None:
        """Make the sink (a call that played no frame still leaves its empty file), then close it."""
        self._made().close()


class MemorySink:
    """Keeps every frame: ``played()`` and ``heard()`` return the whole streams."""

    def __init__(self) -> None:
        self._played: list[np.ndarray] = []
        self._heard: list[np.ndarray] = []

    def write(self, played: np.ndarray, heard: np.ndarray) -> None:
        """Keep both frames (they are copied: callers may reuse their buffers)."""
        self._played.append(played.copy())
        self._heard.append(heard.copy())

    def played(self) -> np.ndarray:
        """Everything played to the caller, int16."""
        return np.concatenate(self._played) if self._played else np.zeros(0, np.int16)

    def heard(self) -> np.ndarray:
        """Everything heard from the caller, int16."""
        return np.concatenate(self._heard) if self._heard else np.zeros(0, np.int16)

    def close(self) -> None:
        """Nothing to close."""


def write_wav(path: str | Path, played: np.ndarray, heard: np.ndarray | None = None,
              encoding: str = "pcm16") -> None:
    """Write 8 kHz WAV: mono ``played``, or stereo with ``heard`` (the caller) on the second channel."""
    data = played if heard is None else np.column_stack([played, heard])
    sf.write(str(path), data, SAMPLE_RATE_HZ, subtype=ENCODINGS[encoding], format="WAV")


class WavSink:
    """Records a call to a WAV file as it plays: played audio on channel 1, the caller's on channel 2.

    ``target``: a path, or a file already open for reading and writing (``w+b``, e.g. one
    :func:`engine.server.vault.open_recording` opened safely); the sink owns it and closes it on :meth:`close`.
    """

    def __init__(self, target: str | Path | BinaryIO, encoding: str = "pcm16") -> None:
        self._owned: BinaryIO | None = None
        if isinstance(target, str | Path):
            self.path: Path | None = Path(target)
            where: str | BinaryIO = str(self.path)
        else:
            self.path, where, self._owned = None, target, target
        try:
            self._file = sf.SoundFile(where, "w", SAMPLE_RATE_HZ, 2, ENCODINGS[encoding], format="WAV")
        except BaseException:
            if self._owned is not None:
                self._owned.close()
            raise

    def write(self, played: np.ndarray, heard: np.ndarray) -> None:
        """Append one frame of each direction."""
        self._file.write(np.column_stack([played, heard]))

    def close(self) -> None:
        """Finish the file (its header is written on close), then close the file object it was given."""
        if not self._file.closed:
            self._file.close()
        if self._owned is not None:
            self._owned.close()
