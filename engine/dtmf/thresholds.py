"""Every threshold of the DTMF detector, in one place (ITU-T Q.24 as Asterisk and spandsp apply it).

The other modules of :mod:`engine.dtmf` import these names and point here instead of restating the values. Levels
are in dBm0 (a full-scale sine is +3.14 dBm0), deviations relative to the nominal frequency, times in samples at
8 kHz (5 ms = 40 samples, one hop of the analysis windows).

Per window (:mod:`engine.dtmf.analysis`):

* :data:`GATE_LEVEL_DBM0`, :data:`GATE_FRACTION`: windows quieter than the gate, or whose strongest low and high
  bins hold too small a share of their power, are not analysed;
* :data:`STRICT_FRACTION`, :data:`STRICT_DEVIATION`: a *strict* window holds the two tones at that share of its
  power, each tone within that deviation.

Per run of windows with the same candidate key (:mod:`engine.dtmf.decision`):

* :data:`MIN_TONE_SAMPLES`: the tone's measured duration (40 ms tones pass, 23 ms ones never do);
* :data:`MAX_DEVIATION`, :data:`MAX_DIFFERENTIAL_DEVIATION`: the strict windows' mean deviation of each tone,
  and of the two tones from each other;
* :data:`MIN_TOTAL_LEVEL_DBM0`: the two tones' total power;
* :data:`MAX_NORMAL_TWIST_DB`, :data:`MAX_REVERSE_TWIST_DB`: the level difference of the two tones;
* :data:`LOUD_FAILURE_FRACTION`: no non-strict (but measurable) window that loud relative to the tone (talk-off);
* :data:`MISSES_TO_END`, :data:`HOLD_FRACTION`: when an accepted key ends (drop-outs bridged, pauses separate).
"""

from __future__ import annotations

#: Analysis gate: windows whose total power is under this (dBm0) are not analysed.
GATE_LEVEL_DBM0 = -38.0
#: Analysis gate: the strongest low + high bins must hold this share of the window's power (uncorrected).
GATE_FRACTION = 0.45
#: A strict window: the corrected two-tone power holds at least this share of the window's power ...
STRICT_FRACTION = 0.75
#: ... and each tone is within this relative deviation of its nominal frequency.
STRICT_DEVIATION = 0.03

#: Minimum measured tone duration (samples): 27 ms, between the 23 ms rejected and the 40 ms accepted.
MIN_TONE_SAMPLES = 216
#: Maximum amplitude-weighted mean deviation of each tone over the strict windows (Q.24 accepts ±1.5 %,
#: rejects ±3.5 %).
MAX_DEVIATION = 0.025
#: Maximum difference of the two tones' mean deviations: ±1.5 % each makes at most 3 %; a note and its octave
#: over a 1.917 pair of keys (2, 6, C) make 4.3 %.
MAX_DIFFERENTIAL_DEVIATION = 0.035
#: Minimum total power of the two tones (dBm0): −29.5 dBm0 per tone at zero twist; −26 accepted, −33 rejected.
MIN_TOTAL_LEVEL_DBM0 = -26.5
#: Maximum normal twist (dB, the high tone weaker): halfway between the 8 dB accepted and the 10 dB rejected.
MAX_NORMAL_TWIST_DB = 9.0
#: Maximum reverse twist (dB, the low tone weaker): halfway between the 4 dB accepted and the 6 dB rejected.
MAX_REVERSE_TWIST_DB = 5.0
#: A non-strict, measurable window at this fraction of the tone's amplitude (both tones) vetoes the run.
LOUD_FAILURE_FRACTION = 0.7
#: An accepted key ends after this many windows in a row (5 ms each) without it at :data:`HOLD_FRACTION`.
MISSES_TO_END = 4
#: A held key's window counts as present when each tone is at least this fraction of its accepted amplitude.
HOLD_FRACTION = 0.25
