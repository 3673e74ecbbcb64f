"""One channel's in-band DTMF detection: a stream fed any split of its audio, or a whole buffer at once.

Both are a :class:`~engine.dtmf.detector.BatchDtmfDetector` of one channel (its results are the batch's).
"""

from __future__ import annotations

import numpy as np

from engine.dtmf.analysis import SUB_SAMPLES, WINDOW_SAMPLES
from engine.dtmf.detector import BatchDtmfDetector
from engine.dtmf.event import KeyEvent, clamped


class DtmfDetector:
    """One channel; a thin wrapper over ``BatchDtmfDetector(1)``: single and batched results are identical."""

    def __init__(self) -> None:
        self._batch = BatchDtmfDetector(1)

    def process(self, samples: np.ndarray) -> list[KeyEvent]:
        """Feed int16 ``samples`` (any length); return the keys accepted within them."""
        samples = np.asarray(samples)
        if samples.ndim == 1:
            found = self._batch.process_one(samples)
            if found is not None:
                return found
        return [ev for _, ev in self._batch.process(samples.reshape(1, -1))]

    def reset(self) -> None:
        """Forget all audio; positions count from now."""
        self._batch.reset_channel(0)


def detect_keys(samples: np.ndarray) -> list[KeyEvent]:
    """All keys in a whole int16 buffer.

    The buffer is flushed with silence so a tone ending it is still reported if long enough (``detected_sample`` is then
    clamped to the buffer's length).
    """
    det = DtmfDetector()
    events = det.process(samples)
    events += det.process(np.zeros(WINDOW_SAMPLES + SUB_SAMPLES, dtype=np.int16))
    return clamped(events, len(samples))
