"""The call's audio on the machine's sound device (sounddevice/PortAudio), at the device's own pace.

Frames of the call (8 kHz int16, 160 samples) go through a bounded :class:`FrameQueue` to the device: the
producer — a media loop — puts, the device callback pops. The callback never waits: an empty queue is played
as silence and counted as an *underflow*; a full queue makes a blocking producer wait (that is the pacing of
``play``: the loop never reads a clock) or, for a producer with its own pace (a server call), drops the frame
and counts an *overflow*. The queued 8 kHz frames are the reference; when the device refuses 8 kHz, the
callback resamples them to the device's rate with soxr.

Without a device (servers, CI) or without PortAudio, opening raises :class:`NoDeviceError` with a one-line
reason. A device that stops mid-playback (stream error, no callback for :data:`STALL_S`) is reported by
:attr:`DeviceOutput.failure`; the producer is never left waiting on it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import NoDeviceError
from engine.format import SAMPLE_DTYPE, SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from engine.local.frame_queue import END, FrameQueue

#: A device whose callback has not run for this long while it should is taken as gone, seconds.
STALL_S = 2.0
#: What PortAudio is asked for: "low" keeps the device's buffer (the output latency) small.
LATENCY = "low"


def load_sounddevice() -> Any:
    """Import sounddevice (PortAudio initialises here); :class:`NoDeviceError` if PortAudio is missing."""
    try:
        import sounddevice
    except OSError as exc:  # libportaudio2 is not installed
        raise NoDeviceError(f"PortAudio is not available ({exc}); apt-get install libportaudio2") from None
    return sounddevice


def preload_sounddevice() -> None:
    """Import sounddevice in a background thread (PortAudio's device scan overlaps other start-up work)."""
    def load() -> None:
        try:
            load_sounddevice()
        except NoDeviceError:
            pass
    threading.Thread(target=load, name="sounddevice-import", daemon=True).start()


def resolve_device(device: str | int | None) -> str | int | None:
    """``--device``: a number is a device index, anything else a (sub)string of a device name."""
    if isinstance(device, str) and device.strip().isdigit():
        return int(device)
    return device or None


def one_line(exc: BaseException) -> str:
    """An exception as one line of text."""
    return " ".join(str(exc).split()) or type(exc).__name__


@dataclass
class OpenedStream:
    """A PortAudio stream opened at 8 kHz, or at the device's own rate with a soxr resampler to or from 8 kHz."""

    stream: Any
    rate_hz: int
    device_name: str
    resampler: Any  # soxr.ResampleStream, or None at 8 kHz


def open_stream(sd: Any, kind: str, device: str | int | None, callback: Any, rate_hz: int | None = None,
                **extra: Any) -> OpenedStream:
    """Open a mono int16 ``kind`` ("input" or "output") stream of 20 ms blocks on ``device``.

    ``rate_hz``: force the device rate (default: 8 kHz, or the device's default rate when it refuses 8 kHz,
    then resampled with soxr). ``extra``: more ``sd.InputStream``/``sd.OutputStream`` arguments. Raises
    ``sd.PortAudioError`` or ValueError when the device cannot open (the caller words the reason).
    """
    info = sd.query_devices(device, kind)
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    if rate_hz is None:
        try:
            check(device, channels=1, dtype="int16", samplerate=SAMPLE_RATE_HZ)
            rate_hz = SAMPLE_RATE_HZ
        except sd.PortAudioError:  # the device refuses 8 kHz: resample to or from its own rate
            rate_hz = int(info["default_samplerate"])
    resampler = None
    if rate_hz != SAMPLE_RATE_HZ:
        import soxr

        rates = (rate_hz, SAMPLE_RATE_HZ) if kind == "input" else (SAMPLE_RATE_HZ, rate_hz)
        resampler = soxr.ResampleStream(*rates, 1, dtype="int16", quality="LQ")
    stream_class = sd.InputStream if kind == "input" else sd.OutputStream
    stream = stream_class(samplerate=rate_hz, blocksize=round(rate_hz * SAMPLES_PER_FRAME / SAMPLE_RATE_HZ),
                          device=device, channels=1, dtype="int16", latency=LATENCY, callback=callback, **extra)
    return OpenedStream(stream, rate_hz, str(info["name"]), resampler)


def _why_no_device(sd: Any, device: str | int | None, exc: BaseException) -> str:
    try:
        outputs = [d for d in sd.query_devices() if d["max_output_channels"] > 0]
    except sd.PortAudioError:
        outputs = []
    if not outputs:
        return "PortAudio finds no output device"
    if device is None:
        return f"the default output cannot play ({one_line(exc)})"
    return f"device {device!r}: {one_line(exc)}"


class DeviceOutput:
    """An OutputStream whose callback plays the frames of ``queue``, at 8 kHz or resampled.

    ``device``: index or name (None: the default output); ``rate_hz``: force the device rate (default: 8 kHz,
    or the device's default rate when it refuses 8 kHz). Raises :class:`NoDeviceError` when it cannot open.
    """

    def __init__(self, queue: FrameQueue, device: str | int | None = None,
                 rate_hz: int | None = None) -> None:
        sd = self._sd = load_sounddevice()
        self.queue = queue
        self.device = resolve_device(device)
        self._fifo = np.zeros(0, dtype=SAMPLE_DTYPE)  # device-rate samples not yet played
        self.done = threading.Event()
        try:
            opened = open_stream(sd, "output", self.device, self._callback, rate_hz,
                                 finished_callback=self.done.set)
        except (sd.PortAudioError, ValueError) as exc:
            raise NoDeviceError(_why_no_device(sd, self.device, exc)) from None
        self.stream, self.rate_hz, self.device_name = opened.stream, opened.rate_hz, opened.device_name
        self._resampler = opened.resampler
        self.latency_s = float(self.stream.latency)
        self.ended = False  # the callback played the last frame
        self.stopped = False  # we stopped it
        self.error: str | None = None
        self.device_underflows = 0  # PortAudio's own output-underflow flags
        self.callbacks = 0
        self.started_at: float | None = None  # time.monotonic() of start()
        self.first_callback_at: float | None = None
        self.first_sound_at: float | None = None  # first callback with a non-zero sample
        self.last_callback_at = 0.0
        self._flushed = False
        self._close_lock = threading.Lock()
        self._closed = False

    @property
    def started(self) -> bool:
        """True once :meth:`start` ran."""
        return self.started_at is not None

    def start(self) -> None:
        """Start the stream (the device's callbacks begin)."""
        if not self.started:
            self.started_at = self.last_callback_at = time.monotonic()
            try:
                self.stream.start()
            except self._sd.PortAudioError as exc:
                self.error = f"the sound device failed to start: {one_line(exc)}"
                self.done.set()

    @property
    def failure(self) -> str | None:
        """Why the device stopped playing before the end (None while it plays or after a normal end)."""
        if self.error:
            return self.error
        if self.done.is_set() and not self.ended and not self.stopped:
            return "the sound device stopped mid-playback"
        if self.started and not self.done.is_set() and time.monotonic() - self.last_callback_at > STALL_S:
            return f"the sound device stopped calling back for {STALL_S:g} s"
        return None

    def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the stream to finish; True when it has."""
        return self.done.wait(timeout_s)

    def close(self) -> None:
        """Stop the stream (the device plays out its own buffer, a few periods) and close it.

        Safe from any thread, any number of times: only the first call stops the stream (two threads in
        ``Pa_StopStream`` would both join PortAudio's thread, and one of them would wait for ever).
        """
        with self._close_lock:
            self.stopped = self.stopped or not self.done.is_set()
            self.queue.close()
            if self._closed:
                return
            self._closed = True
            try:
                self.stream.stop(ignore_errors=True)
                self.stream.close(ignore_errors=True)
            except self._sd.PortAudioError:
                pass

    def _callback(self, outdata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        now = self.last_callback_at = time.monotonic()
        self.callbacks += 1
        if self.first_callback_at is None:
            self.first_callback_at = now
        if status.output_underflow:
            self.device_underflows += 1
        out = outdata[:, 0]
        try:
            if self._resampler is None and frames == SAMPLES_PER_FRAME and not len(self._fifo):
                item = self.queue.pop()
                if item is None or item is END:
                    out.fill(0)
                else:
                    out[:] = item
                last = item is END or self.queue.drained
            else:
                last = self._fill(out, frames)
        except Exception as exc:  # never let a bug take PortAudio's thread down silently
            self.error = f"playback failed: {one_line(exc)}"
            out.fill(0)
            raise self._sd.CallbackAbort from None
        if self.first_sound_at is None and out.any():
            self.first_sound_at = now
        if last:
            self.ended = True
            raise self._sd.CallbackStop

    def _fill(self, out: np.ndarray, frames: int) -> bool:
        """Fill ``out`` from the queue through the resampler; True when the last sample went out."""
        parts = [self._fifo]
        have = len(self._fifo)
        while have < frames and not self._flushed:
            item = self.queue.pop()
            if item is None:
                break
            if item is END:
                self._flushed = True
                chunk = (self._resampler.resample_chunk(np.zeros((0, 1), SAMPLE_DTYPE), last=True)
                         if self._resampler else np.zeros(0, SAMPLE_DTYPE))
            else:
                chunk = self._resampler.resample_chunk(item[:, None]) if self._resampler else item
            chunk = np.asarray(chunk, dtype=SAMPLE_DTYPE).reshape(-1)
            parts.append(chunk)
            have += len(chunk)
        fifo = np.concatenate(parts) if len(parts) > 1 else parts[0]
        taken = min(frames, len(fifo))
        out[:taken] = fifo[:taken]
        out[taken:] = 0
        self._fifo = fifo[taken:]
        return self._flushed and not len(self._fifo)
