"""The user agent over an in-memory wire, its timers on a hand-moved clock (a 32 s timeout in microseconds)."""

from __future__ import annotations

import pytest

from engine.net.sdp import build_offer
from engine.net.sip_uri import parse_name_addr
from engine.net.transaction import T1, T2
from engine.testing.sip_wire import OFFER, PEER, Wire, request
from engine.testing.sip_wire import to_tag as _to_tag


def test_invite_100_180_200_then_the_2xx_is_retransmitted_until_the_ack() -> None:
    wire = Wire()
    replies = wire.deliver(request("INVITE", "z9hG4bK-i", body=OFFER))
    assert [m.status for m in replies] == [100, 180, 200]
    tag = _to_tag(replies[2])
    assert [m.status for m in wire.advance(T1)] == [200]  # T1, then 2·T1, ...
    assert [m.status for m in wire.advance(2 * T1)] == [200]
    wire.deliver(request("ACK", cseq=1, to_tag=tag))
    assert wire.advance(10) == []  # no retransmission after the ACK
    assert ("confirmed", OFFER.encode()) in wire.handler.reports
    bye = wire.deliver(request("BYE", cseq=2, to_tag=tag))
    assert [m.status for m in bye] == [200] and wire.handler.reports[-1] == ("ended", "bye")
    again = wire.deliver(request("BYE", cseq=3, to_tag=tag))  # the dialog is over
    assert [m.status for m in again] == [481]


def test_the_invite_retransmitted_after_the_2xx_gets_the_2xx_again_not_a_second_call() -> None:
    wire = Wire()
    text = request("INVITE", "z9hG4bK-twice", body=OFFER)
    first = wire.deliver(text)
    again = wire.deliver(text)
    assert [m.status for m in again] == [200] and _to_tag(again[0]) == _to_tag(first[-1])
    assert [r for r in wire.handler.reports if r[0] == "incoming"] == [("incoming", "10086")]


def test_a_2xx_never_acked_is_given_up_after_64_t1_with_a_bye() -> None:
    wire = Wire()
    wire.deliver(request("INVITE", body=OFFER))
    sent = wire.advance(64 * T1 + 0.01)
    intervals_ok = sum(1 for m in sent if m.status == 200)
    assert 6 <= intervals_ok <= 10  # T1 doubling to T2 within 32 s
    assert [m.method for m in sent if m.is_request] == ["BYE"]
    assert wire.handler.reports[-1] == ("ended", "timeout")


def test_a_retransmitted_invite_gets_the_last_response_again_not_a_new_call() -> None:
    wire = Wire(decision="ring")
    text = request("INVITE", "z9hG4bK-r", body=OFFER)
    wire.deliver(text)
    assert [m.status for m in wire.deliver(text)] == [100]
    assert [r for r in wire.handler.reports if r[0] == "incoming"] == [("incoming", "10086")]


def test_cancel_answers_200_and_the_invite_487_then_timer_g_until_the_ack() -> None:
    wire = Wire(decision="ring")
    wire.deliver(request("INVITE", "z9hG4bK-c", body=OFFER))
    replies = wire.deliver(request("CANCEL", "z9hG4bK-c"))
    assert [(m.status, m.cseq[1]) for m in replies] == [(200, "CANCEL"), (487, "INVITE")]
    assert wire.handler.reports[-1] == ("ended", "cancel")
    assert [m.status for m in wire.advance(T1)] == [487]  # timer G
    wire.deliver(request("ACK", "z9hG4bK-c", to_tag=_to_tag(replies[1])))
    assert wire.advance(T2 * 4) == []


def test_rejections_and_unknowns() -> None:
    wire = Wire(decision="486")
    assert [m.status for m in wire.deliver(request("INVITE", body=OFFER))] == [100, 486]
    assert wire.deliver(request("CANCEL", "z9hG4bK-none"))[0].status == 481
    assert wire.deliver(request("BYE", to_tag="nope"))[0].status == 481
    unknown = wire.deliver(request("PUBLISH"))[0]
    assert unknown.status == 501 and "INVITE" in unknown.get("allow")
    options = wire.deliver(request("OPTIONS"))[0]
    assert options.status == 200 and "INFO" in options.get("allow")
    assert wire.deliver(request("OPTIONS", extra="", cseq_method="BYE")) == []  # malformed, not answerable
    broken = wire.deliver(request("OPTIONS").replace("Content-Length: 0", "Content-Length: 99"))
    assert broken[0].status == 400
    assert wire.agent.counters["malformed"] == 2


def test_info_dtmf_relay_and_a_reinvite_for_hold() -> None:
    wire = Wire()
    replies = wire.deliver(request("INVITE", body=OFFER))
    tag = _to_tag(replies[-1])
    wire.deliver(request("ACK", to_tag=tag))
    info = wire.deliver(request("INFO", cseq=2, to_tag=tag, body="Signal=5\r\nDuration=160\r\n",
                                extra="Content-Type: application/dtmf-relay\r\n"))
    assert info[0].status == 200 and ("dtmf", ("5", 160)) in wire.handler.reports
    hold = OFFER.replace("a=sendrecv", "a=sendonly")
    reinvite = wire.deliver(request("INVITE", cseq=3, to_tag=tag, body=hold))
    assert reinvite[-1].status == 200 and b"m=audio 40000" in reinvite[-1].body
    assert ("reoffer", hold.encode()) in wire.handler.reports
    stale = wire.deliver(request("INFO", cseq=1, to_tag=tag))
    assert stale[0].status == 500  # a CSeq going backwards


