"""SDP offer/answer: codec choice in the remote's order, ptime, events, directions, and refusals."""

from __future__ import annotations

import pytest

from engine.net.sdp import (
    NoCommonMediaError,
    SdpError,
    build_answer,
    build_offer,
    negotiate,
    parse_sdp,
)


def _sdp(m: str, extra: str = "", c: str = "c=IN IP4 127.0.0.1") -> bytes:
    return f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n{c}\r\nt=0 0\r\nm={m}\r\n{extra}".encode()


def test_the_remotes_first_g711_codec_and_its_event_type_are_chosen() -> None:
    chosen = negotiate(parse_sdp(_sdp("audio 6000 RTP/AVP 18 8 0 96", "a=rtpmap:96 telephone-event/8000\r\n")))
    assert (chosen.remote_address, chosen.remote_port, chosen.payload_type, chosen.event_payload_type) == \
        ("127.0.0.1", 6000, 8, 96)
    answer = parse_sdp(build_answer(chosen, "127.0.0.1", 40000, 5))
    assert answer.media[0].formats == [8, 96] and answer.media[0].port == 40000


def test_30_ms_is_accepted_other_ptimes_and_no_events_are_handled() -> None:
    assert negotiate(parse_sdp(_sdp("audio 6000 RTP/AVP 0", "a=ptime:30\r\n"))).remote_ptime_ms == 30
    assert negotiate(parse_sdp(_sdp("audio 6000 RTP/AVP 0"))).event_payload_type is None
    with pytest.raises(NoCommonMediaError):
        negotiate(parse_sdp(_sdp("audio 6000 RTP/AVP 0", "a=ptime:40\r\n")))


@pytest.mark.parametrize(("offer", "answer"), [("sendonly", "recvonly"), ("recvonly", "sendonly"),
                                               ("inactive", "inactive"), ("sendrecv", "sendrecv")])
def test_the_answer_mirrors_the_direction(offer: str, answer: str) -> None:
    chosen = negotiate(parse_sdp(_sdp("audio 6000 RTP/AVP 0", f"a={offer}\r\n")))
    assert f"a={answer}".encode() in build_answer(chosen, "127.0.0.1", 40000, 5)


def test_a_media_level_address_and_a_rejected_stream() -> None:
    body = _sdp("audio 0 RTP/AVP 0", "m=audio 7000 RTP/AVP 0\r\nc=IN IP4 127.0.0.2\r\n", c="")
    chosen = negotiate(parse_sdp(body))
    assert (chosen.remote_address, chosen.remote_port) == ("127.0.0.2", 7000)


@pytest.mark.parametrize("body", [
    _sdp("audio 6000 RTP/AVP 18", "a=rtpmap:18 G729/8000\r\n"),  # nothing in common
    _sdp("video 6000 RTP/AVP 0"),  # no audio
    b"v=0\r\ns=-\r\n",  # no media at all
    _sdp("audio 0 RTP/AVP 0"),  # the only stream rejected
])
def test_nothing_usable_is_488(body: bytes) -> None:
    with pytest.raises(NoCommonMediaError):
        negotiate(parse_sdp(body))


@pytest.mark.parametrize("body", [
    _sdp("audio 99999 RTP/AVP 0"),  # absurd port
    _sdp("audio 6000 RTP/AVP 0 300"),  # payload type beyond 127
    _sdp("audio 6000 RTP/AVP 0", c="c=IN IP4 not-an-address"),
    b"v=1\r\n",
    b"garbage line\r\n",
    b"\xff\xfe",
    b"v=0\r\n" + b"a=x\r\n" * 3000,  # too long
])
def test_malformed_descriptions_raise(body: bytes) -> None:
    with pytest.raises(SdpError):
        negotiate(parse_sdp(body))


def test_our_offer_lists_pcmu_pcma_and_events() -> None:
    media = parse_sdp(build_offer("127.0.0.1", 40000, 1)).media[0]
    assert media.formats == [0, 8, 101] and media.codec(101) == "telephone-event" and media.ptime_ms == 20
