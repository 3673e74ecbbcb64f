"""The espeak-ng under pyttsx3 is the wheel's 1.52 (espeakng_loader); another one loaded first is refused."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.tts import espeak
from engine.tts import synthesizer as speech

REPO = Path(__file__).resolve().parents[2]


def test_espeak_is_the_wheels_1_52_and_older_is_refused() -> None:
    assert espeak.espeak_library()[1].startswith("1.52")
    espeak.check_espeak_version("1.52.0")
    with pytest.raises(speech.EspeakVersionError, match=r"1\.51\.1 is too old: 1\.52 or newer") as info:
        espeak.check_espeak_version("1.51.1")
    assert info.value.code == "108104"


@pytest.mark.skipif(ctypes.util.find_library("espeak-ng") is None, reason="no system libespeak-ng")
def test_pyttsx3_loaded_first_with_another_espeak_is_refused(tmp_path: Path) -> None:
    # pyttsx3 imported before engine.tts loads whatever libespeak-ng.so.1 the system has (Debian 12: 1.51).
    script = (
        "import pyttsx3.drivers._espeak as e\n"
        "from engine.tts import synthesizer as speech\n"
        "if e.Info(None).decode() == speech.espeak_library()[1]:\n"
        "    print('same')\n"
        "else:\n"
        "    try:\n"
        f"        speech.Synthesizer({str(tmp_path)!r}).synthesize('Hello.')\n"
        "    except speech.EspeakVersionError as exc:\n"
        "        print('refused:', exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True,
                         cwd=tmp_path, timeout=60).stdout
    assert out == "same\n" or out.startswith("refused: pyttsx3 is using espeak-ng 1.5"), out
