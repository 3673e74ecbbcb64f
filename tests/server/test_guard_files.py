"""Secure files: recordings in a per-application folder, 0600 in 0700, never through a symlink or over a file.

The server's path first (``outCall`` ``wav:NAME`` over HTTP, the recording written by the media thread), then
the vault's functions on their own.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from engine.config import Application, Config
from engine.errors import EndpointError
from engine.format import SAMPLE_RATE_HZ, seconds_to_samples
from engine.media.pacer import ScaledClock
from engine.server.app import ServerSettings, create_app
from engine.server.vault import app_folder_name, open_recording, private_dir
from engine.testing.server import FakeSpeaker, LiveServer, wait_events, wait_for

APP_A, APP_B, LINKED = "app-a", "app-b", "linked"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("guard-files")
    settings = ServerSettings(config=Config({app: Application(app) for app in (APP_A, APP_B, LINKED)}),
                              voices=repo_root / "voices", recordings=root / "rec", state_dir=root / "state")
    live = LiveServer(create_app(settings, speaker=FakeSpeaker(), clock=ScaledClock(10)))
    live.root = root  # type: ignore[attr-defined]
    yield live
    live.close()


@pytest.fixture()
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def _record(server: LiveServer, client: httpx.Client, app: str, name: str, seconds: float) -> dict[str, str]:
    """``outCall wav:NAME`` of ``app``, a tone of ``seconds``, hang up once it played; the outCall's answer."""
    call = client.post("/ipcc/call/outCall", json={"appId": app, "called": f"wav:{name}"}).json()
    if call["code"] != "000000":
        return call
    order = {"appId": app, "callId": call["callId"], "orders": [{"playFlag": 0, "voiceStr": f"tone:{seconds}"}]}
    assert client.post("/ipcc/call/multOrders", json=order).json()["code"] == "000000"
    assert wait_events(client, call["callId"], 1, 60, app_id=app)[0]["result"] == "complete"
    hang_up = {"appId": app, "callId": call["callId"]}
    assert client.post("/ipcc/call/disConnect", json=hang_up).json()["code"] == "000000"
    in_use = server.app.state.engine.endpoints.names_in_use
    wait_for(lambda: f"{app}/{name}.wav" not in in_use, 60, f"{app}'s {name}.wav closed")
    return call


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_symlink_in_the_recordings_folder_is_not_followed_over_http(server: LiveServer,
                                                                       client: httpx.Client) -> None:
    # issue 10: "recordings follow a symlink already in the recordings folder"
    root: Path = server.root  # type: ignore[attr-defined]
    target = root / "outside.txt"
    target.write_text("precious")
    folder = private_dir(root / "rec" / APP_A)
    (folder / "planted.wav").symlink_to(target)
    refused = _record(server, client, APP_A, "planted", 0.2)
    assert refused["code"] == "108100" and refused["msg"].startswith("called: the recording 'planted.wav'"), refused
    assert str(root) not in refused["msg"]  # no absolute path in the message
    assert target.read_text() == "precious" and (folder / "planted.wav").is_symlink()
    assert server.app.state.engine.endpoints.names_in_use == set()  # nothing left held
    assert client.get("/ipcc/status").json()["calls"]["live_calls"] == 0


def test_one_application_cannot_overwrite_anothers_recording_over_http(server: LiveServer,
                                                                       client: httpx.Client) -> None:
    # issue 10: "one application can overwrite another's"
    rec: Path = server.root / "rec"  # type: ignore[attr-defined]
    assert _record(server, client, APP_A, "same", 0.4)["code"] == "000000"
    a_digest = _digest(rec / APP_A / "same.wav")
    assert _record(server, client, APP_B, "same", 0.2)["code"] == "000000"  # b's own folder
    assert sf.info(str(rec / APP_A / "same.wav")).frames >= seconds_to_samples(0.4)
    assert sf.info(str(rec / APP_B / "same.wav")).frames >= seconds_to_samples(0.2)
    again = _record(server, client, APP_A, "same", 0.2)  # and not over its own finished one either
    assert again["code"] == "108100" and "exists already" in again["msg"], again
    assert _digest(rec / APP_A / "same.wav") == a_digest
    assert not (rec / "same.wav").exists()  # nothing at the top of the recordings folder


def test_recordings_written_by_the_server_are_0600_in_0700_folders(server: LiveServer, client: httpx.Client) -> None:
    rec: Path = server.root / "rec"  # type: ignore[attr-defined]
    assert _record(server, client, APP_B, "modes", 0.2)["code"] == "000000"
    assert _mode(rec) == 0o700 and _mode(rec / APP_B) == 0o700
    assert _mode(rec / APP_B / "modes.wav") == 0o600
    info = sf.info(str(rec / APP_B / "modes.wav"))
    assert info.samplerate == SAMPLE_RATE_HZ and info.channels == 2 and info.frames % 160 == 0


