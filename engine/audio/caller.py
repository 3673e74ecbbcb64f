"""The caller's side of a call: the audio the caller sends, in which keys arrive as DTMF tones.

A scripted caller turns ``key@seconds`` presses into real tones in its audio (never passed around the
detector), generated as the read position reaches them: memory follows the number of presses, not the
script's span. A file caller reads its audio from a decoded buffer. Both are read one frame at a time by the
media loop through :meth:`CallerStream.read_into`, which leaves silent frames untouched.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.audio.decode import load_audio
from engine.core.orders import DTMF_KEYS
from engine.dtmf.tones import dtmf_tone
from engine.errors import EndpointError, ScriptError
from engine.format import SAMPLE_DTYPE, SAMPLES_PER_FRAME, ms_to_samples, seconds_to_samples, to_int16

#: A scripted press: a tone of this length at this level per tone (a phone keypad's typical output).
PRESS_TONE_MS = 100
PRESS_LEVEL_DBM0 = -8.0
PRESS_TONE_SAMPLES = ms_to_samples(PRESS_TONE_MS)
_FRAME = SAMPLES_PER_FRAME
#: A sample index past any audio: "nothing sounds any more".
NO_SOUND = sys.maxsize


@dataclass(frozen=True)
class Press:
    """A key pressed at ``at_sample`` (samples from the start of the request)."""

    key: str
    at_sample: int


def parse_key_script(script: str) -> list[Press]:
    """Parse ``"5@3.2,#@4.0"`` (key ``@`` seconds from the start of the request) into presses, by time.

    An empty script is no presses. Raises :class:`ScriptError` naming the bad item.
    """
    presses: list[Press] = []
    for raw in script.split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, when = item.partition("@")
        key = key.strip()
        if not sep or len(key) != 1 or key not in DTMF_KEYS:
            raise ScriptError(f"key script item {item!r}: expected KEY@SECONDS with KEY one of 0-9 * # A-D")
        try:
            seconds = float(when)
        except ValueError:
            raise ScriptError(f"key script item {item!r}: {when.strip()!r} is not a number of seconds") from None
        if not np.isfinite(seconds) or seconds < 0:
            raise ScriptError(f"key script item {item!r}: seconds must be a finite number >= 0")
        presses.append(Press(key, seconds_to_samples(seconds)))
    return sorted(presses, key=lambda press: press.at_sample)


def script_span_samples(presses: list[Press]) -> int:
    """Samples from a request's start to the end of its script's last tone (0 without presses)."""
    return max((press.at_sample for press in presses), default=-PRESS_TONE_SAMPLES) + PRESS_TONE_SAMPLES


class CallerStream:
    """The caller's audio, read one frame at a time; subclasses implement :meth:`read_into`.

    :meth:`read` is the general reader; the media loop calls :meth:`read_into` instead (see
    :func:`frame_reader`), which does not allocate and does not touch its row while the caller is silent.
    """

    __slots__ = ()

    def read_into(self, rows: np.ndarray, row: int) -> bool:
        """Read the next frame (:data:`SAMPLES_PER_FRAME` samples) into ``rows[row]``, the caller's own row.

        Returns True when it wrote the row; False when it left it alone because the row already holds that
        frame: silence, after the caller wrote silence there (a row is silent when it is given to a caller).
        """
        raise NotImplementedError

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


class CallerAudio(CallerStream):
    """The caller's audio from a buffer (int16): silence past its end."""

    __slots__ = ("position_samples", "_samples", "_sound_start", "_sound_end", "_wrote_sound")

    def __init__(self, samples: np.ndarray) -> None:
        self.position_samples = 0  # samples read so far
        self._samples = np.asarray(samples, dtype=SAMPLE_DTYPE)
        self._sound_start, self._sound_end = (0, len(self._samples)) if len(self._samples) else (NO_SOUND, NO_SOUND)
        self._wrote_sound = False  # the last frame written may hold sound

    @property
    def samples(self) -> np.ndarray:
        """The whole buffer (int16)."""
        return self._samples

    def read_into(self, rows: np.ndarray, row: int) -> bool:
        """Copy the next frame of the buffer into ``rows[row]`` (zeros past its end); False once past it and written."""
        start = self.position_samples
        end = self.position_samples = start + _FRAME
        if end <= self._sound_start:
            if not self._wrote_sound:
                return False
            rows[row] = 0
            self._wrote_sound = False
            return True
        self._wrote_sound = True
        out = rows[row]
        samples = self._samples
        if end <= len(samples):
            out[:] = samples[start:end]
        else:
            out[:] = 0
            if start < len(samples):
                out[: len(samples) - start] = samples[start:]
        if end >= self._sound_end:
            self._sound_start = self._sound_end = NO_SOUND
        return True


