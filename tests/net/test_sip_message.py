"""SIP parsing and serialising, and a corpus of broken messages: each answered 400 or dropped, none crashes."""

from __future__ import annotations

import pytest

from engine.net.sip_message import (
    MAX_MESSAGE_BYTES,
    SipParseError,
    parse_message,
    parse_name_addr,
    parse_or_partial,
    parse_uri,
    response_to,
)
from engine.net.sip_uri import via_sent_by

INVITE = (
    "INVITE sip:10086@127.0.0.1:5080 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1;rport\r\n"
    "v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-0\r\n"
    "Max-Forwards: 70\r\n"
    'From: "Alice" <sip:alice@127.0.0.1:5062>;tag=abc\r\n'
    "t: <sip:10086@127.0.0.1>\r\n"
    "Call-ID: c1@127.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Subject: a folded\r\n"
    "  header\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 4\r\n\r\n"
    "v=0\nEXTRA"
)


def test_a_request_with_compact_and_folded_headers() -> None:
    message = parse_message(INVITE.encode())
    assert message.method == "INVITE" and message.uri == "sip:10086@127.0.0.1:5080"
    assert message.get_all("via") == ["SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1;rport",
                                      "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-0"]
    assert message.branch == "z9hG4bK-1" and message.cseq == (1, "INVITE") and message.call_id == "c1@127.0.0.1"
    assert message.get("subject") == "a folded header"
    assert message.body == b"v=0\n"  # Content-Length wins; the rest is dropped
    assert parse_name_addr(message.get("from")).tag == "abc"
    again = parse_message(message.to_bytes())
    assert again.headers == message.headers and again.body == message.body


def test_a_response_to_a_request_copies_its_dialog_headers_and_adds_the_tag() -> None:
    request = parse_message(INVITE.encode())
    response = parse_message(response_to(request, 486, "Busy Here", "xyz").to_bytes())
    assert (response.status, response.reason) == (486, "Busy Here")
    assert response.get_all("via") == request.get_all("via")
    assert parse_name_addr(response.get("to")).tag == "xyz" and response.call_id == request.call_id


@pytest.mark.parametrize(("text", "user", "host", "port"), [
    ("sip:10086@127.0.0.1:5080", "10086", "127.0.0.1", 5080),
    ("sip:127.0.0.1", "", "127.0.0.1", None),
    ("sips:bob@[::1]:5061;transport=tls", "bob", "[::1]", 5061),
])
def test_uris(text: str, user: str, host: str, port: int | None) -> None:
    uri = parse_uri(text)
    assert (uri.user, uri.host, uri.port) == (user, host, port)


def _replace(old: str, new: str) -> bytes:
    return INVITE.replace(old, new).encode()


# (name, datagram, answerable with 400)
CORPUS = [
    ("empty", b"", False),
    ("garbage", b"\x00\xff\xfe garbage", False),
    ("not utf-8", INVITE.encode().replace(b"Alice", b"\xff\xfe"), False),
    ("no blank line", INVITE.split("\r\n\r\n")[0].encode(), True),
    ("missing Call-ID", _replace("Call-ID: c1@127.0.0.1\r\n", ""), False),
    ("missing CSeq", _replace("CSeq: 1 INVITE\r\n", ""), False),
    ("missing Via", _replace("Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1;rport\r\nv: SIP/2.0/UDP "
                             "10.0.0.1:5060;branch=z9hG4bK-0\r\n", ""), False),
    ("duplicate Call-ID", _replace("Call-ID: c1@127.0.0.1\r\n", "Call-ID: c1@127.0.0.1\r\ni: c2\r\n"), False),
    ("duplicate CSeq", _replace("CSeq: 1 INVITE\r\n", "CSeq: 1 INVITE\r\nCSeq: 2 INVITE\r\n"), False),
    ("Content-Length beyond the body", _replace("Content-Length: 4", "Content-Length: 400"), True),
    ("Content-Length not a number", _replace("Content-Length: 4", "Content-Length: four"), True),
    ("CSeq method mismatch", _replace("CSeq: 1 INVITE", "CSeq: 1 BYE"), False),
    ("CSeq not a number", _replace("CSeq: 1 INVITE", "CSeq: x INVITE"), False),
    ("invalid request URI", _replace("INVITE sip:10086@127.0.0.1:5080", "INVITE http://x/"), True),
    ("URI port out of range", _replace("INVITE sip:10086@127.0.0.1:5080", "INVITE sip:a@b:99999"), True),
    ("bad version", _replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia"), False),
    ("no branch", _replace(";branch=z9hG4bK-1;rport", ""), True),
    ("header without colon", _replace("Max-Forwards: 70", "Max-Forwards 70"), False),
    ("unclosed angle bracket", _replace("<sip:alice@127.0.0.1:5062>", "<sip:alice@127.0.0.1:5062"), False),
    ("continuation before any header", _replace("INVITE sip:10086@127.0.0.1:5080 SIP/2.0\r\n",
                                                "INVITE sip:10086@127.0.0.1:5080 SIP/2.0\r\n folded\r\n"), False),
    ("a 64 KiB datagram", INVITE.encode() + b"x" * 65000, True),
    ("status out of range", b"SIP/2.0 999 Nope\r\nVia: x\r\n\r\n", False),
]


@pytest.mark.parametrize(("name", "data", "answerable"), CORPUS, ids=[c[0] for c in CORPUS])
def test_broken_messages_raise_a_parse_error_and_say_if_answerable(name: str, data: bytes, answerable: bool) -> None:
    with pytest.raises(SipParseError):
        parse_message(data)
    message, error = parse_or_partial(data)
    assert message is None and error is not None
    assert (error.partial is not None) is answerable, error.reason


def test_the_size_limit_is_checked_before_parsing() -> None:
    with pytest.raises(SipParseError, match="at most"):
        parse_message(b"x" * (MAX_MESSAGE_BYTES + 1))


@pytest.mark.parametrize(("via", "sent_by"), [
    ("SIP/2.0/TCP 127.0.0.1:5062;branch=z9hG4bK-1", ("127.0.0.1", 5062)),
    ("SIP/2.0/UDP [::1]:5070;rport", ("::1", 5070)),
    ("SIP/2.0/TCP pbx.example", ("pbx.example", None)),
    ("SIP/2.0/TCP 127.0.0.1:99999", ("127.0.0.1", None)),
])
def test_the_sent_by_of_a_via(via: str, sent_by: tuple[str, int | None]) -> None:
    assert via_sent_by(via) == sent_by
