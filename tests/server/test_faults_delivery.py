"""Faults at the receiving end: bad characters, answers of 1 GiB, receivers that hang, fail, close or are down.

Real sockets throughout (a scripted asyncio receiver, :class:`engine.testing.receivers.ScriptedReceiver`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from engine.server.delivery import Delivery, RetryPolicy
from engine.server.event_log import EventLog
from engine.testing.receivers import ScriptedReceiver
from engine.testing.server import FAST_RETRY, wait_for


def _rss_bytes() -> int:
    fields = Path("/proc/self/status").read_text().split("VmRSS:")[1].split()
    return int(fields[0]) * 1024


def test_lone_surrogate_in_data_kills_no_delivery_thread(tmp_path: Path, receiver: ScriptedReceiver) -> None:
    delivery = Delivery(tmp_path, {"app": receiver.url}, FAST_RETRY)
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
        delivery = Delivery(tmp_path, {"app": rx.url}, FAST_RETRY)
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
        down = Delivery(tmp_path / "down", {"app": "http://127.0.0.1:9/never"}, FAST_RETRY)  # nothing listens there
        down.start()
        down.publish("app", "c", {"kind": "down"})
        wait_for(lambda: down.stats()["failures"] >= 3, what="attempts at a receiver that is down")
        down.close(drain_s=0.1)
        delivery = Delivery(tmp_path / "up", {"app": rx.url}, FAST_RETRY)
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


def test_an_exception_on_the_delivery_thread_is_logged_and_delivery_carries_on(
        tmp_path: Path, receiver: ScriptedReceiver, caplog: pytest.LogCaptureFixture) -> None:
    delivery = Delivery(tmp_path, {"app": receiver.url}, FAST_RETRY)
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
