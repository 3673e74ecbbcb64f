"""Issue 10's file defects over real HTTP: a contract-valid request naming a huge file is refused, cheaply."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import soundfile as sf

from engine.config import DEMO_APP_ID, Application, Config
from engine.media.pacer import ScaledClock
from engine.server.app import ServerSettings, create_app
from engine.testing.media_files import noise, write_silence
from engine.testing.server import FakeSpeaker, LiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    root = tmp_path_factory.mktemp("file-limits")
    voices = root / "voices"
    voices.mkdir()
    write_silence(voices / "silence.flac", 3 * 3600)
    sf.write(str(voices / "prompt.flac"), noise(20, 44100), 44100, subtype="PCM_16")
    (voices / "evil.wav").symlink_to(root / "secret.wav")
    sf.write(str(root / "secret.wav"), noise(1, 8000), 8000, subtype="PCM_16")
    settings = ServerSettings(config=Config({DEMO_APP_ID: Application(DEMO_APP_ID)}), voices=voices,
                              recordings=root / "recordings", state_dir=root / "state")  # default: 2 slots
    app = create_app(settings, speaker=FakeSpeaker(), clock=ScaledClock(25))
    live = LiveServer(app)
    yield live, root
    live.close()


def _mult(client: httpx.Client, voice: str) -> dict[str, str]:
    call_id = client.post("/ipcc/call/outCall", json={"appId": DEMO_APP_ID, "called": "null"}).json()["callId"]
    body = {"appId": DEMO_APP_ID, "callId": call_id, "orders": [{"playFlag": 1, "voiceStr": voice}]}
    return client.post("/ipcc/call/multOrders", json=body).json()


def test_flac_of_three_hours_of_silence_is_refused_over_http(server: tuple[LiveServer, Path]) -> None:
    live, root = server
    with httpx.Client(base_url=live.url, timeout=30) as client:
        answer = _mult(client, "silence.flac")
        assert answer["code"] == "108100"
        assert answer["msg"] == ("orders[0].voiceStr: 'silence.flac' lasts 10800.0 s by its header: over the "
                                 "limit max_file_seconds = 600 s")
        evil = _mult(client, "evil.wav")
        assert evil["code"] == "108100" and "points outside the voice library" in evil["msg"]
        assert str(root) not in evil["msg"] + answer["msg"]
        assert client.get("/ipcc/status").status_code == 200


def test_four_first_loads_of_one_app_all_get_000000_and_decode_the_file_once(server: tuple[LiveServer, Path]) -> None:
    live, _ = server
    library = live.app.state.engine.library
    decodes_before = library.decodes
    start = threading.Barrier(4)
    codes: list[str] = []

    def request() -> None:
        with httpx.Client(base_url=live.url, timeout=30) as client:
            call_id = client.post("/ipcc/call/outCall", json={"appId": DEMO_APP_ID, "called": "null"}).json()
            start.wait(30)
            body = {"appId": DEMO_APP_ID, "callId": call_id["callId"],
                    "orders": [{"playFlag": 1, "voiceStr": "prompt.flac"}]}
            codes.append(client.post("/ipcc/call/multOrders", json=body).json()["code"])

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert codes == ["000000"] * 4
    assert library.decodes - decodes_before == 1
