"""SIP calls through the platform API: the call events the application's receiver gets, in order, per the README.

Inbound: ``incomingcall`` always; answered at once (``autoAnswer``) or by ``reply`` (accept, reject, the caller
cancelling first); the caller's BYE; RTP inactivity. Outbound: ``outCall`` to a scripted SIP phone whose final
status becomes ``callstatrpt``; no answer within ``timeout`` sends CANCEL. Real UDP, a real HTTP callback.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.config import DEMO_APP_ID
from engine.net.dialog import new_tag
from engine.net.sdp import build_sdp
from engine.net.sip_message import SipMessage, parse_message, response_to
from engine.testing.baresip import free_port
from engine.testing.platform import check_against_table, markdown_tables
from engine.testing.server import wait_for
from engine.testing.sip_client import SipClient
from engine.testing.sip_server import SipServer

CALL_EVENTS = ("incomingcall", "callstatrpt", "calldisconnectrpt", "callbillrpt")
RINGING = '[[numbers]]\nnumber = "10087"\nautoAnswer = false\n\n'


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SipServer]:
    # the application has 10 s to reply; the test of the ring timeout itself waits 1 s for it
    callspec = getattr(request.node, "callspec", None)
    ring_s = 1 if callspec is not None and callspec.params.get("how") == "no reply" else 10
    server = SipServer(tmp_path / "server", extra_toml=RINGING + f"[sip]\nringTimeoutS = {ring_s}\n")
    yield server
    server.close()


@pytest.fixture
def client(server: SipServer) -> Iterator[SipClient]:
    client = SipClient(("127.0.0.1", server.sip_port))
    yield client
    client.close()


@pytest.fixture
def tables(repo_root: Path) -> dict[str, dict[str, str]]:
    return markdown_tables((repo_root / "README.md").read_text(encoding="utf-8"))


def _offer() -> bytes:
    return build_sdp("127.0.0.1", free_port(), 1, 1, [0], 101, "sendrecv")


def _call_events(events: list[dict[str, Any]], tables: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """The call events among ``events`` (each checked against its README table), request events between."""
    names = [e["event"] for e in events]
    calls = [e for e in events if e["event"] in CALL_EVENTS]
    assert all(check_against_table(e, tables) for e in calls)
    if "callstatrpt" in names:
        first, last = names.index("callstatrpt"), names.index("calldisconnectrpt")
        assert all(first < i < last for i, name in enumerate(names) if name not in CALL_EVENTS), names
    return calls


def _line(server: SipServer, number: str) -> Any:
    return wait_for(lambda: next((line for line in server.glue.lines if line.number == number), None), 10, "line")


def test_an_auto_answered_call_sends_its_events_in_order_and_the_callers_bye_ends_it(
        server: SipServer, client: SipClient, tables: dict[str, dict[str, str]]) -> None:
    client.request("INVITE", "c-in", 1, _offer())
    tag = client.to_tag(client.wait(200, "INVITE"))
    client.request("ACK", "c-in", 1, to_tag=tag)
    call_id = _line(server, "10086").data["call_id"]
    server.wait_received(call_id, "callstatrpt")
    client.request("BYE", "c-in", 2, to_tag=tag)
    client.wait(200, "BYE")
    events = _call_events(server.wait_received(call_id, "callbillrpt"), tables)
    assert [e["event"] for e in events] == list(CALL_EVENTS)
    incoming, stat, ended, bill = events
    assert (incoming["caller"], incoming["called"]) == ("alice", "10086")
    assert (stat["ansCode"], stat["dir"]) == (0, "in")
    assert (ended["reason"], ended["hangUpBy"], ended["dir"]) == ("remote", "callee", "in")
    assert bill["answerTime"] and bill["duration"] >= 1


@pytest.mark.parametrize("how", ["accept", "reject", "cancel", "no reply"])
def test_without_auto_answer_the_call_rings_until_the_application_replies(
        server: SipServer, client: SipClient, tables: dict[str, dict[str, str]], how: str) -> None:
    branch = client.request("INVITE", f"c-{how}", 1, _offer(), user="10087")
    client.wait(180, "INVITE")
    call_id = _line(server, "10087").data["call_id"]
    offered = server.wait_received(call_id, "incomingcall")
    assert [e["event"] for e in offered] == ["incomingcall"]  # ringing: no callstatrpt yet
    with httpx.Client(base_url=server.live.url, timeout=10) as http:
        def reply(ans_code: int) -> dict[str, Any]:
            return http.post("/ipcc/call/reply", json={"appId": DEMO_APP_ID, "callId": call_id,
                                                       "ansCode": ans_code}).json()

        if how == "cancel":
            client.request("CANCEL", f"c-{how}", 1, branch=branch, user="10087")
            client.wait(487, "INVITE")
            events = server.wait_received(call_id, "callbillrpt")
            assert reply(0)["code"] == "108105"  # nothing waits for a reply any more
        elif how == "no reply":  # for ringTimeoutS
            client.wait(603, "INVITE", timeout_s=30)
            events = server.wait_received(call_id, "callbillrpt")
            assert reply(0)["code"] == "108105"
        elif how == "reject":
            assert reply(1)["code"] == "000000"
            client.wait(603, "INVITE")
            events = server.wait_received(call_id, "callbillrpt")
        else:
            assert reply(0)["code"] == "000000"
            tag = client.to_tag(client.wait(200, "INVITE"))
            client.request("ACK", f"c-{how}", 1, to_tag=tag, user="10087")
            server.wait_received(call_id, "callstatrpt")
            assert http.post("/ipcc/call/disConnect", json={"appId": DEMO_APP_ID, "callId": call_id}
                             ).json()["code"] == "000000"
            assert client.wait(0, "BYE").method == "BYE"  # the engine's hang-up reaches the phone
            events = server.wait_received(call_id, "callbillrpt")
    events = _call_events(events, tables)
    assert [e["event"] for e in events] == list(CALL_EVENTS)
    stat, ended, bill = events[1:]
    expected = {"accept": (0, "disconnect", "app"), "reject": (3, "notconnected", "callee"),
                "cancel": (2, "notconnected", "callee"), "no reply": (2, "notconnected", "callee")}[how]
    assert (stat["ansCode"], ended["reason"], ended["hangUpBy"]) == expected
    assert (bill["duration"] > 0) == (how == "accept") and stat["dir"] == "in"


def test_rtp_inactivity_hangs_the_call_up_with_reason_timeout_and_sends_bye(
        tmp_path: Path, tables: dict[str, dict[str, str]]) -> None:
    server = SipServer(tmp_path / "quiet", extra_toml="[sip]\ninactivityS = 1.5\n")
    client = SipClient(("127.0.0.1", server.sip_port))
    try:
        _quiet_call(server, client, tables)
    finally:
        client.close()
        server.close()


def _quiet_call(server: SipServer, client: SipClient, tables: dict[str, dict[str, str]]) -> None:
    client.request("INVITE", "c-quiet", 1, _offer())
    tag = client.to_tag(client.wait(200, "INVITE"))
    client.request("ACK", "c-quiet", 1, to_tag=tag)  # and never a packet of RTP
    line = _line(server, "10086")
    assert client.wait(0, "BYE", timeout_s=30).method == "BYE"
    events = _call_events(server.wait_received(line.data["call_id"], "callbillrpt"), tables)
    ended = events[2]
    assert (ended["reason"], ended["hangUpBy"]) == ("timeout", "engine")
    wait_for(lambda: line.call.end_reason, what="the SIP call's end")  # set just after its BYE is sent
    assert line.call.end_reason == "local"


class _Phone:
    """A scripted SIP phone on a UDP socket: answers each INVITE with ``statuses`` (then 200 to BYE/CANCEL)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(20)
        self.uri = f"sip:bob@127.0.0.1:{self.sock.getsockname()[1]}"
        self.tag = new_tag()

    def receive(self, method: str) -> tuple[SipMessage, tuple[str, int]]:
        """The next request ``method`` (others answered 200 and skipped)."""
        while True:
            data, source = self.sock.recvfrom(65536)
            message = parse_message(data)
            if message.method == method:
                return message, source
            if message.is_request and message.method != "ACK":
                self.respond(message, source, 200)

    def respond(self, request: SipMessage, source: tuple[str, int], status: int, body: bytes = b"") -> None:
        """Answer ``request`` with ``status``."""
        headers = [("contact", f"<{self.uri}>")] + ([("content-type", "application/sdp")] if body else [])
        self.sock.sendto(response_to(request, status, "X", self.tag, headers, body).to_bytes(), source)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


