"""``kill -9`` and a restart: every accepted request and live call gets its outcome; the journal's torn tail.

Real ``ipcc-engine serve`` processes killed with SIGKILL, with the calls' media in the server or in a media worker
(which exits with the server: no orphan keeps playing).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from engine.errors import OK
from engine.server.journal import Journal
from engine.testing.receivers import ScriptedReceiver
from engine.testing.server import free_port, wait_for

ENGINE = Path(sys.executable).with_name("ipcc-engine")


class _Serve:
    """``ipcc-engine serve`` as a real process."""

    def __init__(self, tmp_path: Path, repo_root: Path, config: Path, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "IPCC_CACHE_DIR": str(tmp_path / "cache")}
        self.process = subprocess.Popen(
            [str(ENGINE), "serve", "--port", str(self.port), "--config", str(config), "--state",
             str(tmp_path / "state"), "--recordings", str(tmp_path / "rec"), "--voices", str(repo_root / "voices"),
             *options],
            env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / f"serve-{self.port}.log").open("w"))
        wait_for(self._up, timeout_s=60, what="the server answering /ipcc/status")

    def _up(self) -> bool:
        assert self.process.poll() is None, "serve exited"
        try:
            return httpx.get(self.url + "/ipcc/status", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


def _gone(pid: int) -> bool:
    """True when process ``pid`` has exited (a zombie no parent reaped yet counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "one-worker"])
def test_kill_9_then_restart_every_accepted_request_and_live_call_gets_its_outcome(
        tmp_path: Path, repo_root: Path, receiver: ScriptedReceiver, workers: int) -> None:
    config = tmp_path / "apps.toml"
    config.write_text(f'[[applications]]\nappId = "app"\ncallbackUrl = "{receiver.url}"\n')
    options = ("--media-processes", str(workers))
    first = _Serve(tmp_path, repo_root, config, *options)
    worker_pids = [w["pid"] for w in httpx.get(first.url + "/ipcc/status", timeout=10).json().get("workers", [])]
    assert len(worker_pids) == workers
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
    before_kill = [json.dumps(b, sort_keys=True) for b in receiver.acked]
    wait_for(lambda: all(_gone(pid) for pid in worker_pids), 30, "the killed server's media workers to exit")
    second = _Serve(tmp_path, repo_root, config, *options)
    try:
        wait_for(lambda: sum(b["event"] == "calldisconnectrpt" for b in receiver.acked) == 5, timeout_s=30,
                 what="a hang-up event for every live call")
        # Delivery is at least once: an event acknowledged just before the kill, whose acknowledgement had not
        # reached the disk yet, is sent again (the very same body). Take such copies out once each.
        resendable = list(before_kill)
        distinct = list(receiver.acked[:len(before_kill)])
        for body in receiver.acked[len(before_kill):]:
            text = json.dumps(body, sort_keys=True)
            if text in resendable:
                resendable.remove(text)
            else:
                distinct.append(body)
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
