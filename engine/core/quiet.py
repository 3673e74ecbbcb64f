"""Quiet frames: a call's coming frames in which only its time moves, and the audio they are a view of."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["QuietFrames"]


@dataclass(frozen=True, slots=True)
class QuietFrames:
    """The frames of a quiet run and where they come from.

    ``samples``: (frames, 160) int16, read-only, one row per tick; row ``k`` is the 160 samples of ``source`` (1-D
    int16: a prompt, or the silent frame) from ``first_sample + step_samples * k`` (``step_samples``: 160, or 0
    for one frame repeated).
    """

    samples: np.ndarray
    source: np.ndarray
    first_sample: int
    step_samples: int
