"""Playing rendered audio on the machine's sound device, or explaining in one line why it cannot."""

from __future__ import annotations

import numpy as np

from .format import SAMPLE_RATE_HZ


def play_or_explain(samples: np.ndarray, device: str | None = None) -> str:
    """Play ``samples`` (8 kHz mono int16) and wait; returns a one-line account of what happened."""
    try:
        import sounddevice as sd
    except OSError as exc:  # libportaudio2 missing
        return f"not played: PortAudio is not available ({exc})"
    try:
        sd.play(samples, SAMPLE_RATE_HZ, device=device, blocking=True)
    except (sd.PortAudioError, ValueError) as exc:
        return f"not played: no usable sound device ({exc}); the WAV has the audio"
    return f"played {len(samples) / SAMPLE_RATE_HZ:.2f} s on the sound device"
