"""A window of the most recent lateness measurements (seconds), kept in a fixed ring."""

from __future__ import annotations

import numpy as np


class LatenessWindow:
    """The last ``size`` lateness values recorded (s), oldest first; recording is O(1) and allocates nothing."""

    __slots__ = ("count", "_values")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.count = 0  # values recorded since the last clear
        self._values = np.zeros(size, dtype=np.float64)

    def record(self, lateness_s: float) -> None:
        """Keep ``lateness_s``, dropping the oldest value once the window is full."""
        self._values[self.count % len(self._values)] = lateness_s
        self.count += 1

    def recent(self) -> np.ndarray:
        """A copy of the recent values (s), oldest first: at most ``size`` of them."""
        count, size = self.count, len(self._values)
        if count <= size:
            return self._values[:count].copy()
        return np.roll(self._values, -(count % size))

    def clear(self) -> None:
        """Forget every value recorded so far."""
        self.count = 0
