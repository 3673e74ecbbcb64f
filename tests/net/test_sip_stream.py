"""Framing SIP on a stream (RFC 3261 §18.3): by Content-Length, pipelined, split anywhere, broken input refused."""

from __future__ import annotations

import pytest

from engine.net.sip_stream import MAX_STREAM_BYTES, FramingError, StreamFramer

OPTIONS = (b"OPTIONS sip:10086@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5062;branch=z9hG4bK-1\r\n"
           b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:10086@127.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n")


def _message(body: bytes = b"", length: bytes | None = None) -> bytes:
    return OPTIONS + b"Content-Length: " + (str(len(body)).encode() if length is None else length) + b"\r\n\r\n" + body


def test_pipelined_messages_split_at_every_byte_come_out_whole_and_in_order() -> None:
    stream = b"\r\n" + _message(b"v=0\r\n") + _message() + _message(b"x" * 300)
    for cut in range(1, len(stream)):
        framer = StreamFramer()
        got = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert got == [_message(b"v=0\r\n"), _message(), _message(b"x" * 300)], cut
        assert framer.buffered == 0


def test_the_compact_form_l_counts_and_a_double_crlf_is_a_keep_alive_ping() -> None:
    framer = StreamFramer()
    compact = OPTIONS + b"l: 2\r\n\r\nhi"
    assert framer.feed(b"\r\n\r\n" + compact + b"\r\n\r\n") == [compact]
    assert framer.pings == 2


@pytest.mark.parametrize(("head", "reason"), [
    (OPTIONS, "no Content-Length"),
    (OPTIONS + b"Content-Length: abc\r\n", "malformed Content-Length"),
    (OPTIONS + b"Content-Length: 1\r\nl: 2\r\n", "malformed Content-Length"),
    (OPTIONS + b"Content-Length: 99999999\r\n", "malformed Content-Length"),
    (OPTIONS + f"Content-Length: {MAX_STREAM_BYTES}\r\n".encode(), "a message of"),
])
def test_a_bad_or_missing_content_length_is_refused_with_the_header_to_answer(head: bytes, reason: str) -> None:
    with pytest.raises(FramingError) as caught:
        StreamFramer().feed(head + b"\r\n")
    assert caught.value.reason.startswith(reason) and caught.value.head == head.removesuffix(b"\r\n")


def test_a_header_without_end_is_refused_once_past_the_cap_and_not_before() -> None:
    framer = StreamFramer(max_bytes=1024)
    assert framer.feed(b"A" * 1024) == [] and framer.buffered == 1024
    with pytest.raises(FramingError) as caught:
        framer.feed(b"A")
    assert caught.value.head == b"" and "without its end" in caught.value.reason