def test_a_symlinked_application_folder_is_refused_over_http(server: LiveServer, client: httpx.Client) -> None:
    root: Path = server.root  # type: ignore[attr-defined]
    outside = root / "elsewhere"
    outside.mkdir()
    (root / "rec").mkdir(exist_ok=True)
    (root / "rec" / LINKED).symlink_to(outside, target_is_directory=True)
    refused = _record(server, client, LINKED, "x", 0.2)
    assert refused["code"] == "108100" and "symbolic link" in refused["msg"] and str(root) not in refused["msg"]
    assert list(outside.iterdir()) == []


def test_open_recording_does_not_follow_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "outside.txt"
    target.write_text("precious")
    folder = private_dir(tmp_path / "rec" / "app-a")
    (folder / "call.wav").symlink_to(target)
    with pytest.raises(EndpointError, match="exists already|cannot be created") as refused:
        open_recording(tmp_path / "rec", "app-a", "call.wav")
    assert str(tmp_path) not in str(refused.value)  # no absolute path in the message
    assert target.read_text() == "precious"


def test_open_recording_keeps_applications_apart(tmp_path: Path) -> None:
    with open_recording(tmp_path, "app-a", "same.wav") as first:
        first.write(b"a's audio")
    with open_recording(tmp_path, "app-b", "same.wav") as second:
        second.write(b"b's audio")
    assert (tmp_path / "app-a" / "same.wav").read_bytes() == b"a's audio"
    assert (tmp_path / "app-b" / "same.wav").read_bytes() == b"b's audio"
    with pytest.raises(EndpointError, match="exists already"):
        open_recording(tmp_path, "app-a", "same.wav")
    assert (tmp_path / "app-a" / "same.wav").read_bytes() == b"a's audio"


def test_recordings_are_0600_in_0700_folders_and_soundfile_writes_them(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    with open_recording(root, "app-a", "tone.wav") as file, \
            sf.SoundFile(file, "w", SAMPLE_RATE_HZ, 2, "PCM_16", format="WAV") as wav:
        wav.write(np.zeros((160, 2), dtype=np.int16))
    assert _mode(root) == 0o700 and _mode(root / "app-a") == 0o700
    assert _mode(root / "app-a" / "tone.wav") == 0o600
    assert sf.info(str(root / "app-a" / "tone.wav")).frames == 160


@pytest.mark.parametrize("app_id", ["../up", ".hidden", "a/b", "\udc80", ""])
def test_odd_application_ids_get_a_digest_folder(app_id: str) -> None:
    name = app_folder_name(app_id)
    assert name.startswith("app-") and len(name) == 36 and "/" not in name


def test_a_name_with_a_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EndpointError, match="plain file name"):
        open_recording(tmp_path, "app-a", "../x.wav")


def _modes_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): _mode(p) for p in [root, *root.rglob("*")] if not p.is_symlink()}


def test_the_state_folder_and_everything_in_it_are_0700_and_0600(server: LiveServer, client: httpx.Client) -> None:
    state: Path = server.root / "state"  # type: ignore[attr-defined]
    assert _record(server, client, APP_A, "state-modes", 0.2)["code"] == "000000"  # events, journal, acks written
    modes = _modes_under(state)
    assert {"events", "journal.log"} <= set(modes), modes
    assert any(name.startswith("events/") for name in modes), modes
    wrong = {name: oct(mode) for name, mode in modes.items()
             if mode != (0o700 if (state / name).is_dir() else 0o600)}
    assert wrong == {}


def test_an_existing_state_folder_is_tightened_at_start_up(tmp_path: Path, repo_root: Path) -> None:
    state = tmp_path / "state"
    (state / "events").mkdir(parents=True)
    (state / "old.jsonl").write_text("")
    for path, mode in ((state, 0o755), (state / "events", 0o777), (state / "old.jsonl", 0o644)):
        path.chmod(mode)
    outside = tmp_path / "outside.txt"
    outside.write_text("")
    outside.chmod(0o644)
    (state / "link").symlink_to(outside)
    settings = ServerSettings(config=Config({APP_A: Application(APP_A)}), voices=repo_root / "voices",
                              recordings=tmp_path / "rec", state_dir=state)
    live = LiveServer(create_app(settings, speaker=FakeSpeaker(), clock=ScaledClock(10)))
    try:
        modes = _modes_under(state)
    finally:
        live.close()
    assert modes["."] == 0o700 and modes["events"] == 0o700 and modes["old.jsonl"] == 0o600
    assert _mode(outside) == 0o644  # a symbolic link is not followed
