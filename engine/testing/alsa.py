"""A paced ALSA capture device: the real PortAudio path tested on a machine without a sound card.

ALSA reads ``$XDG_CONFIG_HOME/alsa/asoundrc`` (alsa-lib ≥ 1.2.7; Debian 12 has 1.2.8), so each test gives the
player — a subprocess, because PortAudio scans the devices when sounddevice is imported — its own ALSA
configuration. The default device is ALSA's ``plug`` in front of a ``file`` plugin whose slave is ``null``:

* ``file`` writes every sample handed to the device to a FIFO read by this test (the capture);
* ``null`` consumes at once, so the FIFO is what paces the device: this test reads it at the real-time byte
  rate, and ``plug`` widens the samples (S16 → S32, 1 → 16 identical channels; exact) so that a pipe page
  (4 KB) is 8 ms of audio — with 8 kHz mono S16 a page would be 256 ms and the device would run in bursts.

The capture's channel 0, shifted back to 16 bits, is then compared with ``render``'s WAV. PortAudio's ALSA
host silences the device buffer before starting (a few frames of zeros, a whole number of periods): that
leading silence is the only difference allowed.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import sys
import threading
import time
from pathlib import Path

import numpy as np

F_SETPIPE_SZ = 1031
VOICES = str(Path(__file__).resolve().parents[2] / "voices")
APP = "247e35ff320a4142a105024055c367cf"
# welcome (0.58 s), a beep (0.5 s), then the menu collecting one key; the caller presses 2 during the menu.
ORDERS = [
    {"playFlag": 1, "getkey": 0, "voiceStr": "welcome.wav", "playTime": 1},
    {"playFlag": 1, "getkey": 0, "voiceStr": "beep.wav", "playTime": 1},
    {"playFlag": 1, "getkey": 1, "voiceStr": "menu.flac", "playTime": 2, "maxRevCnt": 1, "key2End": "#",
     "spaceTime": 1, "totalTime": 10, "data": "d"},
]


class AlsaCapture:
    """A paced ALSA default device capturing what is played (see the module docstring).

    ``rate_hz``: the device's rate; ``refuse_8k``: ALSA may not convert rates, so the device takes only
    ``rate_hz`` (as hardware that refuses 8 kHz); ``vanish_after_s``: the device disappears (the FIFO is
    closed) after that much playing.
    """

    def __init__(self, root: Path, rate_hz: int = 8000, channels: int = 16, refuse_8k: bool = False,
                 vanish_after_s: float | None = None) -> None:
        self.root, self.rate_hz, self.channels = root, rate_hz, channels
        self.vanish_after_s = vanish_after_s
        (root / "alsa").mkdir(parents=True)
        self.fifo = root / "device.fifo"
        os.mkfifo(self.fifo)
        converter = ' rate_converter "no-such-converter"' if refuse_8k else ""
        (root / "alsa" / "asoundrc").write_text(
            f'pcm.!default {{ type plug; slave {{ pcm "capture"; format S32_LE; channels {channels};'
            f' rate {rate_hz} }}{converter} }}\n'
            f'pcm.capture {{ type file; slave.pcm "null"; file "{self.fifo}"; format "raw" }}\n')
        self.env = {**os.environ, "XDG_CONFIG_HOME": str(root), "HOME": str(root)}
        self.data = bytearray()
        self._stop = threading.Event()

    def __enter__(self) -> AlsaCapture:
        self._fd = os.open(self.fifo, os.O_RDWR)  # also a writer: the player's opens never block or see EOF
        fcntl.fcntl(self._fd, F_SETPIPE_SZ, 4096)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _read(self) -> None:
        bytes_per_s = self.rate_hz * self.channels * 4
        started = 0.0
        while not self._stop.is_set():
            if not select.select([self._fd], [], [], 0.05)[0]:
                continue
            self.data.extend(os.read(self._fd, 4096))
            started = started or time.monotonic()
            played_s = len(self.data) / bytes_per_s
            if self.vanish_after_s is not None and played_s >= self.vanish_after_s:
                os.close(self._fd)  # the device is gone: the player's next write fails
                return
            time.sleep(max(0.0, played_s - (time.monotonic() - started)))
        os.close(self._fd)

    def samples(self) -> np.ndarray:
        """What was played: channel 0 back to int16 (every channel identical, the low 16 bits zero)."""
        wide = np.frombuffer(bytes(self.data[: len(self.data) // (4 * self.channels) * 4 * self.channels]),
                             "<i4").reshape(-1, self.channels)
        assert (wide == wide[:, :1]).all() and not (wide & 0xFFFF).any()
        return (wide[:, 0] >> 16).astype(np.int16)


def engine_request(folder: Path) -> Path:
    """The test request (:data:`ORDERS`) written to ``folder``."""
    path = folder / "request.json"
    path.write_text(json.dumps({"appId": APP, "callId": "c-speaker", "playtime": 1, "orders": ORDERS}))
    return path


def interruptible_cli(*args: str) -> list[str]:
    """The argv of ``ipcc-engine ARGS`` in a new Python whose Ctrl-C (SIGINT) is the default KeyboardInterrupt.

    A process started from a background job (``cmd &`` without job control, as CI runners and ``nohup`` do)
    inherits SIGINT ignored, and Python then leaves it ignored: a test that interrupts the player would see it
    play to its end.
    """
    restore = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
               "runpy.run_module('engine.cli', run_name='__main__', alter_sys=True)")
    return [sys.executable, "-c", restore, *args]
