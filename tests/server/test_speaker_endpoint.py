"""A server call on the speakers: ``outCall`` with ``called`` = ``speaker``, the terminal's keys as the caller.

The server runs as ``ipcc-engine serve`` in a subprocess with its own ALSA configuration (the paced capture
device of ``test_speaker``); its standard input is a pipe this test types into, as a person at the terminal
would. What the device played is captured; the key typed comes back in ``ivrreportdtmf``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np

from engine.audio.library import VoiceLibrary
from engine.testing.alsa import APP, VOICES, AlsaCapture
from engine.testing.server import free_port, wait_for

MENU = [
    {"playFlag": 1, "voiceStr": "welcome.wav"},
    {"playFlag": 1, "voiceStr": "menu.flac", "getkey": 1, "maxRevCnt": 1, "spaceTime": 1, "totalTime": 12},
]


def played_past(device: AlsaCapture, samples: int) -> bool:
    """True once the device has played ``samples`` past its first sound (the engine is ahead of the device)."""
    played = device.samples()
    sound = np.flatnonzero(played)
    return len(sound) > 0 and len(played) - int(sound[0]) > samples


def test_a_server_call_plays_on_the_speaker_and_hears_the_terminal(tmp_path: Path) -> None:
    port = free_port()
    with AlsaCapture(tmp_path / "device") as device:
        server = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--voices", VOICES,
             "--state", str(tmp_path / "state"), "--recordings", str(tmp_path / "rec")],
            env=device.env, cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        try:
            base = f"http://127.0.0.1:{port}/ipcc"

            def up() -> bool:
                try:
                    return httpx.get(f"{base}/status").status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(lambda: up() or server.poll() is not None, 60, "the server's status")
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else "no server"
            call = httpx.post(f"{base}/call/outCall", json={"appId": APP, "called": "speaker"}).json()
            assert call["code"] == "000000", call
            call_id = call["callId"]
            answer = httpx.post(f"{base}/call/multOrders",
                                json={"appId": APP, "callId": call_id, "orders": MENU}).json()
            assert answer["code"] == "000000", answer
            welcome = VoiceLibrary(VOICES).load("welcome.wav")
            wait_for(lambda: played_past(device, len(welcome) + 800), 30, "the welcome played: the menu plays")
            assert server.stdin is not None
            server.stdin.write(b"x7")  # "x" is not a key: ignored with a notice; 7 is pressed
            server.stdin.flush()

            def events() -> list[dict]:
                return httpx.get(f"{base}/events", params={"callId": call_id, "appId": APP}).json().get("events", [])

            wait_for(lambda: any(e["event"] == "multrpt" for e in events()), 30, "the menu's multrpt")
            dtmf = [e for e in events() if e["event"] == "ivrreportdtmf"]
            assert [(e["dtmfCode"], e["endReason"]) for e in dtmf] == [("7", "maxRevCnt")]
            hang_up = httpx.post(f"{base}/call/disConnect", json={"appId": APP, "callId": call_id}).json()
            assert hang_up["code"] == "000000", hang_up
            wait_for(lambda: httpx.get(f"{base}/status").json()["calls"]["live_calls"] == 0, 30, "the call gone")
        finally:
            server.terminate()
            _, err = server.communicate(timeout=20)
    played = device.samples()
    start = int(np.flatnonzero(played)[0])
    assert np.array_equal(played[start : start + len(welcome)], welcome)  # the prompt, sample for sample
    assert b"ignored" in err.lower() or b"not a key" in err.lower()
