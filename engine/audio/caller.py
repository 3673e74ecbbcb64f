"""The caller's side of a call: the audio the caller sends, in which keys arrive as DTMF tones.

A scripted caller (:mod:`engine.audio.script`) turns ``key@seconds`` presses into real tones; a file caller reads
its audio from a decoded buffer; :func:`make_caller` makes the one a request names. All are read one frame at a
time by the media loop (:mod:`engine.audio.stream`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.audio.decode import load_audio
from engine.audio.script import PRESS_TONE_SAMPLES, Press, ScriptedCaller, parse_key_script, script_span_samples
from engine.audio.stream import NO_SOUND, CallerStream, frame_reader
from engine.errors import EndpointError, ScriptError
from engine.format import SAMPLE_DTYPE, SAMPLES_PER_FRAME

_FRAME = SAMPLES_PER_FRAME

__all__ = ["PRESS_TONE_SAMPLES", "CallerAudio", "CallerStream", "Press", "ScriptedCaller", "file_caller",
           "frame_reader", "make_caller", "parse_key_script", "script_span_samples"]


class CallerAudio(CallerStream):
    """The caller's audio from a buffer (int16): silence past its end."""

    __slots__ = ("_samples", "_sound_end")

    def __init__(self, samples: np.ndarray) -> None:
        self._samples = np.asarray(samples, dtype=SAMPLE_DTYPE)
        super().__init__(0 if len(self._samples) else NO_SOUND)
        self._sound_end = len(self._samples) if len(self._samples) else NO_SOUND

    @property
    def samples(self) -> np.ndarray:
        """The whole buffer (int16)."""
        return self._samples

    def _sound_into(self, rows: np.ndarray, row: int, start: int, end: int) -> bool:
        """Copy samples [``start``, ``end``) of the buffer into ``rows[row]`` (zeros past its end)."""
        out = rows[row]
        samples = self._samples
        if end <= len(samples):
            out[:] = samples[start:end]
        else:
            out[:] = 0
            if start < len(samples):
                out[: len(samples) - start] = samples[start:]
        if end >= self._sound_end:
            self._quiet_until = self._sound_end = NO_SOUND
        return True


def file_caller(path: str | Path, channel: int = 0) -> CallerAudio:
    """A caller whose audio comes from a file (any format and rate; ``channel`` of a multi-channel file)."""
    return CallerAudio(load_audio(path, channel=channel))


def make_caller(keys: str = "", audio: str | None = None, *, names: tuple[str, str] = ("keys", "callerWav"),
                load: Callable[[str], np.ndarray] | None = None) -> CallerStream:
    """The caller a request names: scripted ``keys``, the ``audio`` file, or a silent caller (neither).

    ``names``: how the two fields are called in messages (``--keys``/``--caller`` on the command line);
    ``load(audio)``: the file's samples in the call's format (the server's voice library, which bounds, shares
    and confines the decode, and refuses naming the field; default: ``audio`` decoded as a path). Raises
    :class:`~engine.errors.EndpointError` naming the field (both given, a bad script, undecodable audio).
    """
    keys_name, audio_name = names
    if keys and audio:
        raise EndpointError(keys_name, f"give {keys_name} or {audio_name}, not both")
    if audio and load is not None:
        return CallerAudio(load(audio))
    if audio:
        try:
            return file_caller(audio)
        except ValueError:  # AudioDecodeError, or a channel the file does not have
            raise EndpointError(audio_name, f"{audio!r} is not decodable audio") from None
    if keys:
        try:
            return ScriptedCaller(parse_key_script(keys))
        except ScriptError as exc:
            raise EndpointError(keys_name, str(exc)) from None
    return CallerAudio(np.zeros(0, dtype=SAMPLE_DTYPE))
