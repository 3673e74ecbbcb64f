"""The microphone caller through real PortAudio: ALSA's file plugin records from a FIFO this test fills."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import numpy as np

from engine.format import SAMPLES_PER_FRAME, seconds_to_samples

MIC_SCRIPT = """
import time, numpy as np
from engine.local.mic import MicCaller
from engine.dtmf.channel import detect_keys
mic = MicCaller().start()
print("listening", flush=True)
frames, start, keys = [], time.monotonic(), ""
for i in range(300):  # up to 6 s, read at the media loop's pace, until "#" is heard
    time.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
    frames.append(mic.read(160))
    if i % 10 == 9:
        keys = "".join(e.key for e in detect_keys(np.concatenate(frames)))
        if keys.endswith("#"):
            break
mic.close()
print(mic.rate_hz, keys, mic.underruns)
"""


def test_the_microphone_hears_a_keypad_held_to_it(tmp_path):
    """ALSA's file plugin records from ``infile``: a FIFO this test fills at 8000 samples a second."""
    from engine.dtmf.tones import place_tones

    (tmp_path / "alsa").mkdir()
    fifo = tmp_path / "mic.fifo"
    os.mkfifo(fifo)
    (tmp_path / "alsa" / "asoundrc").write_text(
        f'pcm.!default {{ type file; slave.pcm "null"; file "/dev/null"; infile "{fifo}"; format "raw" }}\n')
    audio = place_tones(seconds_to_samples(1.5), [("1", 2000), ("5", 4000), ("9", 6000), ("#", 8000)])
    fd = os.open(fifo, os.O_RDWR)  # keeps the FIFO open: PortAudio's device scan never blocks on it
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path)}
    mic = subprocess.Popen([sys.executable, "-c", MIC_SCRIPT], env=env, stdout=subprocess.PIPE, text=True)
    try:
        start, index, silence = time.monotonic(), 0, np.zeros(SAMPLES_PER_FRAME, np.int16)
        keys_from = None  # the frame at which the keypad is held to the microphone: once it listens
        while mic.poll() is None and index < 60 * 50:  # silence around the keys: a microphone never stops
            if keys_from is None and select.select([mic.stdout], [], [], 0)[0]:
                assert mic.stdout.readline().strip() == "listening"
                keys_from = index
            at = (index - keys_from) * SAMPLES_PER_FRAME if keys_from is not None else len(audio)
            os.write(fd, (audio[at : at + SAMPLES_PER_FRAME] if at < len(audio) else silence).tobytes())
            index += 1
            time.sleep(max(0.0, start + index * 0.02 - time.monotonic()))
        out, _ = mic.communicate(timeout=5)
    finally:
        mic.kill()
        os.close(fd)
    assert mic.returncode == 0 and out.split()[:2] == ["8000", "159#"]
