"""Faults of the state folder's disk: full (ENOSPC) while serving, read-only at start-up.

A real tmpfs, mounted by the test (root only), and a real ``ipcc-engine serve`` process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest

from engine.config import Application, Config
from engine.errors import INTERNAL, OK
from engine.media.pacer import ScaledClock
from engine.server.app import ServerSettings, create_app
from engine.testing.receivers import ScriptedReceiver
from engine.testing.server import FAST_RETRY, FIXED_TIME, REQUEST_EVENTS, FakeSpeaker, LiveServer, free_port, wait_for

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
ENGINE = Path(sys.executable).with_name("ipcc-engine")


@pytest.fixture()
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs at ``tmp_path/mnt``, unmounted afterwards."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _server(state: Path, receiver: ScriptedReceiver, repo_root: Path, tmp_path: Path) -> LiveServer:
    config = Config({"app": Application("app", callback_url=receiver.url)})
    settings = ServerSettings(config=config, voices=repo_root / "voices", recordings=tmp_path / "rec",
                              state_dir=state, retry=FAST_RETRY)
    return LiveServer(create_app(settings, speaker=FakeSpeaker(), clock=ScaledClock(25),
                                 wall_clock=lambda: FIXED_TIME))


def _fill_up(file: BinaryIO) -> None:
    """Write to ``file`` until the file system is full."""
    with contextlib.suppress(OSError):
        for size in (65536, 4096, 512):
            while True:
                file.write(b"\0" * size)
                file.flush()


@ROOT_ONLY
def test_enospc_in_the_state_folder_refuses_work_then_delivery_resumes_by_itself(
        tmpfs: Path, tmp_path: Path, repo_root: Path, receiver: ScriptedReceiver,
        caplog: pytest.LogCaptureFixture) -> None:
    server = _server(tmpfs / "state", receiver, repo_root, tmp_path)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            call_id = client.post("/ipcc/call/outCall", json={"appId": "app", "called": "null"}).json()["callId"]
            order = {"appId": "app", "callId": call_id, "orders": [{"playFlag": 0, "voiceStr": "tone:0.2"}]}
            assert client.post("/ipcc/call/multOrders", json=order).json()["code"] == OK
            def request_events() -> list[dict]:  # the call events (callstatrpt, ...) of the many calls aside
                return [b for b in receiver.acked if b["event"] in REQUEST_EVENTS]

            wait_for(lambda: len(request_events()) == 1, what="the first multrpt")
            collecting = {"appId": "app", "callId": call_id, "orders": [  # its hang-up event is 6 KiB in the log
                {"playFlag": 0, "voiceStr": "tone:600", "getkey": 1, "maxRevCnt": 4, "data": "您" * 1024}]}
            assert client.post("/ipcc/call/multOrders", json=collecting).json()["code"] == OK
            filler = tmpfs / "filler"
            with caplog.at_level(logging.WARNING), filler.open("wb") as file:
                _fill_up(file)
                codes = []  # the journal's last page may still hold a few records: then the next one fails
                while INTERNAL not in codes and len(codes) < 500:
                    answer = client.post("/ipcc/call/outCall", json={"appId": "app", "called": "null"}).json()
                    codes.append(answer["code"])
                assert codes[-1] == INTERNAL and set(codes[:-1]) <= {OK}
                refused = client.post("/ipcc/call/multOrders", json=order).json()
                assert refused["code"] == INTERNAL and "disk is full" in refused["msg"]
                assert "/" not in refused["msg"]  # no path in the message
                assert client.post("/ipcc/call/disConnect", json={"appId": "app", "callId": call_id}).json()[
                    "code"] == OK  # needs no disk: the hang-up event waits in memory

                def full_and_said() -> bool:
                    _fill_up(file)  # space the engine frees (a journal snapshot) is taken again
                    return client.get("/ipcc/status").json()["delivery"]["disk_full"]

                wait_for(full_and_said, what="the status saying the disk is full")
            filler.unlink()
            wait_for(lambda: len(request_events()) == 3, what="the hang-up's events after space returned")
            events = request_events()
            assert [b["event"] for b in events[1:]] == ["ivrreportdtmf", "multrpt"]
            assert events[1]["data"] == "您" * 1024 and events[2]["result"] == "hangup"
            wait_for(lambda: any(b["event"] == "calldisconnectrpt" and b["callId"] == call_id
                                 for b in receiver.acked), what="the call's calldisconnectrpt")
            assert any("cannot write the event log (the disk is full)" in r.message for r in caplog.records)
            assert any("delivery resumes" in r.message for r in caplog.records)
            again = client.post("/ipcc/call/outCall", json={"appId": "app", "called": "null"}).json()
            assert again["code"] == OK
    finally:
        server.close()


@ROOT_ONLY
def test_read_only_state_folder_fails_start_up_fast_with_a_message(tmp_path: Path, repo_root: Path) -> None:
    state = tmp_path / "ro"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(state)], check=True)
    try:
        done = subprocess.run([str(ENGINE), "serve", "--port", str(free_port()), "--state", str(state),
                               "--voices", str(repo_root / "voices")], capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)
    assert done.returncode != 0
    assert "state folder 'ro' is not writable: Read-only file system" in done.stderr
