"""The caller's audio of a browser page: keypad presses as real DTMF tones, mixed with the page's microphone.

Keys reach the player only through the in-band detector, as every other caller's: a press becomes a tone in
this audio (the terminal keypad's tones, :class:`~engine.local.keypad.Keypad`), the media loop reads it and the
detector decodes it. The microphone arrives from the page as 8 kHz int16 chunks of any length and goes
through a small jitter buffer: silence until :data:`MIC_PREFILL_SAMPLES` have arrived (and again after it ran
dry); at most :data:`MIC_MAX_SAMPLES` wait (the oldest are dropped beyond).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from engine.format import SAMPLE_DTYPE, SAMPLES_PER_FRAME
from engine.local.keypad import Keypad

#: Microphone jitter buffer: 3 frames (60 ms) before the microphone is heard; 1 s at most waiting.
MIC_PREFILL_SAMPLES = 3 * SAMPLES_PER_FRAME
MIC_MAX_SAMPLES = 50 * SAMPLES_PER_FRAME


def _ignore(_text: str) -> None:
    """Notices of the keypad: a page sends only checked keys."""


class MicBuffer:
    """The page's microphone samples waiting to be heard (thread-safe: fed by the server, read by the media loop).

    ``underruns``: frames read while primed but short of samples; ``dropped``: samples dropped (buffer full).
    """

    def __init__(self, prefill_samples: int = MIC_PREFILL_SAMPLES, max_samples: int = MIC_MAX_SAMPLES) -> None:
        self.prefill_samples = prefill_samples
        self.max_samples = max_samples
        self._pending = np.zeros(0, dtype=SAMPLE_DTYPE)
        self._lock = threading.Lock()
        self._primed = False
        self.underruns = 0
        self.dropped = 0
        self.received = 0

    def feed(self, samples: np.ndarray) -> None:
        """Append ``samples`` (int16, 8 kHz) from the page."""
        with self._lock:
            self.received += len(samples)
            pending = np.concatenate([self._pending, samples.astype(SAMPLE_DTYPE, copy=False)])
            excess = len(pending) - self.max_samples
            if excess > 0:
                self.dropped += excess
                pending = pending[excess:]
            self._pending = pending

    def take(self, count: int) -> np.ndarray | None:
        """The next ``count`` samples, or None (silence) while the buffer fills or after it ran dry."""
        with self._lock:
            pending = self._pending
            if not self._primed:
                if len(pending) < self.prefill_samples:
                    return None
                self._primed = True
            if len(pending) < count:
                self.underruns += 1
                self._primed = False
                return None
            self._pending = pending[count:]
            return pending[:count]


class BrowserCaller:
    """A caller whose keys and microphone come from a browser page.

    ``on_request(…)``: told when a request starts playing (the phone records it for the call's picture).
    """

    def __init__(self, on_request: Callable[[], None] | None = None) -> None:
        self.keypad = Keypad(fd=-1, notice=_ignore)  # never started: only its tones are used
        self.mic = MicBuffer()
        self.on_request = on_request

    @property
    def keys(self) -> str:
        """Every key pressed on the page, in order."""
        return self.keypad.keys

    def press(self, key: str) -> None:
        """A key pressed on the page (one of 0-9 * # A-D, checked by the caller): a tone in the audio."""
        self.keypad.press(key)

    def read(self, count: int) -> np.ndarray:
        """The caller's next ``count`` samples: the keys' tones over the microphone."""
        tones = self.keypad.read(count)
        mic = self.mic.take(count)
        if mic is None:
            return tones
        return np.clip(tones.astype(np.int32) + mic, -32768, 32767).astype(SAMPLE_DTYPE)

    def request_started(self) -> None:
        """A page's caller runs on regardless of requests; the phone is told."""
        if self.on_request is not None:
            self.on_request()
