"""Event delivery: the log before sending, retries until acknowledged, order, isolation, replay.

And the same through the real server with real callback receivers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.config import Application, Config
from engine.media.pacer import ScaledClock
from engine.server.app import ServerSettings, create_app
from engine.server.delivery import Delivery, RetryPolicy
from engine.server.event_log import EventLog
from engine.testing.receivers import ScriptedReceiver
from engine.testing.server import (
    FAST_RETRY,
    FIXED_TIME,
    REQUEST_EVENTS,
    FakeSpeaker,
    LiveServer,
    Receiver,
    wait_events,
    wait_for,
)

FLAKY = [(500, {"error": "down"}), (200, {"code": "1"})]


def _log(state: Path) -> list[dict]:
    """Every record of the event log in ``state``."""
    log = EventLog(state / "events")
    records, _end = log.read((0, 0), 10**9)
    log.close()
    return [record for _position, record in records]


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    rx = Receiver(list(FLAKY))
    yield rx
    rx.close()


def test_events_are_logged_and_delivered_once_in_order_after_failures(tmp_path: Path,
                                                                       receiver: Receiver) -> None:
    delivery = Delivery(tmp_path, {"app": receiver.url, "quiet": None}, FAST_RETRY)
    delivery.start()
    bodies = [{"event": "multrpt", "n": i} for i in range(20)]
    for body in bodies:
        delivery.publish("app", "call-1", body)
    delivery.publish("quiet", "call-2", {"event": "multrpt", "n": 99})
    wait_for(lambda: len(receiver.acked) == 20, what="20 acknowledged events")
    delivery.close()
    assert receiver.acked == bodies  # each exactly once, in order
    assert len(receiver.posts) == 22 and receiver.posts[:3] == [bodies[0]] * 3  # the first one retried twice
    logged = _log(tmp_path)
    assert [r["event"] for r in logged] == [*bodies, {"event": "multrpt", "n": 99}]
    assert [r["seq"] for r in logged] == list(range(1, 22))
    assert delivery.events("call-1") == bodies and delivery.events("nobody") is None
    stats = delivery.stats()
    assert (stats["logged"], stats["delivered"], stats["failures"], stats["backlog"]) == (21, 20, 2, 0)


def test_unacknowledged_events_are_sent_again_after_a_restart(tmp_path: Path) -> None:
    down = Delivery(tmp_path, {"app": "http://127.0.0.1:9/never"}, FAST_RETRY)  # nothing listens on port 9
    down.start()
    for i in range(3):
        down.publish("app", "c", {"n": i})
    wait_for(lambda: down.stats()["failures"] >= 3, what="failed attempts")
    down.close(drain_s=0.1)
    rx = Receiver()
    try:
        again = Delivery(tmp_path, {"app": rx.url}, FAST_RETRY)
        assert again.events("c") == [{"n": 0}, {"n": 1}, {"n": 2}]  # memory refilled from the log
        again.start()
        wait_for(lambda: len(rx.acked) == 3, what="replayed events")
        assert again.publish("app", "c", {"n": 3}) == 4  # sequence numbers go on
        wait_for(lambda: len(rx.acked) == 4, what="the new event")
        again.close()
        assert rx.acked == [{"n": i} for i in range(4)]
        assert len(_log(tmp_path)) == 4  # replayed events are not logged twice
        third = Delivery(tmp_path, {"app": rx.url}, FAST_RETRY)
        third.start()
        third.publish("app", "c", {"n": 4})
        wait_for(lambda: len(rx.acked) == 5, what="an event after the second restart")
        third.close()
        assert rx.acked[4] == {"n": 4} and len(rx.posts) == 5  # everything acknowledged: nothing sent again
    finally:
        rx.close()


def test_a_hanging_receiver_does_not_delay_another_applications_events(tmp_path: Path) -> None:
    hanging, quick = ScriptedReceiver(lambda _body: "hang"), Receiver()
    try:
        delivery = Delivery(tmp_path, {"slow": hanging.url, "fast": quick.url}, RetryPolicy(timeout_s=60))
        delivery.start()
        delivery.publish("slow", "a", {"n": 0})
        wait_for(lambda: hanging.posts, what="the slow application's event in flight")
        for i in range(5):
            delivery.publish("fast", "b", {"n": i})
        wait_for(lambda: len(quick.acked) == 5, what="the fast application's events")
        assert hanging.acked == []  # still hanging: it held up nothing else
        hanging.release()
        wait_for(lambda: hanging.acked, what="the slow application's event once released")
        delivery.close(drain_s=0.1)
    finally:
        hanging.close()
        quick.close()


def test_retry_policy_backs_off_to_a_cap() -> None:
    policy = RetryPolicy()
    assert [policy.delay_s(n) for n in (1, 2, 3, 7, 20)] == [0.5, 1.0, 2.0, 30.0, 30.0]


def test_server_events_reach_a_flaky_callback_and_the_log(tmp_path: Path, repo_root: Path,
                                                          receiver: Receiver) -> None:
    hanging = ScriptedReceiver(lambda _body: "hang")
    config = Config({"flaky-app": Application("flaky-app", callback_url=receiver.url),
                     "hung-app": Application("hung-app", callback_url=hanging.url)})
    settings = ServerSettings(config=config, voices=repo_root / "voices", recordings=tmp_path / "rec",
                              state_dir=tmp_path / "state", retry=FAST_RETRY)
    server = LiveServer(create_app(settings, speaker=FakeSpeaker(), clock=ScaledClock(25),
                                   wall_clock=lambda: FIXED_TIME))
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            ids = {}
            for app in ("hung-app", "flaky-app"):
                ids[app] = client.post("/ipcc/call/outCall", json={"appId": app, "called": "null",
                                                                   "keys": "4@0.3"}).json()["callId"]
            hung = {"appId": "hung-app", "callId": ids["hung-app"], "orders": [{"playFlag": 0, "voiceStr": "x"}]}
            for _ in range(3):
                assert client.post("/ipcc/call/multOrders", json=hung).json()["code"] == "000000"
            body = {"appId": "flaky-app", "callId": ids["flaky-app"],
                    "orders": [{"playFlag": 0, "voiceStr": "tone:1", "getkey": 1, "maxRevCnt": 1}]}
            for _ in range(2):
                assert client.post("/ipcc/call/multOrders", json=body).json()["code"] == "000000"
            expected = wait_events(client, ids["flaky-app"], 4, app_id="flaky-app")
            wait_for(lambda: len(receiver.acked) == 5, what="5 acknowledged events (callstatrpt first)")
            assert hanging.posts and hanging.acked == []  # not held up by the hanging application
            assert receiver.acked[0]["event"] == "callstatrpt"
            assert receiver.acked[1:] == expected
            assert [e["event"] for e in expected] == ["ivrreportdtmf", "multrpt"] * 2
            assert all(e["dtmfCode"] == "4" and e["timeStamp"] == "20240506070809123" for e in expected)
            assert len(receiver.posts) == 7  # two failed answers, retried
    finally:
        hanging.release()
        server.close()
        hanging.close()
    logged = _log(tmp_path / "state")
    assert [r["event"] for r in logged if r["appId"] == "flaky-app" and r["event"]["event"] in REQUEST_EVENTS
            ] == expected
    assert sum(r["appId"] == "hung-app" and r["event"]["event"] in REQUEST_EVENTS for r in logged) == 3


def test_per_application_concurrency_limit_holds_and_each_call_stays_in_order(tmp_path: Path) -> None:
    rx = ScriptedReceiver(lambda _body: "hang")
    try:
        delivery = Delivery(tmp_path, {"app": rx.url, "other": rx.url}, RetryPolicy(timeout_s=60),
                            concurrency={"app": 3})
        delivery.start()
        for n in range(60):
            delivery.publish("app", f"c{n % 10}", {"call": f"c{n % 10}", "n": n})
        wait_for(lambda: len(rx.posts) >= 3, what="three events in flight")
        rx.release()
        wait_for(lambda: len(rx.acked) == 60, what="every event")
        delivery.close()
        assert rx.max_open == 3  # never more than the application's limit at once
        for call in range(10):
            assert [b["n"] for b in rx.acked if b["call"] == f"c{call}"] == list(range(call, 60, 10))
    finally:
        rx.close()