@pytest.fixture
def phone() -> Iterator[_Phone]:
    phone = _Phone()
    yield phone
    phone.close()


@pytest.mark.parametrize(("status", "ans_code"), [(486, 1), (603, 3), (404, 4), (None, 2)],
                         ids=["busy", "rejected", "unreachable", "no answer"])
def test_out_call_to_a_sip_phone_reports_its_final_status_as_callstatrpt(
        server: SipServer, phone: _Phone, tables: dict[str, dict[str, str]], status: int | None,
        ans_code: int) -> None:
    body = {"appId": DEMO_APP_ID, "called": phone.uri, "timeout": 1, "data": "d"}
    answer = httpx.post(f"{server.live.url}/ipcc/call/outCall", json=body, timeout=10).json()
    assert answer["code"] == "000000", answer
    invite, source = phone.receive("INVITE")
    phone.respond(invite, source, 180)
    if status is None:  # rings past the timeout: the engine cancels
        cancel, source = phone.receive("CANCEL")
        assert cancel.cseq[0] == invite.cseq[0]
        phone.respond(cancel, source, 200)
        phone.respond(invite, source, 487)
    else:
        phone.respond(invite, source, status)
    events = _call_events(server.wait_received(answer["callId"], "callbillrpt"), tables)
    assert [e["event"] for e in events] == list(CALL_EVENTS[1:])
    assert [events[0]["ansCode"], events[1]["reason"], events[2]["duration"]] == [ans_code, "notconnected", 0]
    assert events[0]["dir"] == "out" and events[0]["called"] == phone.uri and events[0]["data"] == "d"


