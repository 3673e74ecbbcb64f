"""SIP messages (RFC 3261 §7): parse a datagram into a :class:`SipMessage`, serialise one back.

Robust by construction: every malformed input raises :class:`SipParseError` (a ``ValueError``) with the reason
and, when the message got far enough to be answered (its Via, From, To, Call-ID and CSeq are readable), the
partial request so that the caller can answer ``400``; nothing else escapes. Folded header lines are unfolded
(RFC 3261 §7.3.1 allows them); compact header names are expanded; names are kept lower-case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.net.sip_uri import SipParseError, parse_name_addr, parse_params, parse_uri, split_commas

#: A datagram larger than this is not parsed (RFC 3261 §18.1.1 keeps UDP messages under the path MTU).
MAX_MESSAGE_BYTES = 16 * 1024
MAX_HEADERS = 128
SIP_VERSION = "SIP/2.0"
COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
           "c": "content-type", "k": "supported", "s": "subject", "e": "content-encoding", "o": "event",
           "r": "refer-to", "b": "referred-by", "u": "allow-events", "x": "session-expires"}
#: Headers a request must carry once each (Max-Forwards is tolerated when missing).
MANDATORY = ("via", "from", "to", "call-id", "cseq")
SINGLE = ("from", "to", "call-id", "cseq", "content-length", "max-forwards", "content-type")
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")
CANONICAL = {"call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate"}
#: The methods this user agent serves (its Allow header).
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO, NOTIFY, REFER"
#: Reason phrases of the statuses the user agent sends.
REASONS = {100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 202: "Accepted",
           400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 408: "Request Timeout", 415: "Unsupported Media Type",
           423: "Interval Too Brief", 481: "Call/Transaction Does Not Exist", 483: "Too Many Hops",
           486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 500: "Server Internal Error",
           501: "Not Implemented", 503: "Service Unavailable", 603: "Decline"}


@dataclass
class SipMessage:
    """A request (``method``, ``uri``) or a response (``status``, ``reason``), headers in order, and a body."""

    method: str = ""
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        """True for a request."""
        return bool(self.method)

    def get(self, name: str, default: str = "") -> str:
        """The first value of header ``name`` (lower-case), or ``default``."""
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, comma-separated values split (Via, Route, Record-Route, Contact)."""
        return [part for key, value in self.headers if key == name for part in split_commas(value)]

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` header by one with ``value``."""
        self.headers = [(k, v) for k, v in self.headers if k != name]
        self.headers.append((name, value))

    @property
    def cseq(self) -> tuple[int, str]:
        """(number, method) of the CSeq header."""
        number, _, method = self.get("cseq").partition(" ")
        return int(number), method.strip()

    @property
    def call_id(self) -> str:
        """The Call-ID."""
        return self.get("call-id")

    @property
    def branch(self) -> str:
        """The top Via's ``branch`` parameter."""
        vias = self.get_all("via")
        return parse_params(vias[0].partition(";")[2]).get("branch", "") if vias else ""

    def to_bytes(self) -> bytes:
        """Serialise with a correct Content-Length."""
        first = (f"{self.method} {self.uri} {SIP_VERSION}" if self.method
                 else f"{SIP_VERSION} {self.status} {self.reason}")
        lines = [first]
        for name, value in self.headers:
            if name != "content-length":
                lines.append(f"{CANONICAL.get(name, '-'.join(p.capitalize() for p in name.split('-')))}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


def _split_head(data: bytes) -> tuple[list[str], bytes]:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("the header is not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():  # RFC 3261 §7.5: leading CRLFs are ignored
        lines.pop(0)
    if not lines:
        raise SipParseError("empty message")
    return lines, body


def _headers(lines: list[str]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):  # folded continuation
            if not headers:
                raise SipParseError("continuation line before any header")
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not _TOKEN.fullmatch(name):
            raise SipParseError(f"malformed header line {line[:40]!r}")
        headers.append((COMPACT.get(name, name), value.strip()))
        if len(headers) > MAX_HEADERS:
            raise SipParseError(f"more than {MAX_HEADERS} headers")
    return headers


def _start_line(message: SipMessage, line: str) -> None:
    parts = line.split(" ", 2)
    if len(parts) != 3:
        raise SipParseError(f"malformed start line {line[:60]!r}")
    if parts[0] == SIP_VERSION:
        if not (parts[1].isdigit() and len(parts[1]) == 3 and 100 <= int(parts[1]) <= 699):
            raise SipParseError(f"bad status code {parts[1][:10]!r}")
        message.status, message.reason = int(parts[1]), parts[2].strip()
        return
    if parts[2].strip() != SIP_VERSION:
        raise SipParseError(f"unsupported version {parts[2][:20]!r}")
    if not _TOKEN.fullmatch(parts[0]):
        raise SipParseError(f"bad method {parts[0][:20]!r}")
    message.method, message.uri = parts[0], parts[1]


def _check(message: SipMessage) -> None:
    names = [name for name, _ in message.headers]
    for name in MANDATORY:
        if name not in names:
            raise SipParseError(f"missing {name} header")
    for name in SINGLE:
        if names.count(name) > 1:
            raise SipParseError(f"duplicate {name} header")
    number, _, method = message.get("cseq").partition(" ")
    if not number.isdigit() or len(number) > 10 or int(number) >= 2**31 or not _TOKEN.fullmatch(method.strip()):
        raise SipParseError("malformed CSeq")
    if message.is_request and method.strip() != message.method:
        raise SipParseError("CSeq method does not match the request")
    for name in ("from", "to"):
        parse_name_addr(message.get(name))
    if not message.get("call-id"):
        raise SipParseError("empty Call-ID")


def parse_message(data: bytes) -> SipMessage:
    """Parse one datagram; :class:`SipParseError` when malformed (see the module's docstring)."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError(f"message of {len(data)} bytes (at most {MAX_MESSAGE_BYTES})")
    lines, body = _split_head(data)
    message = SipMessage()
    _start_line(message, lines[0])
    message.headers = _headers(lines[1:])
    _check(message)
    answerable = message if message.is_request else None
    if message.is_request:
        try:
            parse_uri(message.uri)
        except SipParseError as exc:
            raise SipParseError(exc.reason, answerable) from None
        if not message.branch:
            raise SipParseError("Via without a branch", answerable)
    length = message.get("content-length", "")
    if length:
        if not length.isdigit() or len(length) > 6:
            raise SipParseError("malformed Content-Length", answerable)
        if int(length) > len(body):
            raise SipParseError(f"Content-Length {length} beyond the {len(body)} bytes of body", answerable)
        body = body[: int(length)]
    message.body = body
    return message


def parse_or_partial(data: bytes) -> tuple[SipMessage | None, SipParseError | None]:
    """Parse ``data``; on failure, the error (its ``partial`` is answerable) instead of the message."""
    try:
        return parse_message(data), None
    except SipParseError as exc:
        if exc.partial is None:
            exc.partial = _answerable(data)
        return None, exc


def _answerable(data: bytes) -> SipMessage | None:
    """A request whose dialog headers are readable though something else is broken (to answer ``400``)."""
    try:
        lines, _ = _split_head(data[:MAX_MESSAGE_BYTES])
        message = SipMessage()
        _start_line(message, lines[0])
        if not message.is_request:
            return None
        message.headers = _headers(lines[1:])
        _check(message)
        return message if message.branch else None
    except SipParseError:
        return None


def response_to(request: SipMessage, status: int, reason: str, to_tag: str = "",
                headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> SipMessage:
    """A response to ``request``: its Via, From, To (with ``to_tag`` added when it has none), Call-ID, CSeq."""
    to = request.get("to")
    if to_tag and "tag=" not in to.lower():
        to = f"{to};tag={to_tag}"
    copied = [("via", value) for name, value in request.headers if name == "via"]
    copied += [("from", request.get("from")), ("to", to), ("call-id", request.call_id), ("cseq", request.get("cseq"))]
    return SipMessage(status=status, reason=reason, headers=copied + list(headers or []), body=body)
