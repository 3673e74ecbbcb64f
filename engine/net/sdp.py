"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for one audio stream of G.711 and RFC 4733 events.

The engine offers and accepts PCMU (0) and PCMA (8) at 20 ms (a remote ``ptime`` of 30 is accepted: the jitter
buffer takes any packet length) and ``telephone-event/8000``. :class:`SdpError` (a ``ValueError``) is a
malformed description (answered ``400``); :class:`NoCommonMediaError` is a valid one with nothing the engine
can use (answered ``488``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from engine.net.g711 import NAMES, PCMA, PCMU

TELEPHONE_EVENT = "telephone-event"
#: Our dynamic payload type for telephone-event when we offer.
DEFAULT_EVENT_PT = 101
ACCEPTED_PTIME_MS = (20, 30)
MAX_SDP_BYTES = 8192
_STATIC = {pt: name.lower() for pt, name in NAMES.items()}  # rtpmap names are kept lower-case
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


class SdpError(ValueError):
    """A malformed session description."""


class NoCommonMediaError(SdpError):
    """The offer has no audio stream in a codec the engine speaks (``488``)."""


@dataclass
class Media:
    """One ``m=`` line with its attributes; ``rtpmap``: payload type → lower-case ``name/rate``."""

    kind: str
    port: int
    proto: str
    formats: list[int]
    rtpmap: dict[int, str] = field(default_factory=dict)
    address: str = ""
    direction: str = "sendrecv"
    ptime_ms: int = 20

    def codec(self, payload_type: int) -> str:
        """``pcmu``/``pcma``/``telephone-event``..., by rtpmap or the static table ("" when unknown)."""
        name = self.rtpmap.get(payload_type)
        if name is not None:
            encoding, _, rate = name.partition("/")
            return encoding if rate.partition("/")[0] in ("8000", "") else ""
        return _STATIC.get(payload_type, "")


@dataclass
class Session:
    """A parsed description: the session's connection address and its media."""

    address: str
    media: list[Media]
    origin: str = ""


def _address(value: str) -> str:
    parts = value.split()
    if len(parts) < 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"c=: unsupported connection {value[:40]!r}")
    host = parts[2].partition("/")[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise SdpError(f"c=: {host[:40]!r} is not an IP address") from None
    return host


def _media_line(value: str) -> Media:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"m=: malformed {value[:40]!r}")
    port_text = parts[1].partition("/")[0]
    if not port_text.isdigit() or int(port_text) > 65535:
        raise SdpError(f"m=: port {parts[1][:12]!r} out of range 0-65535")
    formats = []
    for fmt in parts[3:]:
        if fmt.isdigit() and int(fmt) < 128:
            formats.append(int(fmt))
        elif parts[2].startswith("RTP"):
            raise SdpError(f"m=: payload type {fmt[:8]!r} out of range 0-127")
    return Media(parts[0], int(port_text), parts[2], formats)


def _attribute(media: Media, value: str) -> None:
    name, _, rest = value.partition(":")
    if name == "rtpmap":
        pt, _, encoding = rest.partition(" ")
        if pt.isdigit():
            media.rtpmap[int(pt)] = encoding.strip().lower()
    elif name == "ptime" and rest.strip().isdigit():
        media.ptime_ms = int(rest.strip())
    elif name in DIRECTIONS:
        media.direction = name


def parse_sdp(body: bytes) -> Session:
    """Parse a description; :class:`SdpError` when malformed."""
    if len(body) > MAX_SDP_BYTES:
        raise SdpError(f"SDP of {len(body)} bytes (at most {MAX_SDP_BYTES})")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("SDP is not UTF-8") from None
    session = Session("", [])
    current: Media | None = None
    session_direction = "sendrecv"
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"malformed SDP line {line[:40]!r}")
        kind, value = line[0], line[2:]
        if kind == "v" and value != "0":
            raise SdpError("v=: only version 0")
        elif kind == "o":
            session.origin = value
        elif kind == "c":
            if current is None:
                session.address = _address(value)
            else:
                current.address = _address(value)
        elif kind == "m":
            current = _media_line(value)
            current.direction = session_direction
            session.media.append(current)
        elif kind == "a":
            if current is not None:
                _attribute(current, value)
            elif value in DIRECTIONS:
                session_direction = value
    for media in session.media:
        media.address = media.address or session.address
    return session


@dataclass(frozen=True)
class Negotiated:
    """What offer/answer settled: where to send, in which payload type, the events' type (None: none)."""

    remote_address: str
    remote_port: int
    payload_type: int
    event_payload_type: int | None
    direction: str = "sendrecv"
    remote_ptime_ms: int = 20


def negotiate(session: Session) -> Negotiated:
    """Choose from a remote description (offer or answer): its first audio stream with PCMU or PCMA.

    The remote's order of preference is kept. :class:`NoCommonMediaError` when no audio stream offers G.711,
    or none is usable (port 0, no address, a ptime other than 20 or 30 ms).
    """
    for media in session.media:
        if media.kind != "audio" or media.port == 0 or not media.proto.startswith("RTP/AVP"):
            continue
        if not media.address:
            raise SdpError("no c= connection address for the audio stream")
        if media.ptime_ms not in ACCEPTED_PTIME_MS:
            continue
        codecs = [pt for pt in media.formats if media.codec(pt) in ("pcmu", "pcma")]
        if not codecs:
            continue
        events = [pt for pt in media.formats if media.codec(pt) == TELEPHONE_EVENT]
        return Negotiated(media.address, media.port, codecs[0], events[0] if events else None,
                          media.direction, media.ptime_ms)
    raise NoCommonMediaError("no audio stream with PCMU or PCMA at 20 or 30 ms")


def _answer_direction(remote: str) -> str:
    return {"sendonly": "recvonly", "recvonly": "sendonly"}.get(remote, remote)


def build_sdp(address: str, port: int, session_id: int, version: int, payload_types: list[int],
              event_payload_type: int | None, direction: str = "sendrecv") -> bytes:
    """A description of one audio stream at ``address:port`` with ``payload_types`` and telephone-event."""
    family = "IP6" if ":" in address else "IP4"
    formats = [*payload_types, *([event_payload_type] if event_payload_type is not None else [])]
    lines = ["v=0", f"o=ipcc-engine {session_id} {version} IN {family} {address}", "s=ipcc-engine",
             f"c=IN {family} {address}", "t=0 0", f"m=audio {port} RTP/AVP {' '.join(map(str, formats))}"]
    for pt in payload_types:
        lines.append(f"a=rtpmap:{pt} {NAMES[pt]}/8000")
    if event_payload_type is not None:
        lines.append(f"a=rtpmap:{event_payload_type} telephone-event/8000")
        lines.append(f"a=fmtp:{event_payload_type} 0-15")
    lines += ["a=ptime:20", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def build_offer(address: str, port: int, session_id: int, version: int = 1) -> bytes:
    """The engine's offer: PCMU, PCMA and telephone-event (:data:`DEFAULT_EVENT_PT`)."""
    return build_sdp(address, port, session_id, version, [PCMU, PCMA], DEFAULT_EVENT_PT)


def build_answer(negotiated: Negotiated, address: str, port: int, session_id: int, version: int = 1) -> bytes:
    """The answer to an offer ``negotiated`` came from: the chosen codec, and events if offered."""
    return build_sdp(address, port, session_id, version, [negotiated.payload_type],
                     negotiated.event_payload_type, _answer_direction(negotiated.direction))
