"""Silence in the caller's audio: how long the caller has been quiet, frame by frame (voicemail's end).

A frame is quiet when its mean power is below that of a sine at ``threshold_dbm0`` (default
:data:`DEFAULT_SILENCE_DBM0`, −45 dBm0, the G.711 convention of :func:`~engine.format.dbm0_to_peak`);
:meth:`SilenceWatch.feed` says when ``span_samples`` of quiet frames have followed one another.
"""

from __future__ import annotations

import numpy as np

from engine.format import dbm0_to_peak

#: The level below which the caller is silent (dBm0).
DEFAULT_SILENCE_DBM0 = -45.0


class SilenceWatch:
    """Counts the caller's quiet samples in a row; ``quiet_samples`` is the count so far."""

    def __init__(self, span_samples: int, threshold_dbm0: float = DEFAULT_SILENCE_DBM0) -> None:
        if span_samples <= 0:
            raise ValueError(f"span_samples: must be > 0, got {span_samples}")
        self.span_samples = span_samples
        self._power_limit = dbm0_to_peak(threshold_dbm0) ** 2 / 2  # mean square of the threshold's sine
        self.quiet_samples = 0

    def feed(self, frame: np.ndarray) -> bool:
        """Hear one frame (int16); True once the caller has been quiet for ``span_samples``."""
        samples = frame.astype(np.float64)
        if float(np.dot(samples, samples)) < self._power_limit * len(frame):
            self.quiet_samples += len(frame)
        else:
            self.quiet_samples = 0
        return self.quiet_samples >= self.span_samples

    def reset(self) -> None:
        """Forget the quiet samples counted so far."""
        self.quiet_samples = 0