_TONES: dict[tuple[str, bool], np.ndarray] = {}


def _press_tone(key: str, rounded: bool) -> np.ndarray:
    """The tone of one scripted press of ``key`` (:data:`PRESS_TONE_SAMPLES` long; float, or int16 ``rounded``)."""
    tone = _TONES.get((key, rounded))
    if tone is None:
        tone = dtmf_tone(key, PRESS_TONE_MS, PRESS_LEVEL_DBM0)[:PRESS_TONE_SAMPLES]
        tone = _TONES[key, rounded] = to_int16(tone) if rounded else tone
        tone.setflags(write=False)
    return tone


class ScriptedCaller(CallerStream):
    """A caller who presses keys as scripted, again for every request (``at_sample`` from each request's start).

    Presses become real DTMF tones of :data:`PRESS_TONE_MS` at :data:`PRESS_LEVEL_DBM0`, generated when the
    read position reaches them. The tones of one request's script are summed and saturated as
    :func:`~engine.dtmf.tones.place_tones` does; a script still sounding when the next request starts is mixed
    with the new one (summed in int32 and saturated, oldest first). Memory: the presses and one cursor per
    script still sounding.
    """

    __slots__ = ("presses", "_clock", "_runs", "_next_sound", "_solo", "_wrote_sound")

    def __init__(self, presses: list[Press]) -> None:
        self.presses = tuple(sorted(presses, key=lambda press: press.at_sample))
        self._clock = 0  # samples read since the caller was made
        self._runs: list[list[int]] = []  # per script sounding: [its request's start (clock), first press not over]
        self._next_sound = NO_SOUND  # no sample before this one sounds (clock)
        #: (onset, end, tone): a tone that sounds alone over [onset, end) (clock), read as it is; None: none known
        self._solo: tuple[int, int, np.ndarray] | None = None
        self._wrote_sound = False  # the last frame written may hold sound

    def request_started(self) -> None:
        """Play the script from now on, over whatever of an earlier script still sounds."""
        if self.presses:
            self._solo = None  # the new script may sound over it
            self._runs.append([self._clock, 0])
            self._next_sound = min(self._next_sound, self._clock + self.presses[0].at_sample)

    def read_into(self, rows: np.ndarray, row: int) -> bool:
        """The next frame of the scripted tones into ``rows[row]``; False (untouched) while nothing sounds."""
        start = self._clock
        end = self._clock = start + _FRAME
        if end <= self._next_sound:
            if not self._wrote_sound:
                return False
            rows[row] = 0
            self._wrote_sound = False
            return True
        self._wrote_sound = True
        solo = self._solo
        if solo is not None and solo[0] <= start < solo[1]:  # inside a tone sounding alone: its samples as they are
            onset, stop, tone = solo
            if end < stop:
                rows[row] = tone[start - onset : end - onset]
                return True
            out = rows[row]
            out[: stop - start] = tone[start - onset :]
            out[stop - start :] = 0
            self._solo = None
            self._advance(end)
            return True
        return self._mix_into(rows[row], start, end)

    def _mix_into(self, out: np.ndarray, start: int, end: int) -> bool:
        """Write the frame ``[start, end)`` of every script sounding into ``out``."""
        pieces = self._pieces(start, end)
        if len(pieces) == 1 and len(pieces[0]) == 1:  # one tone alone: its int16 samples as they are
            onset, key = pieces[0][0]
            low, high = max(onset, start), min(onset + PRESS_TONE_SAMPLES, end)
            if low > start or high < end:
                out[:] = 0
            tone = _press_tone(key, True)
            out[low - start : high - start] = tone[low - onset : high - onset]
            if high == onset + PRESS_TONE_SAMPLES:  # it ended in this frame
                self._advance(end)
            elif self._alone(onset):
                self._solo = (onset, onset + PRESS_TONE_SAMPLES, tone)
            return True
        mixed: np.ndarray | None = None
        for tones in pieces:  # each script summed as place_tones does, then the scripts mixed oldest first
            part = np.zeros(end - start)
            for onset, key in tones:
                low, high = max(onset, start), min(onset + PRESS_TONE_SAMPLES, end)
                part[low - start : high - start] += _press_tone(key, False)[low - onset : high - onset]
            script = to_int16(part).astype(np.int32)
            mixed = script if mixed is None else np.clip(mixed + script, -32768, 32767)
        out[:] = 0 if mixed is None else mixed
        self._advance(end)
        return True

    def _alone(self, onset: int) -> bool:
        """True when the tone starting at ``onset`` (the only one sounding now) sounds alone to its end.

        That is, no press of any script still to come starts before the frame in which it ends is over.
        """
        presses, count = self.presses, len(self.presses)
        stop = onset + PRESS_TONE_SAMPLES + _FRAME
        for base, first in self._runs:
            for index in (first, first + 1):
                if index < count and onset != base + presses[index].at_sample < stop:
                    return False
        return True

    def _pieces(self, start: int, end: int) -> list[list[tuple[int, str]]]:
        """Per script sounding in ``[start, end)``, oldest first: its tones there as (onset, key).

        Moves every script's cursor past the presses over by ``start``.
        """
        presses, count = self.presses, len(self.presses)
        pieces: list[list[tuple[int, str]]] = []
        for run in self._runs:
            base, first = run
            while first < count and base + presses[first].at_sample + PRESS_TONE_SAMPLES <= start:
                first += 1
            run[1] = first
            tones = []
            while first < count and base + presses[first].at_sample < end:
                tones.append((base + presses[first].at_sample, presses[first].key))
                first += 1
            if tones:
                pieces.append(tones)
        return pieces

    def _advance(self, end: int) -> None:
        """Move every script's cursor past the presses over by ``end``; drop the scripts that are over.

        Sets the next sample that may sound.
        """
        presses, count = self.presses, len(self.presses)
        next_sound = NO_SOUND
        for run in self._runs:
            base, first = run
            while first < count and base + presses[first].at_sample + PRESS_TONE_SAMPLES <= end:
                first += 1
            run[1] = first
            if first < count:
                next_sound = min(next_sound, base + presses[first].at_sample)
        if any(run[1] == count for run in self._runs):
            self._runs = [run for run in self._runs if run[1] < count]
        self._next_sound = next_sound


