"""A key the DTMF detector accepted: where it starts, when it was decided, its level and twist."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from engine.format import dbm0_to_peak

_PEAK_0_DBM0 = dbm0_to_peak(0.0)


@dataclass(frozen=True)
class KeyEvent:
    """A detected key.

    ``start_sample``: estimated onset of the tone; ``detected_sample``: end of the window that confirmed it; both in
    samples since the channel's start. :attr:`level_dbm0` (of the stronger tone, from its largest window) and
    :attr:`twist_db` (from the mean amplitudes) follow :func:`~engine.dtmf.tones.dtmf_tone`'s convention; both are
    measured up to the window that accepted the key (NaN when unknown).
    """

    key: str
    start_sample: int
    detected_sample: int
    peak: float = math.nan  #: peak amplitude of the stronger tone, int16 units
    low_over_high: float = math.nan  #: ratio of the tones' mean amplitudes, low / high

    @property
    def level_dbm0(self) -> float:
        """The stronger tone's level, dBm0 (2 decimals)."""
        return round(20 * math.log10(self.peak / _PEAK_0_DBM0), 2)

    @property
    def twist_db(self) -> float:
        """Low − high tone level, dB (2 decimals; negative: reverse twist)."""
        return round(20 * math.log10(self.low_over_high), 2)


def clamped(events: list[KeyEvent], length_samples: int) -> list[KeyEvent]:
    """``events`` of a buffer of ``length_samples`` flushed with silence, ``detected_sample`` at most its length."""
    return [e if e.detected_sample <= length_samples else dataclasses.replace(e, detected_sample=length_samples)
            for e in events]
