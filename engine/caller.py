"""The caller's side of a call: the audio the caller sends, in which keys arrive as DTMF tones.

A scripted caller turns ``key@seconds`` presses into real tones in its audio (never passed around the
detector); a file caller reads its audio from a file. Both are read one frame at a time by the media loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import load_audio
from .format import SAMPLE_DTYPE, seconds_to_samples
from .orders import DTMF_KEYS
from .tones import place_tones

#: A scripted press: a tone of this length at this level per tone (a phone keypad's typical output).
PRESS_TONE_MS = 100
PRESS_LEVEL_DBM0 = -8.0


class ScriptError(ValueError):
    """A ``--keys`` script item is malformed; the message names it."""


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


class CallerAudio:
    """The caller's audio from a buffer: ``read(n)`` returns the next ``n`` samples (silence past the end)."""

    def __init__(self, samples: np.ndarray) -> None:
        self.samples = np.asarray(samples, dtype=SAMPLE_DTYPE)
        self.position = 0

    def read(self, count: int) -> np.ndarray:
        """The next ``count`` samples of the caller's audio."""
        start = self.position
        self.position += count
        chunk = self.samples[start : start + count]
        if len(chunk) == count:
            return chunk
        out = np.zeros(count, dtype=SAMPLE_DTYPE)
        out[: len(chunk)] = chunk
        return out

    def request_started(self) -> None:
        """A file caller's audio runs on regardless of requests."""


class ScriptedCaller(CallerAudio):
    """A caller who presses keys as scripted, again for every request: ``at_sample`` counts from each
    request's start. Presses become real DTMF tones of :data:`PRESS_TONE_MS` at :data:`PRESS_LEVEL_DBM0`.
    """

    def __init__(self, presses: list[Press]) -> None:
        tone_samples = seconds_to_samples(PRESS_TONE_MS / 1000)
        length = max((press.at_sample + tone_samples for press in presses), default=0)
        self.script = place_tones(length, [(p.key, p.at_sample) for p in presses], tone_ms=PRESS_TONE_MS,
                                  level_dbm0=PRESS_LEVEL_DBM0)
        super().__init__(np.zeros(0, dtype=SAMPLE_DTYPE))

    def request_started(self) -> None:
        """Play the script from now on (mixed over whatever of an earlier script is still sounding)."""
        rest = self.samples[self.position :]
        mixed = np.zeros(max(len(rest), len(self.script)), dtype=np.int32)
        mixed[: len(rest)] += rest
        mixed[: len(self.script)] += self.script
        self.samples = np.clip(mixed, -32768, 32767).astype(SAMPLE_DTYPE)
        self.position = 0


def file_caller(path: str | Path, channel: int = 0) -> CallerAudio:
    """A caller whose audio comes from a file (any format and rate; ``channel`` of a multi-channel file)."""
    return CallerAudio(load_audio(path, channel=channel))
