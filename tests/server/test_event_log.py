"""The event log: framed records, torn tails cut off, segments rotated and removed, a restart reads one segment."""

from __future__ import annotations

import json
from pathlib import Path

from engine.server.delivery import Delivery
from engine.server.event_log import EventLog
from engine.server.framing import frame, unframe
from engine.testing.receivers import ScriptedReceiver
from engine.testing.server import FAST_RETRY, wait_for


def _records(first: int, count: int, app: str = "app") -> list[dict]:
    return [{"seq": seq, "appId": app, "callId": f"c{seq % 3}", "event": {"n": seq}}
            for seq in range(first, first + count)]


def _all(log: EventLog) -> list[dict]:
    records, _end = log.read((0, 0), 10**9)
    return [record for _position, record in records]


def test_a_frame_round_trips_and_any_damage_is_detected() -> None:
    record = {"seq": 1, "event": {"data": "\udc80 您好"}}
    line = frame(record)
    assert line.isascii() and line.endswith(b"\n") and unframe(line) == record
    assert unframe(line[:-3] + b"\n") is None  # cut short
    flipped = line.replace(b"seq", b"seQ")
    assert unframe(flipped) is None  # same length, checksum differs
    assert unframe(line[:-1]) is None  # no newline: a write that never finished


def test_torn_last_line_in_the_event_log_swallows_no_event_after_a_restart(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.append(_records(1, 3))
    log.close()
    segment = next(tmp_path.glob("*.log"))
    whole = segment.stat().st_size
    with segment.open("ab") as file:
        file.write(frame(_records(4, 1)[0])[:25])  # kill -9 in the middle of a write
    again = EventLog(tmp_path)
    assert segment.stat().st_size == whole and again.last_seq == 3  # the torn tail is cut off
    again.append(_records(4, 2))
    assert [r["seq"] for r in _all(again)] == [1, 2, 3, 4, 5]  # event 4 is not glued to the torn bytes
    again.close()


def test_segments_rotate_by_size_and_a_restart_reads_only_the_newest(tmp_path: Path) -> None:
    log = EventLog(tmp_path, segment_bytes=2000)
    for first in range(1, 501, 10):
        log.append(_records(first, 10))
    log.close()
    segments = sorted(tmp_path.glob("*.log"))
    assert len(segments) > 10 and all(p.stat().st_size < 2000 + 10 * 100 for p in segments)
    again = EventLog(tmp_path, segment_bytes=2000)
    assert again.last_seq == 500
    assert len(again.tail_records()) < 30  # one segment, not 500 records
    assert [r["seq"] for r in _all(again)] == list(range(1, 501))
    start = again.segments[3]
    records, end = again.read((start, 0), 45)  # a cursor crosses into the next segments
    assert [r["seq"] for _p, r in records] == list(range(start, start + 45))
    assert end[0] >= again.segments[4]
    passed = again.segments.index(end[0])
    assert again.remove_before(end) == passed and again.segments[0] == end[0]
    assert [r["seq"] for r in _all(again)][0] == again.segments[0]
    again.close()


def test_acknowledged_segments_are_removed_and_nothing_is_sent_again_after_a_restart(tmp_path: Path) -> None:
    rx = ScriptedReceiver()
    try:
        delivery = Delivery(tmp_path, {"app": rx.url, "quiet": None}, FAST_RETRY, segment_bytes=4000)
        delivery.start()
        for i in range(600):
            delivery.publish("app" if i % 2 else "quiet", f"call-{i % 7}", {"event": "x", "n": i})
        wait_for(lambda: len(rx.acked) == 300, what="300 acknowledged events")
        delivery.close()
        assert len(list((tmp_path / "events").glob("*.log"))) <= 2  # of 25 segments written
        again = Delivery(tmp_path, {"app": rx.url}, FAST_RETRY, segment_bytes=4000)
        again.start()
        assert again.publish("app", "call-x", {"n": "after"}) == 601
        wait_for(lambda: len(rx.acked) == 301, what="the new event")
        again.close()
        assert rx.acked[-1] == {"n": "after"} and len(rx.posts) == 301  # nothing acknowledged was sent again
    finally:
        rx.close()


def test_unacknowledged_events_survive_rotation_and_are_sent_after_a_restart(tmp_path: Path) -> None:
    down = Delivery(tmp_path, {"app": "http://127.0.0.1:9/never"}, FAST_RETRY, segment_bytes=3000, window=50)
    down.start()
    for i in range(400):
        down.publish("app", f"call-{i % 5}", {"n": i})
    wait_for(lambda: down.stats()["failures"] >= 5, what="failed attempts")
    assert down.stats()["backlog"] <= 50  # the in-memory backlog is bounded; the rest stays in the log
    down.close(drain_s=0.1)
    rx = ScriptedReceiver()
    try:
        again = Delivery(tmp_path, {"app": rx.url}, FAST_RETRY, segment_bytes=3000, window=50)
        again.start()
        wait_for(lambda: len(rx.acked) == 400, what="400 replayed events")
        again.close()
        for call in range(5):  # each call's events in order
            assert [b["n"] for b in rx.acked if b["n"] % 5 == call] == list(range(call, 400, 5))
        assert sorted(b["n"] for b in rx.acked) == list(range(400))
    finally:
        rx.close()


def test_an_older_events_jsonl_is_moved_into_the_log_and_its_unacknowledged_events_sent(tmp_path: Path) -> None:
    lines = [json.dumps({"seq": n, "appId": "app", "callId": "c", "event": {"n": n}}) for n in (1, 2, 3)]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + '\n{"seq": 4, "appId": "ap')  # a torn tail
    (tmp_path / "delivered.jsonl").write_text('{"seq": 1}\n')
    rx = ScriptedReceiver()
    try:
        delivery = Delivery(tmp_path, {"app": rx.url}, FAST_RETRY)
        delivery.start()
        wait_for(lambda: len(rx.acked) == 2, what="the two unacknowledged events")
        assert delivery.publish("app", "c", {"n": "new"}) == 4
        wait_for(lambda: len(rx.acked) == 3, what="the new event")
        delivery.close()
        assert rx.acked == [{"n": 2}, {"n": 3}, {"n": "new"}] and len(rx.posts) == 3
        assert not (tmp_path / "events.jsonl").exists() and (tmp_path / "events.jsonl.migrated").exists()
        assert [r["seq"] for r in _all(EventLog(tmp_path / "events"))] == [1, 2, 3, 4]
    finally:
        rx.close()
