"""The caller's audio from the microphone: the default input device at 8 kHz (or at its own rate, resampled).

Read one frame at a time by the media loop through a small jitter buffer: silence until
:data:`MIC_PREFILL_FRAMES` frames have arrived, and again after it ran dry.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np

from engine.format import SAMPLE_DTYPE, SAMPLES_PER_FRAME
from engine.local.portaudio import NoDeviceError, load_sounddevice, one_line, open_stream, resolve_device

#: Microphone jitter buffer: start (and restart after running dry) with 3 frames = 60 ms; hold at most 1 s.
MIC_PREFILL_FRAMES = 3
MIC_MAX_FRAMES = 50


class MicCaller:
    """A caller whose audio is the microphone (``device``: input index or name; None: the default input).

    ``read`` never waits: missing audio is silence, counted in ``underruns``; audio beyond
    :data:`MIC_MAX_FRAMES` frames waiting is dropped (oldest first), counted in ``overruns``. Raises
    :class:`~engine.errors.NoDeviceError` when there is no input device.
    """

    def __init__(self, device: str | int | None = None, rate_hz: int | None = None) -> None:
        sd = self._sd = load_sounddevice()
        self.device = resolve_device(device)
        self._buffer: deque[np.ndarray] = deque()
        self._buffered = 0  # samples in _buffer
        self._lock = threading.Lock()
        self._primed = False
        self.underruns = self.overruns = 0
        self.position_samples = 0
        try:
            opened = open_stream(sd, "input", self.device, self._callback, rate_hz)
        except (sd.PortAudioError, ValueError) as exc:
            raise NoDeviceError(f"no microphone: {one_line(exc)}") from None
        self.stream, self.rate_hz, self.device_name = opened.stream, opened.rate_hz, opened.device_name
        self._resampler = opened.resampler

    def start(self) -> MicCaller:
        """Start recording."""
        self.stream.start()
        return self

    def close(self) -> None:
        """Stop recording and close the device; safe to call twice."""
        try:
            self.stream.stop(ignore_errors=True)
            self.stream.close(ignore_errors=True)
        except self._sd.PortAudioError:
            pass

    def __enter__(self) -> MicCaller:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _callback(self, indata: np.ndarray, frames: int, _time: Any, _status: Any) -> None:
        chunk = indata[:, 0].copy()
        if self._resampler is not None:
            chunk = np.asarray(self._resampler.resample_chunk(chunk), dtype=SAMPLE_DTYPE).reshape(-1)
        with self._lock:
            self._buffer.append(chunk)
            self._buffered += len(chunk)
            while self._buffered > MIC_MAX_FRAMES * SAMPLES_PER_FRAME:
                self._buffered -= len(self._buffer.popleft())
                self.overruns += 1

    def read(self, count: int) -> np.ndarray:
        """The next ``count`` samples heard by the microphone (silence while the jitter buffer fills)."""
        out = np.zeros(count, dtype=SAMPLE_DTYPE)
        self.position_samples += count
        with self._lock:
            if not self._primed:
                if self._buffered < MIC_PREFILL_FRAMES * SAMPLES_PER_FRAME:
                    return out
                self._primed = True
            if self._buffered < count:
                self.underruns += 1
                self._primed = False
                return out
            filled = 0
            while filled < count:
                chunk = self._buffer[0]
                take = min(count - filled, len(chunk))
                out[filled : filled + take] = chunk[:take]
                filled += take
                if take == len(chunk):
                    self._buffer.popleft()
                else:
                    self._buffer[0] = chunk[take:]
            self._buffered -= count
        return out

    def request_started(self) -> None:
        """The microphone runs on regardless of requests."""