def test_register_binds_with_expiry_and_refuses_too_brief() -> None:
    wire = Wire()
    ok = wire.deliver(request("REGISTER", extra="Expires: 120\r\n"))[0]
    assert ok.status == 200 and ok.get("contact").endswith("expires=120")
    assert [b.contact for b in wire.agent.registrar.lookup("10086", wire.timers.now)] == ["sip:alice@127.0.0.1:5062"]
    wire.advance(121)
    assert wire.agent.registrar.lookup("10086", wire.timers.now) == []
    brief = wire.deliver(request("REGISTER", extra="Expires: 5\r\n"))[0]
    assert brief.status == 423 and brief.get("min-expires") == "60"


def test_an_outgoing_call_retransmits_its_invite_and_times_out_with_408() -> None:
    wire = Wire()
    call = wire.agent.invite("sip:bob@127.0.0.1:5062", "ipcc", build_offer("127.0.0.1", 40000, 1))
    first = [m for m, _ in wire.sent]
    assert [m.method for m in first] == ["INVITE"]
    sent = wire.advance(64 * T1 + 0.01)
    assert 5 <= sum(1 for m in sent if m.method == "INVITE") <= 7  # timer A: T1, 2T1, 4T1, ... until B
    assert ("progress", 408) in wire.handler.reports and call.ended


@pytest.mark.parametrize("final", [486, 603])
def test_an_outgoing_call_refused_is_acked_and_reported(final: int) -> None:
    wire = Wire()
    call = wire.agent.invite("sip:bob@127.0.0.1:5062", "ipcc", b"")
    invite = wire.sent[0][0]
    response = (f"SIP/2.0 {final} No\r\nVia: {invite.get('via')}\r\nFrom: {invite.get('from')}\r\n"
                f"To: {invite.get('to')};tag=b1\r\nCall-ID: {invite.call_id}\r\nCSeq: 1 INVITE\r\n"
                "Content-Length: 0\r\n\r\n")
    acks = wire.deliver(response)
    assert [m.method for m in acks] == ["ACK"] and acks[0].branch == invite.branch
    assert ("progress", final) in wire.handler.reports and call.ended
    assert [m.method for m in wire.deliver(response)] == ["ACK"]  # a retransmitted final: ACKed again (timer D)


def test_digest_challenges_register_and_invite_and_accepts_the_right_password() -> None:
    from engine.net.digest import DigestAuth, authorization

    wire = Wire()
    wire.agent.auth = DigestAuth("ipcc", {"10086": "s3cret"}, lambda: wire.timers.now)
    challenge = wire.deliver(request("REGISTER", extra="Expires: 120\r\n"))[0]
    assert challenge.status == 401
    offered = [value for name, value in challenge.headers if name == "www-authenticate"]
    assert [v.split("algorithm=")[1].split(",")[0] for v in offered] == ["SHA-256", "MD5"]  # RFC 8760 order
    nonce = offered[0].split('nonce="')[1].split('"')[0]
    uri = "sip:10086@127.0.0.1:5080"
    wrong = authorization("10086", "guess", "ipcc", nonce, "REGISTER", uri)
    assert wire.deliver(request("REGISTER", extra=f"Expires: 120\r\nAuthorization: {wrong}\r\n"))[0].status == 401
    for algorithm in ("SHA-256", "MD5"):
        right = authorization("10086", "s3cret", "ipcc", nonce, "REGISTER", uri, algorithm)
        ok = wire.deliver(request("REGISTER", extra=f"Expires: 120\r\nAuthorization: {right}\r\n"))[0]
        assert ok.status == 200
    wire.advance(301)  # the nonce went stale
    right = authorization("10086", "s3cret", "ipcc", nonce, "REGISTER", uri)
    assert wire.deliver(request("REGISTER", extra=f"Authorization: {right}\r\n"))[0].status == 401
    assert [m.status for m in wire.deliver(request("INVITE", body=OFFER))] == [401]
    assert wire.handler.reports == []


def test_refer_asks_the_far_end_to_call_elsewhere() -> None:
    wire = Wire()
    replies = wire.deliver(request("INVITE", body=OFFER))
    wire.deliver(request("ACK", to_tag=_to_tag(replies[-1])))
    call = next(iter(wire.agent.calls.values()))
    wire.agent.refer(call, "sip:agent@127.0.0.1:5070")
    refer, address = wire.sent[-1]
    assert refer.method == "REFER" and address == PEER and refer.uri == "sip:alice@127.0.0.1:5062"
    assert refer.get("refer-to") == "<sip:agent@127.0.0.1:5070>" and refer.cseq == (2, "REFER")
    assert parse_name_addr(refer.get("from")).tag == _to_tag(replies[-1])


def test_hanging_up_an_unanswered_outgoing_call_sends_cancel_with_the_invites_branch() -> None:
    wire = Wire()
    call = wire.agent.invite("sip:bob@127.0.0.1:5062", "ipcc", b"")
    invite = wire.sent[0][0]
    ringing = (f"SIP/2.0 180 Ringing\r\nVia: {invite.get('via')}\r\nFrom: {invite.get('from')}\r\n"
               f"To: {invite.get('to')};tag=b1\r\nCall-ID: {invite.call_id}\r\nCSeq: 1 INVITE\r\n"
               "Content-Length: 0\r\n\r\n")
    wire.deliver(ringing)
    assert ("progress", 180) in wire.handler.reports
    wire.agent.hang_up(call, "timeout")
    cancel = wire.sent[-1][0]
    assert cancel.method == "CANCEL" and cancel.branch == invite.branch and cancel.cseq == (1, "CANCEL")
    terminated = ringing.replace("180 Ringing", "487 Request Terminated")
    assert [m.method for m in wire.deliver(terminated)] == ["ACK"]
    assert ("progress", 487) in wire.handler.reports
