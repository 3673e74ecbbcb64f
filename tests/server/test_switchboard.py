"""The switchboard and the media loop without HTTP: a manual clock, many calls, keys on the right calls."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from engine.audio.caller import CallerAudio, ScriptedCaller, parse_key_script
from engine.config import DEMO_APP_ID, Application, Config
from engine.core.timeline import Program
from engine.errors import QueueFullError, UnknownCallError
from engine.media.call import Call
from engine.media.pacer import ManualClock
from engine.media.sinks import MemorySink, NullSink
from engine.server.endpoints import Endpoint
from engine.server.switchboard import Switchboard
from engine.testing.server import FIXED_TIME, FakeSpeaker
from engine.wire.request import parse_mult_orders


def _program(call_id: str, seconds: float = 0.5, **getkey: Any) -> Program:
    order = {"playFlag": 0, "voiceStr": f"tone:{seconds}", **getkey}
    request = parse_mult_orders({"appId": DEMO_APP_ID, "callId": call_id, "orders": [order]})
    return Program(request, (FakeSpeaker().synthesize(f"tone:{seconds}"),))


def _board(queue_limit: int = 8) -> tuple[Switchboard, list[dict[str, Any]]]:
    published: list[dict[str, Any]] = []
    config = Config({DEMO_APP_ID: Application(DEMO_APP_ID, queue_limit=queue_limit)})
    board = Switchboard(config, lambda app, call, body: published.append(body), ManualClock(),
                        wall_clock=lambda: FIXED_TIME)
    return board, published


def _run(board: Switchboard, seconds: float) -> None:
    board.pacer.run(max_ticks=int(seconds * 50))


def test_keys_reach_the_right_calls_after_a_call_in_the_middle_leaves() -> None:
    board, published = _board()
    ids = []
    for i in range(5):
        keys = f"{i}@0.4" if i != 2 else ""
        ids.append(board.create(DEMO_APP_ID, Endpoint(ScriptedCaller(parse_key_script(keys)), NullSink(), "t")))
    board.hang_up(DEMO_APP_ID, ids[1])
    _run(board, 0.1)
    for call_id in ids[:1] + ids[2:]:
        board.submit(DEMO_APP_ID, call_id, _program(call_id, 1.0, getkey=1, maxRevCnt=1, totalTime=3))
    _run(board, 4)
    digits = {b["callId"]: b["dtmfCode"] for b in published if b["event"] == "ivrreportdtmf"}
    assert digits == {ids[0]: "0", ids[2]: "", ids[3]: "3", ids[4]: "4"}
    assert all(b["timeStamp"] == "20240506070809123" for b in published)
    assert board.sizes() == {"live_calls": 4, "held_requests": 0, "commands": 0, "media_calls": 4}


def test_the_registry_refuses_unknown_calls_and_full_queues() -> None:
    board, published = _board(queue_limit=1)
    call_id = board.create(DEMO_APP_ID, Endpoint(CallerAudio(np.zeros(0, np.int16)), NullSink(), "t"))
    with pytest.raises(UnknownCallError):
        board.submit("other-app", call_id, _program(call_id))
    board.submit(DEMO_APP_ID, call_id, _program(call_id))
    board.submit(DEMO_APP_ID, call_id, _program(call_id))
    with pytest.raises(QueueFullError):
        board.submit(DEMO_APP_ID, call_id, _program(call_id))
    _run(board, 1.2)
    assert [b["result"] for b in published] == ["complete", "complete"]
    board.submit(DEMO_APP_ID, call_id, _program(call_id))  # places given back
    board.close()
    assert [b["result"] for b in published][-1] == "hangup"
    assert board.sizes()["live_calls"] == 0
    with pytest.raises(UnknownCallError):
        board.check_call(DEMO_APP_ID, call_id)


class _BrokenCaller(CallerAudio):
    def read(self, count: int) -> np.ndarray:
        raise RuntimeError("the endpoint broke")


def test_a_failing_call_does_not_stop_the_others() -> None:
    board, published = _board()
    bad = board.create(DEMO_APP_ID, Endpoint(_BrokenCaller(np.zeros(0, np.int16)), NullSink(), "t"))
    sink = MemorySink()
    good = board.create(DEMO_APP_ID, Endpoint(CallerAudio(np.zeros(0, np.int16)), sink, "t"))
    for call_id in (bad, good):
        board.submit(DEMO_APP_ID, call_id, _program(call_id, 0.2))
    _run(board, 0.5)
    results = {b["callId"]: b["result"] for b in published}
    assert results == {bad: "error", good: "complete"}
    assert board.media.failures >= 1
    np.testing.assert_array_equal(sink.played()[:1600], FakeSpeaker().synthesize("tone:0.2"))


def test_call_stop_before_the_first_frame_stops_the_queued_request() -> None:
    events: list[Any] = []
    call = Call(DEMO_APP_ID, "c", CallerAudio(np.zeros(0, np.int16)), NullSink(),
                lambda _call, event, at: events.append((event.result.value, at)))
    call.submit(_program("c"))
    call.stop()
    assert events == [("stopped", 0)] and call.idle


class _FailingLater(CallerAudio):
    """A caller whose reads fail once ``broken`` is set."""

    broken = False

    def read(self, count: int) -> np.ndarray:
        if self.broken:
            raise RuntimeError("the endpoint broke")
        return super().read(count)


def test_a_request_accepted_as_its_call_ends_by_itself_gets_multrpt_hangup(caplog: pytest.LogCaptureFixture) -> None:
    """A request accepted in the tick in which its call ends on its own gets its outcome.

    The application answers a ``multrpt`` with the next request, and the call's endpoint fails in that tick: the
    request was accepted, so it ends with ``hangup``, as a request queued at a hang-up does.
    """
    board, published = _board()
    caller = _FailingLater(np.zeros(0, np.int16))
    call_id = board.create(DEMO_APP_ID, Endpoint(caller, NullSink(), "t"))

    def next_request(_call: Call, _report: object) -> None:  # the media thread, inside the tick
        board.submit(DEMO_APP_ID, call_id, _program(call_id, 0.2))  # the call is still live: accepted
        caller.broken = True  # and its caller fails in the same tick: the call ends before the request arrives

    board.submit(DEMO_APP_ID, call_id, _program(call_id, 0.2), next_request)
    _run(board, 1.0)
    assert [b["result"] for b in published if b["event"] == "multrpt"] == ["complete", "hangup"]
    assert not [r for r in caplog.records if r.levelname == "ERROR" and "media command" in r.getMessage()]
    assert board.sizes()["live_calls"] == 0
