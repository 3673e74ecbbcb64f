"""SIP over TCP against the real transport: framing, connection reuse, broken input, caps, idle connections.

The phone service listens on UDP and TCP at one port; a test connects real sockets. Every broken stream is
dropped and counted and the service stays healthy: an OPTIONS over UDP and over a fresh connection is still
answered afterwards. With ``[sip] tcp = false`` an ``outCall`` over TCP is refused, naming ``called``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.config import DEMO_APP_ID
from engine.net.dialog import new_branch
from engine.net.phone import Line, PhoneService
from engine.net.rtp_hub import RtpHub
from engine.net.sip_message import SipMessage, parse_message, response_to
from engine.net.sip_stream import MAX_STREAM_BYTES, StreamFramer
from engine.net.transport import SipTransport
from engine.testing.baresip import free_port
from engine.testing.server import wait_for
from engine.testing.sip_server import SipServer

MAX_CONNECTIONS = 3


class _Refuser:
    """A line handler that refuses every incoming call (busy) and keeps the statuses of outgoing ones."""

    def __init__(self) -> None:
        self.statuses: list[int] = []

    def incoming(self, line: Line) -> str:
        return "486"

    def connected(self, line: Line) -> None: ...

    def status(self, line: Line, status: int) -> None:
        self.statuses.append(status)

    def ended(self, line: Line, reason: str) -> None: ...


@pytest.fixture
def phone() -> Iterator[PhoneService]:
    hub = RtpHub("127.0.0.1", 0, 16)
    transport = SipTransport("127.0.0.1", 0, tcp_idle_s=600, tcp_max_connections=MAX_CONNECTIONS)
    service = PhoneService("127.0.0.1", 0, hub, _Refuser(), transport=transport)
    service.start()
    yield service
    service.close()
    hub.close()


def _request(method: str = "OPTIONS", length: str | None = None, body: bytes = b"", via: str = "TCP") -> bytes:
    head = (f"{method} sip:10086@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{via} 127.0.0.1:5062;branch={new_branch()}\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:10086@127.0.0.1>\r\n"
            f"Call-ID: {new_branch()}\r\nCSeq: 1 {method}\r\n")
    if length != "":
        head += f"Content-Length: {len(body) if length is None else length}\r\n"
    return head.encode() + b"\r\n" + body


class _Connection:
    """A client TCP connection that reads framed messages (and tells when the engine closed it)."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=30)
        self.framer = StreamFramer()
        self.messages: list[SipMessage] = []

    def read(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except ConnectionResetError:
            return b""

    def next(self) -> SipMessage:
        while not self.messages:
            data = self.read()
            assert data, "the engine closed the connection"
            self.messages += [parse_message(m) for m in self.framer.feed(data)]
        return self.messages.pop(0)

    def closed(self) -> bool:
        """Read until the engine closes the connection (True), anything read before kept in ``messages``."""
        while data := self.read():
            self.messages += [parse_message(m) for m in self.framer.feed(data)]
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def connect(phone: PhoneService) -> Iterator[Any]:
    opened: list[_Connection] = []

    def new() -> _Connection:
        opened.append(_Connection(phone.address))
        return opened[-1]

    yield new
    for connection in opened:
        connection.close()


def _healthy(phone: PhoneService, connect: Any) -> None:
    """OPTIONS over UDP and over a new TCP connection are answered 200."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        udp.settimeout(30)
        udp.sendto(_request(via="UDP"), phone.address)
        assert parse_message(udp.recv(65536)).status == 200
    finally:
        udp.close()
    fresh = connect()
    fresh.sock.sendall(_request())
    assert fresh.next().status == 200
    fresh.close()


def test_pipelined_requests_on_one_connection_are_each_answered_on_it(phone: PhoneService, connect: Any) -> None:
    connection = connect()
    connection.sock.sendall(b"\r\n\r\n")
    assert connection.read() == b"\r\n"  # a keep-alive ping's pong (RFC 5626)
    register = _request("REGISTER")
    connection.sock.sendall(_request() + register[:40])  # a request and half of the next
    assert connection.next().status == 200
    connection.sock.sendall(register[40:])  # the rest: no Contact, so a query of the (no) bindings
    assert [connection.next().cseq] == [(1, "REGISTER")]
    connection.sock.sendall(_request("INVITE"))
    assert [connection.next().status for _ in range(2)] == [100, 486]  # the call refused on the same connection
    tcp = phone.transport.tcp
    assert tcp is not None and tcp.counters["tcp_opened"] == 1 and tcp.counters["tcp_messages"] == 3


@pytest.mark.parametrize(("data", "answered"), [
    (_request(length=""), 400),  # no Content-Length on a stream
    (_request(length="abc"), 400),
    (_request(length=str(MAX_STREAM_BYTES)), 400),  # more than a connection may buffer
    (b"X" * (MAX_STREAM_BYTES + 1), None),  # a 64 KiB header without its end
    (bytes(range(256)) * 4 + b"\r\n\r\n", None),  # garbage: nothing to answer
], ids=["no-length", "bad-length", "too-long", "endless-header", "garbage"])
def test_broken_input_on_tcp_is_answered_when_it_can_be_then_dropped_and_counted(
        phone: PhoneService, connect: Any, data: bytes, answered: int | None) -> None:
    connection = connect()
    try:
        connection.sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # closed while we still wrote: the endless header
    assert connection.closed()
    assert [m.status for m in connection.messages] == ([answered] if answered else [])
    tcp = phone.transport.tcp
    assert tcp is not None and tcp.counters["tcp_broken"] == 1
    _healthy(phone, connect)


def test_a_half_open_connection_is_closed_when_idle_and_past_the_cap_connections_are_refused(
        phone: PhoneService, connect: Any) -> None:
    tcp = phone.transport.tcp
    assert tcp is not None
    tcp.idle_s = 0.2  # seconds of silence (the sweep looks every second)
    half = connect()
    half.sock.sendall(_request()[:50])  # a request that never ends, then silence
    assert half.closed() and half.messages == []
    assert tcp.counters["tcp_idle_closed"] == 1
    tcp.idle_s = 600
    held = [connect() for _ in range(MAX_CONNECTIONS)]
    wait_for(lambda: len(tcp) == MAX_CONNECTIONS or None, 30, "the connections to be accepted")
    extra = connect()
    assert extra.closed() and tcp.counters["tcp_refused"] == 1
    held[0].sock.sendall(_request())
    assert held[0].next().status == 200  # the others still work


def test_an_outgoing_call_to_a_tcp_port_nobody_listens_on_fails_503_at_once(phone: PhoneService) -> None:
    closed_port = free_port(socket.SOCK_STREAM)
    line = phone.dial(f"sip:bob@127.0.0.1:{closed_port};transport=tcp", "ipcc")
    handler = phone.handler
    assert isinstance(handler, _Refuser)
    wait_for(lambda: handler.statuses or None, 30, "the call's status")
    assert handler.statuses == [503] and line.call.end_reason == "503"  # not 408 after timer B's 32 s
    tcp = phone.transport.tcp
    assert tcp is not None and tcp.counters["tcp_connect_failed"] == 1 and len(tcp) == 0


def test_a_source_the_allow_list_refuses_is_closed_when_it_connects() -> None:
    hub = RtpHub("127.0.0.1", 0, 16)
    service = PhoneService("127.0.0.1", 0, hub, _Refuser(), allow=lambda source: source[0] != "127.0.0.1")
    service.start()
    try:
        refused = _Connection(service.address)
        assert refused.closed() and refused.messages == []
        tcp = service.transport.tcp
        assert tcp is not None and tcp.counters["tcp_refused_source"] == 1 and len(tcp) == 0
        refused.close()
    finally:
        service.close()
        hub.close()


def test_with_tcp_off_an_out_call_over_tcp_is_refused_naming_called(tmp_path: Path) -> None:
    server = SipServer(tmp_path / "udp-only", extra_toml="[sip]\ntcp = false\n")
    try:
        assert server.glue.phone.transport.tcp is None
        body = {"appId": DEMO_APP_ID, "called": "sip:bob@127.0.0.1:5999;transport=tcp"}
        answer = httpx.post(f"{server.live.url}/ipcc/call/outCall", json=body, timeout=10).json()
        assert answer["code"] == "108100" and answer["msg"].startswith("called") and "TCP" in answer["msg"]
    finally:
        server.close()


def _register(user: str, contact: str) -> bytes:
    return (f"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5062;branch={new_branch()}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=r1\r\nTo: <sip:{user}@127.0.0.1>\r\n"
            f"Call-ID: {new_branch()}\r\nCSeq: 1 REGISTER\r\nContact: <{contact}>\r\nExpires: 600\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def test_a_phone_registered_over_tcp_is_called_over_its_own_connection_while_it_is_open(
        phone: PhoneService, connect: Any) -> None:
    """Its Contact's port takes no connection (a phone behind NAT): the INVITE comes on the REGISTER's connection."""
    contact = f"sip:carol@127.0.0.1:{free_port(socket.SOCK_STREAM)};transport=tcp"
    registered = connect()
    registered.sock.sendall(_register("carol", contact))
    assert registered.next().status == 200
    tcp = phone.transport.tcp
    assert tcp is not None
    phone.dial(contact, "ipcc")
    invite = registered.next()
    assert invite.method == "INVITE" and invite.uri == contact and "SIP/2.0/TCP" in invite.get("via")
    assert tcp.counters["tcp_dialled"] == 0 and len(tcp) == 1
    busy = response_to(invite, 486, "Busy Here", to_tag="c1")
    registered.sock.sendall(busy.to_bytes())
    handler = phone.handler
    assert isinstance(handler, _Refuser)
    wait_for(lambda: handler.statuses or None, 30, "the call's status")
    assert handler.statuses == [486]
    registered.close()  # gone: the next call tries the Contact itself (nobody there: 503 at once)
    wait_for(lambda: len(tcp) == 0 or None, 30, "the engine to see the connection closed")
    phone.dial(contact, "ipcc")
    wait_for(lambda: len(handler.statuses) == 2 or None, 30, "the second call's status")
    assert handler.statuses == [486, 503] and tcp.counters["tcp_dialled"] == 1
