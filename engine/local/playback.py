"""Playing audio on the machine's sound device through the real-time path, with a one-line account of it.

:func:`play_samples` feeds already-rendered 8 kHz audio to a blocking :class:`~engine.local.speaker.SpeakerSink`
(the device's callback sets the pace, exactly as for ``play``); :func:`play_or_explain` is what ``demo``
calls. :func:`account` is the closing line of both: seconds played, device and rate, output latency,
underflows and the time from process start to the first sound.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from engine.format import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, iter_frames, samples_to_seconds
from engine.local.portaudio import NoDeviceError
from engine.local.speaker import SpeakerSink


def process_age_s() -> float | None:
    """Seconds since this process started (Linux ``/proc``, 10 ms resolution); None elsewhere."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
            return float(uptime.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def since_process_start_s(moment: float | None) -> float | None:
    """``moment`` (a ``time.monotonic()`` value) as seconds since the process started, if known."""
    age = process_age_s()
    if moment is None or age is None:
        return None
    return age - (time.monotonic() - moment)


def account(sink: SpeakerSink) -> str:
    """One line: what the device played, its rate and latency, underflows, and start-up to first sound."""
    output = sink.output
    played_s = samples_to_seconds(sink.queue.popped * SAMPLES_PER_FRAME)
    rate = f"{output.rate_hz} Hz" + ("" if output.rate_hz == SAMPLE_RATE_HZ else " (resampled from 8 kHz)")
    parts = [f"played {played_s:.2f} s on {output.device_name!r} at {rate}",
             f"output latency {output.latency_s * 1000:.0f} ms",
             f"underflows {sink.underflows}"]
    if output.device_underflows:
        parts.append(f"device underflows {output.device_underflows}")
    if sink.overflows:
        parts.append(f"overflows {sink.overflows}")
    first_sound = since_process_start_s(output.first_sound_at)
    first_callback = since_process_start_s(output.first_callback_at)
    if first_callback is not None:
        parts.append(f"first callback {first_callback * 1000:.0f} ms after process start")
    if first_sound is not None:
        parts.append(f"first sound {first_sound * 1000:.0f} ms")
    return ", ".join(parts)


def play_samples(samples: np.ndarray, sink: SpeakerSink) -> None:
    """Play ``samples`` (8 kHz int16) through the blocking ``sink`` from a feeder thread, then close it.

    Ctrl-C stops the device at once (KeyboardInterrupt is re-raised); a failed device ends the feeding.
    """
    def feed() -> None:
        for frame in iter_frames(samples):
            sink.write(frame, frame)
            if sink.failure is not None or sink.queue.closed:
                break
        sink.close()

    feeder = threading.Thread(target=feed, name="speaker-feeder", daemon=True)
    feeder.start()
    try:
        while feeder.is_alive():
            feeder.join(0.1)
    except KeyboardInterrupt:
        sink.abort()
        feeder.join(1.0)
        raise


def play_or_explain(samples: np.ndarray, device: str | None = None) -> str:
    """Play ``samples`` (8 kHz mono int16) in real time and wait; returns a one-line account of it."""
    try:
        sink = SpeakerSink(device, blocking=True)
    except NoDeviceError as exc:
        return f"not played: no sound device: {exc} — the WAV has the audio"
    try:
        play_samples(np.asarray(samples, dtype=np.int16), sink)
    except KeyboardInterrupt:
        return f"interrupted: {account(sink)}"
    if sink.failure is not None:
        return f"not played to the end: {sink.failure} — the WAV has the audio; {account(sink)}"
    return account(sink)
