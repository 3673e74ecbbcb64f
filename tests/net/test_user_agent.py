"""The user agent over an in-memory wire, its timers on a hand-moved clock (a 32 s timeout in microseconds)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.net.dialog import new_branch
from engine.net.sdp import build_offer
from engine.net.sip_call import SipCall
from engine.net.sip_message import SipMessage, parse_message, parse_name_addr
from engine.net.sip_peer import Peer
from engine.net.timers import Timers
from engine.net.transaction import T1, T2
from engine.net.user_agent import UserAgent

PEER = Peer("127.0.0.1", 5062)


class Recorder:
    """A handler that answers (or not) and records what the user agent reports."""

    def __init__(self, decision: str = "answer") -> None:
        self.decision = decision
        self.agent: UserAgent
        self.reports: list[tuple[str, Any]] = []

    def incoming(self, call: SipCall) -> None:
        self.reports.append(("incoming", call.number))
        if self.decision == "answer":
            self.agent.ring(call)
            self.agent.answer(call, build_offer("127.0.0.1", 40000, 1))
        elif self.decision != "ring":
            self.agent.reject(call, int(self.decision))

    def confirmed(self, call: SipCall) -> None:
        self.reports.append(("confirmed", call.remote_sdp))

    def ended(self, call: SipCall, reason: str) -> None:
        self.reports.append(("ended", reason))

    def reoffer(self, call: SipCall, sdp: bytes) -> bytes:
        self.reports.append(("reoffer", sdp))
        return build_offer("127.0.0.1", 40000, 1, 2)

    def dtmf(self, call: SipCall, key: str, duration_ms: int) -> None:
        self.reports.append(("dtmf", (key, duration_ms)))

    def progress(self, call: SipCall, status: int) -> None:
        self.reports.append(("progress", status))


class Wire:
    def __init__(self, decision: str = "answer") -> None:
        self.sent: list[tuple[SipMessage, tuple[str, int]]] = []
        self.timers = Timers()
        self.handler = Recorder(decision)
        self.agent = UserAgent("127.0.0.1", 5080, lambda d, a: self.sent.append((parse_message(d), a)),
                               self.timers, self.handler)
        self.handler.agent = self.agent

    def deliver(self, text: str, source: Peer = PEER) -> list[SipMessage]:
        before = len(self.sent)
        self.agent.datagram(text.encode(), source)
        return [m for m, _ in self.sent[before:]]

    def statuses(self) -> list[int]:
        return [m.status for m, _ in self.sent if not m.is_request]

    def advance(self, seconds: float) -> list[SipMessage]:
        before = len(self.sent)
        self.timers.run_due(self.timers.now + seconds)
        return [m for m, _ in self.sent[before:]]


def request(method: str, branch: str | None = None, cseq: int = 1, to_tag: str = "", body: str = "",
            call_id: str = "call-1", extra: str = "", cseq_method: str | None = None) -> str:
    to = "<sip:10086@127.0.0.1:5080>" + (f";tag={to_tag}" if to_tag else "")
    headers = (f"{method} sip:10086@127.0.0.1:5080 SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:5062;branch={branch or new_branch()}\r\n"
               "Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1:5062>;tag=a1\r\n"
               f"To: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {cseq_method or method}\r\n"
               "Contact: <sip:alice@127.0.0.1:5062>\r\n" + extra)
    return headers + f"Content-Length: {len(body)}\r\n\r\n{body}"


OFFER = build_offer("127.0.0.1", 6000, 7).decode()


def _to_tag(message: SipMessage) -> str:
    return parse_name_addr(message.get("to")).tag


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


TCP_PEER = Peer("127.0.0.1", 40123, "tcp")


def _ringing(invite: SipMessage, status: str = "180 Ringing") -> str:
    return (f"SIP/2.0 {status}\r\nVia: {invite.get('via')}\r\nFrom: {invite.get('from')}\r\n"
            f"To: {invite.get('to')};tag=b1\r\nCall-ID: {invite.call_id}\r\nCSeq: 1 INVITE\r\n"
            "Content-Length: 0\r\n\r\n")


def test_an_invite_over_tcp_says_so_and_is_never_retransmitted_timer_b_still_ends_it() -> None:
    wire = Wire()
    call = wire.agent.invite("sip:bob@127.0.0.1:5062;transport=tcp", "ipcc", build_offer("127.0.0.1", 40000, 1))
    invite, address = wire.sent[0]
    assert address == Peer("127.0.0.1", 5062, "tcp")
    assert invite.get("via").startswith("SIP/2.0/TCP 127.0.0.1:5080;")
    assert invite.get("contact") == "<sip:ipcc@127.0.0.1:5080;transport=tcp>"
    assert wire.advance(64 * T1 - 0.01) == []  # no timer A over a reliable transport
    wire.advance(0.02)
    assert ("progress", 408) in wire.handler.reports and call.ended  # timer B


def test_over_tcp_server_transactions_end_at_once_and_a_rejection_is_not_retransmitted() -> None:
    wire = Wire("486")
    options = wire.deliver(request("OPTIONS", "z9hG4bK-o"), TCP_PEER)
    assert [m.status for m in options] == [200] and not wire.agent.server_tx  # timer J is zero
    assert [m.status for m in wire.deliver(request("OPTIONS", "z9hG4bK-u"))] == [200]
    assert ("z9hG4bK-u", "OPTIONS") in wire.agent.server_tx  # over UDP it absorbs retransmissions for 64·T1
    busy = wire.deliver(request("INVITE", "z9hG4bK-b", body=OFFER), TCP_PEER)
    assert [m.status for m in busy] == [100, 486]
    assert all(address == TCP_PEER for _, address in wire.sent[-2:])  # answered on the connection it came on
    assert [m for m in wire.advance(10) if m.status == 486] == []  # no timer G
    wire.deliver(request("ACK", "z9hG4bK-b", to_tag=_to_tag(busy[1])), TCP_PEER)
    assert ("z9hG4bK-b", "INVITE") not in wire.agent.server_tx  # timer I is zero


def test_an_incoming_call_over_tcp_has_a_tcp_contact_and_its_dialog_requests_use_the_connection() -> None:
    wire = Wire()
    replies = wire.deliver(request("INVITE", "z9hG4bK-t", body=OFFER), TCP_PEER)
    assert replies[2].get("contact") == "<sip:ipcc@127.0.0.1:5080;transport=tcp>"
    wire.deliver(request("ACK", cseq=1, to_tag=_to_tag(replies[2])), TCP_PEER)
    call = next(iter(wire.agent.calls.values()))
    wire.agent.hang_up(call)
    bye, address = wire.sent[-1]
    assert bye.method == "BYE" and address == TCP_PEER and bye.get("via").startswith("SIP/2.0/TCP ")
    assert wire.agent.peers_in_use() == set()  # over: its connection may close


def test_when_the_callers_tcp_connection_is_gone_our_bye_goes_to_its_contact() -> None:
    wire = Wire()
    contact = "Contact: <sip:alice@127.0.0.1:5064;transport=tcp>\r\n"
    replies = wire.deliver(request("INVITE", "z9hG4bK-g", body=OFFER).replace(
        "Contact: <sip:alice@127.0.0.1:5062>\r\n", contact), TCP_PEER)
    wire.deliver(request("ACK", cseq=1, to_tag=_to_tag(replies[2])), TCP_PEER)
    wire.agent.connected = lambda peer: False
    wire.agent.hang_up(next(iter(wire.agent.calls.values())))
    assert wire.sent[-1][1] == Peer("127.0.0.1", 5064, "tcp")


def test_hanging_up_before_any_provisional_response_waits_for_one_to_send_cancel() -> None:
    wire = Wire()
    call = wire.agent.invite("sip:bob@127.0.0.1:5062", "ipcc", b"")
    invite = wire.sent[0][0]
    wire.agent.hang_up(call)
    assert [m.method for m, _ in wire.sent] == ["INVITE"] and call.ended  # RFC 3261 §9.1: not yet
    assert [m.method for m in wire.deliver(_ringing(invite))] == ["CANCEL"]
    assert [m.method for m in wire.deliver(_ringing(invite, "487 Request Terminated"))] == ["ACK"]


def test_a_ringing_outgoing_call_is_not_timed_out_by_timer_b() -> None:
    wire = Wire()
    call = wire.agent.invite("sip:bob@127.0.0.1:5062", "ipcc", b"")
    wire.deliver(_ringing(wire.sent[0][0]))
    wire.advance(64 * T1 + 1)
    assert ("progress", 408) not in wire.handler.reports and not call.ended  # the ring timeout is the TU's


def test_a_response_whose_tcp_connection_closed_goes_to_the_via_sent_by() -> None:
    wire = Wire()
    wire.agent.connected = lambda peer: False
    wire.deliver(request("OPTIONS"), TCP_PEER)
    assert wire.sent[-1][1] == Peer("127.0.0.1", 5062, "tcp")  # the Via's sent-by, over TCP
