"""The caller's side of a call: the audio the caller sends, in which keys arrive as DTMF tones.

A scripted caller turns ``key@seconds`` presses into real tones in its audio (never passed around the
detector); a file caller reads its audio from a file. Both are read one frame at a time by the media loop.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.audio.decode import load_audio
from engine.core.orders import DTMF_KEYS
from engine.dtmf.tones import place_tones
from engine.errors import ScriptError
from engine.format import SAMPLE_DTYPE, SAMPLES_PER_FRAME, seconds_to_samples

#: A scripted press: a tone of this length at this level per tone (a phone keypad's typical output).
PRESS_TONE_MS = 100
PRESS_LEVEL_DBM0 = -8.0


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


#: ``sound_start`` when nothing sounds any more (an index past any buffer).
NO_SOUND = sys.maxsize


class CallerAudio:
    """The caller's audio from a buffer: ``read(n)`` returns the next ``n`` samples (silence past the end).

    For readers that skip silence (the media loop): every non-zero sample at or after ``position`` lies in
    ``[sound_start, sound_end)`` or in a later stretch of sound (indices into ``samples``; :data:`NO_SOUND` when
    none is left), so a frame ending at or before ``sound_start`` is silent; :meth:`copy_into` reads a frame
    and moves on to the next stretch. A plain buffer is one stretch, the whole of it; ``position`` only moves
    forward (:meth:`read`, the media loop) unless the buffer is replaced.
    """

    # slots: what every tick reads first, in one compact object
    __slots__ = ("position", "sound_start", "sound_end", "_samples", "_sounds")

    def __init__(self, samples: np.ndarray) -> None:
        self.position = 0
        self.samples = samples

    @property
    def samples(self) -> np.ndarray:
        """The whole buffer (int16); setting it assumes sound anywhere in it."""
        return self._samples

    @samples.setter
    def samples(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, dtype=SAMPLE_DTYPE)
        self._load(samples, [(0, len(samples))] if len(samples) else [])

    def _load(self, samples: np.ndarray, sounds: list[tuple[int, int]]) -> None:
        """Take ``samples`` (int16) whose non-zero samples all lie in ``sounds`` (sorted ``(start, end)``)."""
        self._samples = samples
        self._sounds = sounds
        self._seek_sound(self.position)

    def _seek_sound(self, after: int) -> None:
        """Point ``sound_start``/``sound_end`` at the first stretch of sound that ends after index ``after``."""
        for start, end in self._sounds:
            if end > after:
                self.sound_start, self.sound_end = start, end
                return
        self.sound_start = self.sound_end = NO_SOUND

    def read(self, count: int) -> np.ndarray:
        """The next ``count`` samples of the caller's audio."""
        start = self.position
        self.position += count
        chunk = self._samples[start : start + count]
        if len(chunk) == count:
            return chunk
        out = np.zeros(count, dtype=SAMPLE_DTYPE)
        out[: len(chunk)] = chunk
        return out

    def copy_into(self, out: np.ndarray, start: int) -> None:
        """Write samples ``[start, start + len(out))`` into ``out`` (zeros past the end), as :meth:`read` would.

        The samples are as :meth:`read` would return them. Called with consecutive frames (``position`` is the caller's
        to advance).
        """
        samples = self._samples
        end = start + len(out)
        if end <= len(samples):
            out[:] = samples[start:end]
        else:
            out[:] = 0
            if start < len(samples):
                out[: len(samples) - start] = samples[start:]
        if end >= self.sound_end:
            self._seek_sound(end)

    def request_started(self) -> None:
        """A file caller's audio runs on regardless of requests."""


def _merge(sounds: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Stretches ``(start, end)`` sorted, overlapping ones joined."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(sounds):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _stretches(samples: np.ndarray, gap: int = SAMPLES_PER_FRAME) -> list[tuple[int, int]]:
    """The stretches ``(start, end)`` (indices) holding every non-zero sample.

    Split where more than ``gap`` samples are zero.
    """
    nonzero = np.flatnonzero(samples)
    if not len(nonzero):
        return []
    breaks = np.flatnonzero(np.diff(nonzero) > gap)
    starts = [int(nonzero[0]), *(nonzero[breaks + 1]).tolist()]
    ends = [*(nonzero[breaks] + 1).tolist(), int(nonzero[-1]) + 1]
    return list(zip(starts, ends, strict=True))


class ScriptedCaller(CallerAudio):
    """A caller who presses keys as scripted, again for every request.

    ``at_sample`` counts from each request's start. Presses become real DTMF tones of :data:`PRESS_TONE_MS` at
    :data:`PRESS_LEVEL_DBM0`.
    """

    __slots__ = ("script", "_script_sounds")

    def __init__(self, presses: list[Press]) -> None:
        tone_samples = seconds_to_samples(PRESS_TONE_MS / 1000)
        length = max((press.at_sample + tone_samples for press in presses), default=0)
        self.script = place_tones(length, [(p.key, p.at_sample) for p in presses], tone_ms=PRESS_TONE_MS,
                                  level_dbm0=PRESS_LEVEL_DBM0)
        self._script_sounds = _stretches(self.script)
        super().__init__(np.zeros(0, dtype=SAMPLE_DTYPE))

    def request_started(self) -> None:
        """Play the script from now on, mixed over whatever of an earlier script is still sounding.

        Past the end of ``samples`` the caller is silent.
        """
        position = self.position
        sounding = [(max(start - position, 0), end - position) for start, end in self._sounds if end > position]
        self.position = 0
        if not sounding:  # the script as it is, shared by every request
            self._load(self.script, self._script_sounds)
            return
        script = self.script
        tail = sounding[-1][1]  # the earlier audio is silent from here on
        rest = self._samples[position : position + tail]
        if tail <= len(script):
            mixed = script.copy()
        else:
            mixed = np.zeros(tail, dtype=SAMPLE_DTYPE)
            mixed[: len(script)] = script
        if tail <= (self._script_sounds[0][0] if self._script_sounds else NO_SOUND):  # no overlap: no sums
            mixed[:tail] = rest
        else:
            mixed[:tail] = np.clip(rest.astype(np.int32) + mixed[:tail], -32768, 32767)
        self._load(mixed, _merge(sounding + self._script_sounds))


def file_caller(path: str | Path, channel: int = 0) -> CallerAudio:
    """A caller whose audio comes from a file (any format and rate; ``channel`` of a multi-channel file)."""
    return CallerAudio(load_audio(path, channel=channel))
