"""SIP over a reliable transport (TCP) and the edges of the INVITE client: the user agent over an in-memory wire.

Over TCP (RFC 3261 §17): no retransmissions (timers A, E, G), D, I, J, K zero, B and H still time out; Via,
Contact and the call's requests over TCP; where messages go once a connection closed (§18.2.2, §12.2.1.1).
CANCEL waits for a provisional response (§9.1); timer B does not end a ringing INVITE.
"""

from __future__ import annotations

from engine.net.sdp import build_offer
from engine.net.sip_message import SipMessage
from engine.net.sip_peer import Peer
from engine.net.transaction import T1
from engine.testing.sip_wire import OFFER, Wire, request
from engine.testing.sip_wire import to_tag as _to_tag

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


def test_a_200_that_crosses_our_cancel_is_acked_and_hung_up_with_bye() -> None:
    wire = Wire()
    call = wire.agent.invite("sip:bob@127.0.0.1:5062", "ipcc", b"")
    invite = wire.sent[0][0]
    wire.deliver(_ringing(invite))
    wire.agent.hang_up(call)
    assert wire.sent[-1][0].method == "CANCEL"
    answered = _ringing(invite, "200 OK").replace("Content-Length: 0", "Contact: <sip:bob@127.0.0.1:5062>\r\n"
                                                  "Content-Length: 0")
    assert [m.method for m in wire.deliver(answered)] == ["ACK", "BYE"]
    assert wire.handler.reports.count(("ended", "local")) == 1 and ("progress", 200) not in wire.handler.reports
