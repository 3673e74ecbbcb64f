"""A call's sink on the machine's speakers, and the ``speaker`` phone endpoint of the server.

Frames go through a bounded :class:`~engine.local.frame_queue.FrameQueue` to a
:class:`~engine.local.portaudio.DeviceOutput`, whose callback sets the pace (see those modules).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from engine.format import SAMPLE_DTYPE, SAMPLES_PER_FRAME, samples_to_seconds
from engine.local.frame_queue import QUEUE_FRAMES, FrameQueue
from engine.local.portaudio import STALL_S, DeviceOutput, NoDeviceError

__all__ = ["NoDeviceError", "SpeakerSink", "speaker_endpoint"]

#: A live server call's jitter buffer: playing starts (and restarts after an underflow) with 3 frames queued.
SERVER_PREFILL_FRAMES = 3


class SpeakerSink:
    """A call's sink on the sound device.

    ``write(played, heard)`` queues the played frame (``heard`` is not played); ``close()`` plays out what is queued and
    closes the device.

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
            queued_s = samples_to_seconds((queue.capacity_frames + 10) * SAMPLES_PER_FRAME)
            limit = timeout_s if timeout_s is not None else queued_s + 2 * STALL_S
            deadline = time.monotonic() + limit
            while not output.wait(0.05) and time.monotonic() < deadline and not self._failed():
                pass
            self.failure = self.failure or output.failure
        output.close()

    def abort(self) -> None:
        """Stop now (Ctrl-C): queued frames are dropped, a waiting ``write`` returns.

        The device plays out only its own buffer (a few periods).
        """
        self.output.close()


def speaker_endpoint(device: str | None = None, mic: bool = False) -> tuple[SpeakerSink, Any]:
    """A live server call on this machine: (sink on the speakers, caller from the terminal or microphone).

    The sink is non-blocking (the server's loop sets the pace; see :class:`SpeakerSink`). The caller is a
    :class:`~engine.local.keypad.Keypad` (terminal keys as DTMF) or, with ``mic``, a
    :class:`~engine.local.mic.MicCaller`; both have ``close()``, to be called when the call ends (it restores
    the terminal / closes the microphone). Raises :class:`NoDeviceError` when a device is missing.
    """
    from engine.local.keypad import Keypad
    from engine.local.mic import MicCaller

    sink = SpeakerSink(device)
    try:
        caller: Any = MicCaller() if mic else Keypad()
        caller.start()
    except BaseException:
        sink.abort()
        raise
    return sink, caller
