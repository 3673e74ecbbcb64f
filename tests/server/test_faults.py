"""Faults: bad characters, hostile or absent receivers, a full disk, a read-only state folder, ``kill -9``.

Real components throughout: real sockets, a real tmpfs (mounted by the test when it runs as root), real
``ipcc-engine serve`` processes killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
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
from engine.server.delivery import Delivery, RetryPolicy
from engine.server.event_log import EventLog
from engine.server.journal import Journal
from engine.testing.receivers import ScriptedReceiver
from engine.testing.server import FIXED_TIME, REQUEST_EVENTS, FakeSpeaker, LiveServer, wait_for

FAST = RetryPolicy(initial_s=0.01, factor=2, cap_s=0.05, timeout_s=0.5)
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
ENGINE = Path(sys.executable).with_name("ipcc-engine")


def _rss_bytes() -> int:
    fields = Path("/proc/self/status").read_text().split("VmRSS:")[1].split()
    return int(fields[0]) * 1024


@pytest.fixture()
def receiver() -> Iterator[ScriptedReceiver]:
    rx = ScriptedReceiver()
    yield rx
    rx.close()


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


def test_lone_surrogate_in_data_kills_no_delivery_thread(tmp_path: Path, receiver: ScriptedReceiver) -> None:
    delivery = Delivery(tmp_path, {"app": receiver.url}, FAST)
    delivery.start()
    delivery.publish("app", "c1", {"event": "ivrreportdtmf", "data": "\udc80 ok"})
    delivery.publish("app", "c1", {"event": "multrpt", "data": "next"})
    wait_for(lambda: len(receiver.acked) == 2, what="both events acknowledged")
    delivery.close()
    assert receiver.acked == [{"event": "ivrreportdtmf", "data": "\ufffd ok"}, {"event": "multrpt", "data": "next"}]
    log = EventLog(tmp_path / "events")
    assert log.read((0, 0), 10)[0][0][1]["event"]["data"] == "\udc80 ok"  # the log keeps it exactly
    log.close()
    assert delivery.stats()["errors"] == 0


def test_callback_answer_of_1_gib_is_cut_off_without_being_read(tmp_path: Path) -> None:
    answers = iter(["huge", "huge"])
    rx = ScriptedReceiver(lambda _body: next(answers, "ack"))
    try:
        before = _rss_bytes()
        delivery = Delivery(tmp_path, {"app": rx.url}, FAST)
        delivery.start()
        delivery.publish("app", "c", {"n": 1})
        wait_for(lambda: len(rx.acked) == 1, what="the event acknowledged after two huge answers")
        delivery.close()
        assert len(rx.posts) == 3 and delivery.stats()["failures"] == 2
        assert rx.huge_bytes_sent < 64 << 20  # the engine closed the connection: at most socket buffers
        assert _rss_bytes() - before < 64 << 20
    finally:
        rx.close()


def test_receiver_that_hangs_errors_closes_or_is_down_is_retried_within_bounds(tmp_path: Path) -> None:
    script = {"hang": iter(["hang"]), "error": iter(["error", "error"]), "close": iter(["close"])}
    rx = ScriptedReceiver(lambda body: next(script[body["kind"]], "ack") if body["kind"] in script else "ack")
    try:
        down = Delivery(tmp_path / "down", {"app": "http://127.0.0.1:9/never"}, FAST)  # nothing listens there
        down.start()
        down.publish("app", "c", {"kind": "down"})
        wait_for(lambda: down.stats()["failures"] >= 3, what="attempts at a receiver that is down")
        down.close(drain_s=0.1)
        delivery = Delivery(tmp_path / "up", {"app": rx.url}, FAST)
        delivery.start()
        for kind in ("hang", "error", "close", "fine"):
            delivery.publish("app", kind, {"kind": kind})
        wait_for(lambda: len(rx.acked) == 4, what="every event acknowledged in the end")
        stats = delivery.stats()
        delivery.close()
        assert stats["failures"] == 4 and stats["errors"] == 0  # 1 timeout + 2 errors + 1 closed connection
        rx.release()
    finally:
        rx.close()


def test_one_stuck_call_delays_only_that_call(tmp_path: Path) -> None:
    rx = ScriptedReceiver(lambda body: "hang" if body["call"] == "stuck" else "ack")
    try:
        delivery = Delivery(tmp_path, {"app": rx.url}, RetryPolicy(timeout_s=30), concurrency=4)
        delivery.start()
        for n in range(3):
            delivery.publish("app", "stuck", {"call": "stuck", "n": n})
        for n in range(200):
            delivery.publish("app", f"c{n % 10}", {"call": f"c{n % 10}", "n": n})
        wait_for(lambda: len(rx.acked) == 200, what="the other calls' events")
        assert [b for b in rx.posts if b["call"] == "stuck"] == [{"call": "stuck", "n": 0}]  # one in flight
        rx.release()
        wait_for(lambda: len(rx.acked) == 203, what="the stuck call's events")
        delivery.close()
        assert [b["n"] for b in rx.acked if b["call"] == "stuck"] == [0, 1, 2]
        for call in range(10):
            assert [b["n"] for b in rx.acked if b["call"] == f"c{call}"] == list(range(call, 200, 10))
    finally:
        rx.close()


def _server(state: Path, receiver: ScriptedReceiver, repo_root: Path, tmp_path: Path) -> LiveServer:
    config = Config({"app": Application("app", callback_url=receiver.url)})
    settings = ServerSettings(config=config, voices=repo_root / "voices", recordings=tmp_path / "rec",
                              state_dir=state, retry=FAST)
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
        done = subprocess.run([str(ENGINE), "serve", "--port", str(_free_port()), "--state", str(state),
                               "--voices", str(repo_root / "voices")], capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)
    assert done.returncode != 0
    assert "state folder 'ro' is not writable: Read-only file system" in done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Serve:
    """``ipcc-engine serve`` as a real process."""

    def __init__(self, tmp_path: Path, repo_root: Path, config: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "IPCC_CACHE_DIR": str(tmp_path / "cache")}
        self.process = subprocess.Popen(
            [str(ENGINE), "serve", "--port", str(self.port), "--config", str(config), "--state",
             str(tmp_path / "state"), "--recordings", str(tmp_path / "rec"), "--voices", str(repo_root / "voices")],
            env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / f"serve-{self.port}.log").open("w"))
        wait_for(self._up, timeout_s=60, what="the server answering /ipcc/status")

    def _up(self) -> bool:
        assert self.process.poll() is None, "serve exited"
        try:
            return httpx.get(self.url + "/ipcc/status", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


def test_kill_9_then_restart_every_accepted_request_and_live_call_gets_its_outcome(
        tmp_path: Path, repo_root: Path, receiver: ScriptedReceiver) -> None:
    config = tmp_path / "apps.toml"
    config.write_text(f'[[applications]]\nappId = "app"\ncallbackUrl = "{receiver.url}"\n')
    first = _Serve(tmp_path, repo_root, config)
    accepted: dict[str, int] = {}
    try:
        with httpx.Client(base_url=first.url, timeout=30) as client:
            for playing in (1, 1, 1, 50, 50):  # beep once (ends before the kill) or the welcome 50 times
                call_id = client.post("/ipcc/call/outCall", json={"appId": "app", "called": "null"}).json()["callId"]
                order = {"appId": "app", "callId": call_id,
                         "orders": [{"playFlag": 1, "voiceStr": "welcome.wav" if playing > 1 else "beep.wav",
                                     "playTime": playing}]}
                for _ in range(2 if playing > 1 else 1):
                    assert client.post("/ipcc/call/multOrders", json=order).json()["code"] == OK
                    accepted[call_id] = accepted.get(call_id, 0) + 1
        wait_for(lambda: sum(b["event"] == "multrpt" for b in receiver.acked) == 3, timeout_s=30,
                 what="the three short requests' multrpt")
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(30)
    second = _Serve(tmp_path, repo_root, config)
    try:
        wait_for(lambda: sum(b["event"] == "calldisconnectrpt" for b in receiver.acked) == 5, timeout_s=30,
                 what="a hang-up event for every live call")
        # Delivery is at least once: an event acknowledged just before the kill, whose acknowledgement had not
        # reached the disk yet, is sent again (the very same body). Count distinct bodies, but every "error"
        # multrpt: the restart makes them (once each), and two requests of one call have identical ones.
        errors = [b for b in receiver.acked if b["event"] == "multrpt" and b["result"] == "error"]
        distinct = [*{json.dumps(b, sort_keys=True): b for b in receiver.acked if b not in errors}.values(), *errors]
        distinct.sort(key=receiver.acked.index)
        for call_id, count in accepted.items():
            bodies = [b for b in distinct if b["callId"] == call_id]
            results = [b["result"] for b in bodies if b["event"] == "multrpt"]
            assert len(results) == count, (call_id, results)  # every accepted request has exactly one outcome
            assert results == (["complete"] if count == 1 else ["error", "error"])
            assert bodies[-1]["event"] == "calldisconnectrpt" and bodies[-1]["reason"] == "restart"
        assert len(distinct) == 5 + 3 + 4 + 5  # callstatrpt, multrpt, hang-ups
        assert len(receiver.acked) - len(distinct) <= 3  # resent: only what was acknowledged right before the kill
    finally:
        second.process.send_signal(signal.SIGTERM)
        assert second.process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    assert json.loads((tmp_path / "state" / "acks.json").read_text())["app"]["acked"] == []


def test_an_exception_on_the_delivery_thread_is_logged_and_delivery_carries_on(
        tmp_path: Path, receiver: ScriptedReceiver, caplog: pytest.LogCaptureFixture) -> None:
    delivery = Delivery(tmp_path, {"app": receiver.url}, FAST)
    delivery.start()
    with caplog.at_level(logging.ERROR):
        delivery.publish("app", "c", {"n": 1})
        delivery.publish("app", "c", {"n": {1, 2}})  # a set: not JSON (a bug elsewhere)
        delivery.publish("app", "c", {"n": 3})
        wait_for(lambda: len(receiver.acked) == 2, what="the two storable events")
    delivery.publish("app", "c", {"n": 4})
    wait_for(lambda: len(receiver.acked) == 3, what="an event published after the failure")
    delivery.close()
    assert receiver.acked == [{"n": 1}, {"n": 3}, {"n": 4}]
    assert any("event 2 of call c cannot be stored as JSON" in r.message and r.exc_info for r in caplog.records)


def test_journal_survives_a_torn_tail_and_compacts_to_what_is_open(tmp_path: Path) -> None:
    journal = Journal(tmp_path, compact_bytes=2000)
    journal.call_started("app", "a")
    for _ in range(2):
        journal.request_accepted("a")
    journal.request_ended("a")
    journal.close()
    with (tmp_path / "journal.log").open("ab") as file:
        file.write(b'0badc0de {"op":"req","ca')  # kill -9 in the middle of a write
    again = Journal(tmp_path, compact_bytes=2000)
    assert again.open_calls() == [("app", "a", 1)]
    for n in range(100):  # past compact_bytes: the file is rewritten as what is open
        again.call_started("app", f"c{n}")
        again.call_ended(f"c{n}")
    again.request_accepted("a")
    again.close()
    assert (tmp_path / "journal.log").stat().st_size < 2000
    assert Journal(tmp_path).open_calls() == [("app", "a", 2)]