def file_caller(path: str | Path, channel: int = 0) -> CallerAudio:
    """A caller whose audio comes from a file (any format and rate; ``channel`` of a multi-channel file)."""
    return CallerAudio(load_audio(path, channel=channel))


def make_caller(keys: str = "", audio: str | None = None, *, names: tuple[str, str] = ("keys", "callerWav"),
                resolve: Callable[[str], str | Path] | None = None) -> CallerStream:
    """The caller a request names: scripted ``keys``, the ``audio`` file, or a silent caller (neither).

    ``names``: how the two fields are called in messages (``--keys``/``--caller`` on the command line);
    ``resolve(audio)``: the file's path (the server's voice library; default: ``audio`` as it is). Raises
    :class:`~engine.errors.EndpointError` naming the field (both given, a bad script, undecodable audio).
    """
    keys_name, audio_name = names
    if keys and audio:
        raise EndpointError(keys_name, f"give {keys_name} or {audio_name}, not both")
    if audio:
        path = resolve(audio) if resolve is not None else audio
        try:
            return file_caller(path)
        except ValueError:  # AudioDecodeError, or a channel the file does not have
            raise EndpointError(audio_name, f"{audio!r} is not decodable audio") from None
    if keys:
        try:
            return ScriptedCaller(parse_key_script(keys))
        except ScriptError as exc:
            raise EndpointError(keys_name, str(exc)) from None
    return CallerAudio(np.zeros(0, dtype=SAMPLE_DTYPE))
