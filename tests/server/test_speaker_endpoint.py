"""A server call on the speakers: ``outCall`` with ``called`` = ``speaker``, the terminal's keys as the caller.

The server runs as ``ipcc-engine serve`` in a subprocess with its own ALSA configuration (the paced capture
device of ``test_speaker``); its standard input is a pipe this test types into, as a person at the terminal
would. What the device played is captured; the key typed comes back in ``ivrreportdtmf``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from engine.audio.library import VoiceLibrary
from engine.testing.alsa import APP, VOICES, AlsaCapture

MENU = [
    {"playFlag": 1, "voiceStr": "welcome.wav"},
    {"playFlag": 1, "voiceStr": "menu.flac", "getkey": 1, "maxRevCnt": 1, "spaceTime": 1, "totalTime": 12},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


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

            assert wait_for(up, 30), server.stderr.read().decode() if server.poll() is not None else "no server"
            call = httpx.post(f"{base}/call/outCall", json={"appId": APP, "called": "speaker"}).json()
            assert call["code"] == "000000", call
            call_id = call["callId"]
            answer = httpx.post(f"{base}/call/multOrders",
                                json={"appId": APP, "callId": call_id, "orders": MENU}).json()
            assert answer["code"] == "000000", answer
            time.sleep(1.5)  # the welcome (0.58 s) is over: the menu plays
            assert server.stdin is not None
            server.stdin.write(b"x7")  # "x" is not a key: ignored with a notice; 7 is pressed
            server.stdin.flush()

            def events() -> list[dict]:
                return httpx.get(f"{base}/events", params={"callId": call_id, "appId": APP}).json().get("events", [])

            assert wait_for(lambda: any(e["event"] == "multrpt" for e in events()), 20)
            dtmf = [e for e in events() if e["event"] == "ivrreportdtmf"]
            assert [(e["dtmfCode"], e["endReason"]) for e in dtmf] == [("7", "maxRevCnt")]
            httpx.post(f"{base}/call/disConnect", json={"appId": APP, "callId": call_id})
            time.sleep(0.5)
        finally:
            server.terminate()
            _, err = server.communicate(timeout=20)
    played = device.samples()
    welcome = VoiceLibrary(VOICES).load("welcome.wav")
    start = int(np.flatnonzero(played)[0])
    assert np.array_equal(played[start : start + len(welcome)], welcome)  # the prompt, sample for sample
    assert b"ignored" in err.lower() or b"not a key" in err.lower()