def test_out_call_answered_is_live_after_the_200_and_disconnect_sends_bye(
        server: SipServer, phone: _Phone, tables: dict[str, dict[str, str]]) -> None:
    with httpx.Client(base_url=server.live.url, timeout=10) as http:
        answer = http.post("/ipcc/call/outCall", json={"appId": DEMO_APP_ID, "called": phone.uri}).json()
        call_id = answer["callId"]
        invite, source = phone.receive("INVITE")
        phone.respond(invite, source, 180)
        assert not server.received(call_id) and not server.engine.board.is_live(call_id)  # ringing: not yet
        phone.respond(invite, source, 200, build_sdp("127.0.0.1", free_port(), 1, 1, [0], None, "sendrecv"))
        phone.receive("ACK")
        server.wait_received(call_id, "callstatrpt")
        assert http.post("/ipcc/call/disConnect", json={"appId": DEMO_APP_ID, "callId": call_id}
                         ).json()["code"] == "000000"
        bye, source = phone.receive("BYE")
        phone.respond(bye, source, 200)
    events = _call_events(server.wait_received(call_id, "callbillrpt"), tables)
    assert [e["event"] for e in events] == list(CALL_EVENTS[1:])
    assert (events[0]["ansCode"], events[1]["reason"], events[1]["hangUpBy"]) == (0, "disconnect", "app")


def test_transfer_of_a_sip_call_to_a_sip_uri_sends_refer_then_bye(server: SipServer, client: SipClient,
                                                                    tables: dict[str, dict[str, str]]) -> None:
    client.request("INVITE", "c-refer", 1, _offer())
    tag = client.to_tag(client.wait(200, "INVITE"))
    client.request("ACK", "c-refer", 1, to_tag=tag)
    call_id = _line(server, "10086").data["call_id"]
    server.wait_received(call_id, "callstatrpt")
    target = "sip:carol@127.0.0.1:5999"
    with httpx.Client(base_url=server.live.url, timeout=10) as http:
        body = {"appId": DEMO_APP_ID, "callId": call_id, "called": "sip:nobody-registered"}
        assert http.post("/ipcc/call/transfer", json=body).json()["msg"].startswith("called")
        answer = http.post("/ipcc/call/transfer", json={**body, "called": target}).json()
    assert answer["code"] == "000000" and answer["newCallId"] == ""  # the phone makes the new call, not us
    refer = client.wait(0, "REFER")
    assert refer.get("refer-to") == f"<{target}>"
    client.sock.sendto(response_to(refer, 202, "Accepted").to_bytes(), server.glue.phone.address)
    assert client.wait(0, "BYE").method == "BYE"  # blind transfer: we leave once the phone accepted
    events = _call_events(server.wait_received(call_id, "callbillrpt"), tables)
    assert [e["event"] for e in events] == list(CALL_EVENTS)
    assert (events[2]["reason"], events[2]["hangUpBy"]) == ("transfer", "engine")


def test_a_route_template_dials_sip_and_a_routed_number_reaches_a_registered_softphone(
        tmp_path: Path, phone: _Phone) -> None:
    port = phone.sock.getsockname()[1]
    routes = (f'[[routes]]\nnumber = "777*"\nendpoint = "sip:{{called}}@127.0.0.1:{port}"\n\n'
              '[[routes]]\nnumber = "1001"\nendpoint = "sip:{called}"\n\n')
    server = SipServer(tmp_path / "routed", extra_toml=routes)
    client = SipClient(("127.0.0.1", server.sip_port))
    try:
        with httpx.Client(base_url=server.live.url, timeout=10) as http:
            def out_call(called: str) -> dict[str, Any]:
                return http.post("/ipcc/call/outCall", json={"appId": DEMO_APP_ID, "called": called}).json()

            first = out_call("7771234")
            invite, source = phone.receive("INVITE")
            assert invite.uri == f"sip:7771234@127.0.0.1:{port}"
            phone.respond(invite, source, 486)
            events = server.wait_received(first["callId"], "callbillrpt")
            assert (events[0]["ansCode"], events[0]["called"]) == (1, "7771234")
            assert out_call("1001")["msg"].startswith("called")  # nobody registered as 1001 yet
            client.request("REGISTER", "c-reg", 1, user="1001")
            client.wait(200, "REGISTER")
            assert out_call("1001")["code"] == "000000"
        # to the Contact it registered (SipClient's is alice's)
        assert client.wait(0, "INVITE").uri == f"sip:alice@{client.address[0]}:{client.address[1]}"
    finally:
        client.close()
        server.close()
