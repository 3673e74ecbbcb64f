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
from collections import deque
from typing import Any

import numpy as np

from .format import SAMPLE_DTYPE, SAMPLE_RATE_HZ, SAMPLES_PER_FRAME

#: Queue length for ``play``: 10 frames = 200 ms, filled before the stream starts.
QUEUE_FRAMES = 10
#: A live server call's jitter buffer: playing starts (and restarts after an underflow) with 3 frames queued.
SERVER_PREFILL_FRAMES = 3
#: A device whose callback has not run for this long while it should is taken as gone, seconds.
STALL_S = 2.0
#: What PortAudio is asked for: "low" keeps the device's buffer (the output latency) small.
LATENCY = "low"
END = object()  # FrameQueue.pop: no frame will ever come again


class NoDeviceError(RuntimeError):
    """No usable sound device (or no PortAudio): the message is one line, fit for the user."""


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


class FrameQueue:
    """Bounded FIFO of frames between a producer thread and the device callback.

    ``capacity_frames``: most frames held; ``prefill_frames``: frames needed before popping starts, and
    again after an underflow (default: the capacity). Counters: ``underflows`` (pops that found the primed
    queue empty, and those played as silence while it refilled), ``overflows`` (frames refused by
    :meth:`offer`), ``popped``, ``pushed``.
    """

    def __init__(self, capacity_frames: int = QUEUE_FRAMES, prefill_frames: int | None = None) -> None:
        self.capacity_frames = capacity_frames
        self.prefill_frames = min(capacity_frames, prefill_frames or capacity_frames)
        self._frames: deque[np.ndarray] = deque()
        self._cond = threading.Condition()
        self._primed = False
        self._started = False  # primed at least once: from then on, missing frames are underflows
        self.finished = False  # the producer put its last frame
        self.closed = False  # the consumer is gone: producers stop waiting
        self.underflows = self.overflows = self.popped = self.pushed = 0

    @property
    def ready(self) -> bool:
        """Enough frames queued to start playing (or the producer is done)."""
        return len(self._frames) >= self.prefill_frames or self.finished

    def put(self, frame: np.ndarray, timeout_s: float | None = None) -> bool:
        """Queue ``frame``, waiting up to ``timeout_s`` (None: for ever) for room; False if not queued."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.closed or len(self._frames) < self.capacity_frames,
                                       timeout_s) or self.closed:
                return False
            self._frames.append(frame)
            self.pushed += 1
            return True

    def offer(self, frame: np.ndarray) -> bool:
        """Queue ``frame`` if there is room, else drop it and count an overflow; never waits."""
        with self._cond:
            if len(self._frames) >= self.capacity_frames:
                self.overflows += 1
                return False
            self._frames.append(frame)
            self.pushed += 1
            return True

    def pop(self) -> Any:
        """The next frame; None (play silence) when not primed or empty; :data:`END` once all are played."""
        with self._cond:
            frames = self._frames
            if not self._primed:
                if not frames and self.finished:
                    return END
                if len(frames) < self.prefill_frames and not self.finished:
                    self.underflows += self._started
                    return None
                self._primed = self._started = True
            if frames:
                self.popped += 1
                self._cond.notify()
                return frames.popleft()
            if self.finished:
                return END
            self.underflows += 1
            self._primed = False
            return None

    @property
    def drained(self) -> bool:
        """The producer is done and every frame has been popped."""
        return self.finished and not self._frames

    def finish(self) -> None:
        """The producer's last frame is queued."""
        with self._cond:
            self.finished = True

    def close(self) -> None:
        """The consumer is gone: waiting producers return at once, later puts are refused."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()


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
        try:
            info = sd.query_devices(self.device, "output")
            self.device_name = str(info["name"])
            if rate_hz is None:
                try:
                    sd.check_output_settings(self.device, channels=1, dtype="int16",
                                             samplerate=SAMPLE_RATE_HZ)
                    rate_hz = SAMPLE_RATE_HZ
                except sd.PortAudioError:  # the device refuses 8 kHz: resample to its own rate
                    rate_hz = int(info["default_samplerate"])
            self.rate_hz = rate_hz
            self._resampler = None
            if rate_hz != SAMPLE_RATE_HZ:
                import soxr

                self._resampler = soxr.ResampleStream(SAMPLE_RATE_HZ, rate_hz, 1, dtype="int16", quality="LQ")
            self._fifo = np.zeros(0, dtype=SAMPLE_DTYPE)  # device-rate samples not yet played
            self.done = threading.Event()
            self.stream = sd.OutputStream(
                samplerate=rate_hz, blocksize=round(rate_hz * SAMPLES_PER_FRAME / SAMPLE_RATE_HZ),
                device=self.device, channels=1, dtype="int16", latency=LATENCY,
                callback=self._callback, finished_callback=self.done.set)
        except (sd.PortAudioError, ValueError) as exc:
            raise NoDeviceError(_why_no_device(sd, self.device, exc)) from None
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


class SpeakerSink:
    """A call's sink on the sound device: ``write(played, heard)`` queues the played frame (``heard`` is not
    played); ``close()`` plays out what is queued and closes the device.

    ``blocking`` (``play``): ``write`` waits for room, so the device paces the producer; otherwise (a server
    call, paced by its own loop) a full queue drops the frame and counts an overflow. ``queue_frames``: queue
    length (default 10 = 200 ms); ``prefill_frames``: frames queued before playing starts and after an
    underflow (default: the whole queue when blocking, else 3). Raises :class:`NoDeviceError`.
    """

    def __init__(self, device: str | int | None = None, *, blocking: bool = False,
                 queue_frames: int = QUEUE_FRAMES, prefill_frames: int | None = None,
                 rate_hz: int | None = None) -> None:
        self.blocking = blocking
        prefill = prefill_frames or (queue_frames if blocking else SERVER_PREFILL_FRAMES)
        self.queue = FrameQueue(queue_frames, prefill)
        self.output = DeviceOutput(self.queue, device, rate_hz)
        self.failure: str | None = None

    @property
    def underflows(self) -> int:
        """Frames the device wanted while the queue was empty (played as silence)."""
        return self.queue.underflows

    @property
    def overflows(self) -> int:
        """Frames dropped because the queue was full (non-blocking sinks only)."""
        return self.queue.overflows

    def write(self, played: np.ndarray, heard: np.ndarray) -> None:
        """Queue the frame played to the caller (copied); a no-op once the device failed or was stopped."""
        if self.failure is not None or self.queue.closed:
            return
        frame = np.array(played, dtype=SAMPLE_DTYPE, copy=True)
        if self.blocking:
            while not self.queue.put(frame, timeout_s=0.1):
                if self.queue.closed or self._failed():
                    return
        else:
            self.queue.offer(frame)
            self._failed()
        output = self.output
        if not output.started and self.queue.ready:
            output.start()

    def _failed(self) -> bool:
        failure = self.failure = self.output.failure
        if failure is not None:
            self.output.close()
        return failure is not None

    def close(self, timeout_s: float | None = None) -> None:
        """Play out the queued frames (at most ``timeout_s``; default: long enough) and close the device.

        A blocking sink waits for that here; a non-blocking one (a server call, closed from the media loop's
        thread) returns at once and plays out in a background thread.
        """
        if not self.blocking:
            threading.Thread(target=self._play_out, args=(timeout_s,), daemon=True).start()
            return
        self._play_out(timeout_s)

    def _play_out(self, timeout_s: float | None) -> None:
        queue, output = self.queue, self.output
        queue.finish()
        if self.failure is None and not queue.closed:
            output.start()  # a short call may never have filled the prefill
            limit = timeout_s if timeout_s is not None else (queue.capacity_frames + 10) * 0.02 + 2 * STALL_S
            deadline = time.monotonic() + limit
            while not output.wait(0.05) and time.monotonic() < deadline and not self._failed():
                pass
            self.failure = self.failure or output.failure
        output.close()

    def abort(self) -> None:
        """Stop now (Ctrl-C): queued frames are dropped, a waiting ``write`` returns; the device plays out
        only its own buffer (a few periods)."""
        self.output.close()


def speaker_endpoint(device: str | None = None, mic: bool = False) -> tuple[SpeakerSink, Any]:
    """A live server call on this machine: (sink on the speakers, caller from the terminal or microphone).

    The sink is non-blocking (the server's loop sets the pace; see :class:`SpeakerSink`). The caller is a
    :class:`~engine.keypad.Keypad` (terminal keys as DTMF) or, with ``mic``, a
    :class:`~engine.keypad.MicCaller`; both have ``close()``, to be called when the call ends (it restores
    the terminal / closes the microphone). Raises :class:`NoDeviceError` when a device is missing.
    """
    from .keypad import Keypad, MicCaller

    sink = SpeakerSink(device)
    try:
        caller: Any = MicCaller() if mic else Keypad()
        caller.start()
    except BaseException:
        sink.abort()
        raise
    return sink, caller
