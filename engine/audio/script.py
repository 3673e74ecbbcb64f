"""A scripted caller: ``key@seconds`` presses become real DTMF tones in the caller's audio, made as they are read.

The tones are never passed around the detector. Memory follows the number of presses, not the script's span.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.audio.stream import NO_SOUND, CallerStream
from engine.core.orders import DTMF_KEYS
from engine.dtmf.tones import dtmf_tone
from engine.errors import ScriptError
from engine.format import SAMPLES_PER_FRAME, ms_to_samples, seconds_to_samples, to_int16

_FRAME = SAMPLES_PER_FRAME

#: A scripted press: a tone of this length at this level per tone (a phone keypad's typical output).
PRESS_TONE_MS = 100
PRESS_LEVEL_DBM0 = -8.0
PRESS_TONE_SAMPLES = ms_to_samples(PRESS_TONE_MS)


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

    __slots__ = ("presses", "_runs", "_solo")

    def __init__(self, presses: list[Press]) -> None:
        super().__init__()  # position_samples: the clock, samples read since the caller was made
        self.presses = tuple(sorted(presses, key=lambda press: press.at_sample))
        self._runs: list[list[int]] = []  # per script sounding: [its request's start (clock), first press not over]
        #: (onset, end, tone): a tone that sounds alone over [onset, end) (clock), read as it is; None: none known
        self._solo: tuple[int, int, np.ndarray] | None = None

    def request_started(self) -> None:
        """Play the script from now on, over whatever of an earlier script still sounds."""
        if self.presses:
            self._solo = None  # the new script may sound over it
            self._runs.append([self.position_samples, 0])
            self._quiet_until = min(self._quiet_until, self.position_samples + self.presses[0].at_sample)

    def _sound_into(self, rows: np.ndarray, row: int, start: int, end: int) -> bool:
        """The scripted tones over samples [``start``, ``end``) of the clock into ``rows[row]``."""
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
        self._quiet_until = next_sound
