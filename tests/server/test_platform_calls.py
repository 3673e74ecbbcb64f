"""Numbers, routes, transfers, inbound calls and the platform's call events, as a platform SDK sees them.

The voicemail and notify calls are in ``test_platform_messages``; the server is ``conftest.platform``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import soundfile as sf

from engine.config import DEMO_APP_ID
from engine.format import SAMPLE_RATE_HZ
from engine.server.endpoints import OutCallSpec, make_endpoint
from engine.testing.platform import Platform, check_against_table, markdown_tables, platform_server
from engine.testing.server import wait_for
from engine.wire.call_events import CallInfo

CALL_EVENTS = ("callstatrpt", "calldisconnectrpt", "callbillrpt", "playoverrpt", "messagerpt")


def _tone(seconds: float, **fields: object) -> dict[str, object]:
    return {"playFlag": 0, "voiceStr": f"tone:{seconds}", **fields}


def test_dialling_a_number_records_it_in_the_applications_folder(platform: Platform) -> None:
    call_id = platform.dial("13800138000", caller="01012345678", timeout=30, AiFlag=0)
    answer = platform.post("multOrders", callId=call_id, orders=[_tone(0.5)])
    assert answer["code"] == "000000" and answer["callid"] == call_id
    platform.wait(call_id, "multrpt")
    assert platform.post("disConnect", callId=call_id)["code"] == "000000"
    events = platform.wait(call_id, "callbillrpt")
    assert [e["event"] for e in events] == ["callstatrpt", "multrpt", "calldisconnectrpt", "callbillrpt"]
    stat, _, hangup, bill = events
    assert stat["ansCode"] == 0 and stat["caller"] == "01012345678" and stat["called"] == "13800138000"
    relative = f"{DEMO_APP_ID}/13800138000-{call_id}.wav"
    assert hangup["fileName"] == hangup["flieName"] == relative
    assert hangup["reason"] == "disconnect" and hangup["hangUpBy"] == "app"
    frames = sf.info(platform.root / "recordings" / relative).frames
    assert frames >= 0.5 * SAMPLE_RATE_HZ
    assert hangup["duration"] == bill["duration"] == math.ceil(frames / SAMPLE_RATE_HZ)
    assert bill["answerTime"] and bill["startTime"] <= bill["answerTime"] <= bill["endTime"]


def test_explicit_endpoints_keep_working_and_junk_is_refused(platform: Platform) -> None:
    for called in ("null", "wav:explicit-name"):
        call_id = platform.dial(called)
        assert platform.post("disConnect", callId=call_id)["code"] == "000000"
    explicit = platform.root / "recordings" / DEMO_APP_ID / "explicit-name.wav"  # in the application's folder
    wait_for(explicit.exists, what="the explicit recording")
    for called, words in (("abc", "neither a phone number"), ("138-0013", "neither"), ("", "must not be empty")):
        answer = platform.post("outCall", called=called)
        assert answer["code"] == "108100" and answer["msg"].startswith("called:") and words in answer["msg"]


@pytest.mark.parametrize(("number", "ans_code", "ring_s"), [("13900001234", 1, 0), ("13700005555", 2, 20)])
def test_a_route_simulates_busy_and_no_answer(platform: Platform, number: str, ans_code: int, ring_s: int) -> None:
    ticks = platform.engine.board.media.ticks
    call_id = platform.dial(number, data="campaign-7", timeout=20)
    events = platform.wait(call_id, "callbillrpt")
    # no answer: the phone rang `timeout` seconds of media time (50 frames a second) before the outcome
    assert platform.engine.board.media.ticks >= ticks + ring_s * 50
    assert [e["event"] for e in events] == ["callstatrpt", "calldisconnectrpt", "callbillrpt"]
    assert events[0]["ansCode"] == ans_code and events[0]["data"] == "campaign-7"
    assert events[1]["reason"] == "notconnected" and events[1]["duration"] == 0 and events[1]["fileName"] == ""
    assert events[2]["duration"] == 0 and events[2]["answerTime"] == ""
    assert platform.post("multOrders", callId=call_id, orders=[_tone(0.1)])["code"] == "108105"


def test_play_with_the_sdk_spellings_collects_keys_and_sends_playoverrpt(platform: Platform) -> None:
    call_id = platform.dial("10086", keys="3@0.3")
    answer = platform.post("play", callId=call_id, flag=0, voiceStr="tone:1", getKey=1, maxRevCnt=1, data="p1")
    assert answer["code"] == "000000" and answer["callId"] == call_id
    events = platform.wait(call_id, "playoverrpt")
    assert [e["event"] for e in events] == ["callstatrpt", "ivrreportdtmf", "multrpt", "playoverrpt"]
    assert events[1]["dtmfCode"] == "3"  # getKey was not ignored
    assert events[3]["data"] == "p1" and events[3]["result"] == "complete"
    assert platform.post("play", callId=call_id, flag=0, playFlag=0, voiceStr="x")["code"] == "108100"
    platform.post("disConnect", callId=call_id)


def test_every_call_event_has_the_fields_and_types_of_its_readme_table(platform: Platform, repo_root: Path) -> None:
    tables = markdown_tables((repo_root / "README.md").read_text(encoding="utf-8"))
    assert set(CALL_EVENTS) | {"incomingcall"} <= set(tables)
    call_id = platform.dial("13800138001", keys="#@0.8")
    platform.post("play", callId=call_id, playFlag=0, voiceStr="tone:0.2")
    platform.post("message", callId=call_id, playFlag=0, voiceStr="tone:0.5", key2Stop="#")
    platform.wait(call_id, "messagerpt")
    platform.post("disConnect", callId=call_id)
    busy = platform.dial("13900009999")
    platform.wait(busy, "callbillrpt")
    events = platform.wait(call_id, "callbillrpt") + platform.events(busy)
    assert {event["event"] for event in events if check_against_table(event, tables)} == set(CALL_EVENTS)


def test_end_to_end_dial_play_collect_transfer_hang_up(platform: Platform) -> None:
    first = platform.dial("13800138004", keys="5@0.6")
    menu = [_tone(0.4), _tone(1.0, getkey=1, maxRevCnt=1, data="menu")]
    assert platform.post("multOrders", callId=first, orders=menu)["code"] == "000000"
    platform.wait(first, "multrpt")
    moved = platform.post("transfer", callId=first, called="13800138005", fileName="beep.wav")
    assert moved["code"] == "000000" and moved["callid"] == first
    second = moved["newCallId"]
    wait_for(lambda: any(e["event"] == "callstatrpt" for e in platform.events(second)), what="the new leg")
    assert platform.post("multOrders", callId=first, orders=[_tone(0.1)])["code"] == "108105"
    assert platform.post("disConnect", callId=second)["code"] == "000000"
    platform.wait(second, "callbillrpt")
    events = platform.events(first, second)
    # Each call's events arrive in order; two calls' events may interleave (delivery runs calls concurrently).
    legs = {leg: [e for e in events if e["callId"] == leg] for leg in (first, second)}
    assert [e["event"] for e in legs[first]] == [
        "callstatrpt", "ivrreportdtmf", "multrpt", "multrpt", "calldisconnectrpt", "callbillrpt"]
    assert [e["event"] for e in legs[second]] == ["callstatrpt", "calldisconnectrpt", "callbillrpt"]
    assert legs[first][1]["dtmfCode"] == "5" and legs[first][1]["data"] == "menu"
    assert legs[first][4]["reason"] == "transfer" and legs[second][0]["origCallId"] == first
    assert legs[second][0]["caller"] == "13800138004" and legs[second][0]["called"] == "13800138005"
    assert legs[second][1]["reason"] == "disconnect"


def test_a_transfer_of_an_unknown_call_or_to_junk_is_refused(platform: Platform) -> None:
    assert platform.post("transfer", callId="nope", called="10086")["code"] == "108105"
    call_id = platform.dial("10086")
    answer = platform.post("transfer", callId=call_id, called="not a number")
    assert answer["code"] == "108100" and answer["msg"].startswith("called")
    assert platform.post("transfer", callId=call_id, called="10086", fileName="missing.wav")["msg"].startswith(
        "fileName")
    platform.post("disConnect", callId=call_id)


def test_reply_answers_an_offered_incoming_call(platform: Platform, repo_root: Path) -> None:
    assert platform.post("reply", callId="no-such-call", ansCode=0)["code"] == "108105"
    decided: list[bool] = []
    info = CallInfo(DEMO_APP_ID, "inbound-1", "13800138000", "95555", platform.engine.wall_clock(), direction="in")
    platform.engine.call_api.inbound.offer(info, decided.append)
    offered = platform.wait("inbound-1", "incomingcall")[0]
    assert offered["caller"] == "13800138000" and offered["called"] == "95555"
    assert check_against_table(offered, markdown_tables((repo_root / "README.md").read_text(encoding="utf-8")))
    assert platform.post("reply", callId="inbound-1", ansCode=2)["msg"].startswith("ansCode")
    assert platform.post("reply", callId="inbound-1", ansCode="1")["code"] == "000000"
    assert decided == [False]
    assert platform.post("reply", callId="inbound-1", ansCode=0)["code"] == "108105"  # answered once only


def test_a_route_reaches_an_endpoint_scheme_another_module_registers(platform: Platform,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.server import endpoints

    made: list[tuple[str, str]] = []

    def probe(rest: str, spec: endpoints.OutCallSpec, context: endpoints.EndpointContext) -> endpoints.Endpoint:
        made.append((rest, spec.keys))
        return endpoints.null_endpoint("", spec, context)

    monkeypatch.setitem(endpoints._FACTORIES, "probe", probe)  # noqa: SLF001 - what register_endpoint does
    call_id = platform.dial("5551234", caller="+8610")
    assert made == [("5551234/_8610", "9@0.2")]  # the template filled, the route's caller side
    assert platform.post("outCall", called="probe:direct")["code"] == "000000"  # an explicit endpoint too
    assert made[-1] == ("direct", "")
    platform.post("disConnect", callId=call_id)


def test_a_no_answer_attempt_still_ringing_at_shutdown_gets_its_outcome_and_hang_up(tmp_path: Path,
                                                                                   repo_root: Path) -> None:
    with platform_server(tmp_path, repo_root / "voices") as live:
        ringing = live.dial("13700005555", data="late", timeout=3600)  # an hour of media time: rings at shutdown
        answered = live.dial("10086")
        live.wait(answered, "callstatrpt")
        wait_for(lambda: live.engine.attempts.ringing() == 1, what="the attempt to ring")
        assert live.events(ringing) == []
        live.server.close()  # the engine stops while the phone rings
        events = live.events(ringing)
        assert [e["event"] for e in events] == ["callstatrpt", "calldisconnectrpt", "callbillrpt"]
        assert events[0]["ansCode"] == 2 and events[0]["data"] == "late"
        assert (events[1]["reason"], events[1]["hangUpBy"], events[1]["duration"]) == ("shutdown", "engine", 0)
        assert events[2]["duration"] == 0 and events[2]["answerTime"] == ""
        assert [e["event"] for e in live.events(answered)][-2:] == ["calldisconnectrpt", "callbillrpt"]
        assert live.engine.attempts.ringing() == 0


def test_an_inbound_call_goes_through_inbound_offer_then_reply_as_a_sip_glue_drives_it(platform: Platform) -> None:
    engine = platform.engine
    decisions: dict[str, bool] = {}

    def offer(call_id: str) -> CallInfo:  # what a SIP glue does for an INVITE to 4001234
        info = CallInfo(DEMO_APP_ID, call_id, "13912345678", "4001234", engine.wall_clock(), direction="in")

        def decide(accept: bool) -> None:
            decisions[call_id] = accept
            if accept:
                engine.attempts.connect(info, make_endpoint(OutCallSpec(DEMO_APP_ID, "null"), engine.endpoints))

        engine.call_api.inbound.offer(info, decide)
        return info

    accepted, rejected = engine.new_call_id(), engine.new_call_id()
    offer(accepted)
    offer(rejected)
    incoming = platform.wait(accepted, "incomingcall")[0]
    assert (incoming["caller"], incoming["called"], incoming["callId"]) == ("13912345678", "4001234", accepted)
    assert platform.post("reply", callId=accepted, ansCode=0)["code"] == "000000"
    assert platform.post("reply", callId=rejected, ansCode=1)["code"] == "000000"
    assert platform.post("reply", callId=accepted, ansCode=0)["code"] == "108105"  # answered once
    assert decisions == {accepted: True, rejected: False}
    stat = platform.wait(accepted, "callstatrpt")[-1]
    assert (stat["dir"], stat["ansCode"], stat["called"]) == ("in", 0, "4001234")
    assert platform.post("multOrders", callId=accepted, orders=[_tone(0.1)])["code"] == "000000"
    assert platform.post("multOrders", callId=rejected, orders=[_tone(0.1)])["code"] == "108105"
    platform.post("disConnect", callId=accepted)
    assert [e["event"] for e in platform.wait(accepted, "callbillrpt")] == [
        "incomingcall", "callstatrpt", "multrpt", "calldisconnectrpt", "callbillrpt"]
    assert [e["event"] for e in platform.events(rejected)] == ["incomingcall"]
