"""The user agent over an in-memory wire, for tests: a recording handler, a hand-moved clock, request text.

:class:`Wire` delivers request text to a :class:`~engine.net.user_agent.UserAgent` from :data:`PEER` (or any
peer) and keeps what it sends; :meth:`Wire.advance` moves its timers (a 32 s timeout in microseconds).
"""

from __future__ import annotations

from typing import Any

from engine.net.dialog import new_branch
from engine.net.sdp import build_offer
from engine.net.sip_call import SipCall
from engine.net.sip_message import SipMessage, parse_message
from engine.net.sip_peer import Peer
from engine.net.sip_uri import parse_name_addr
from engine.net.timers import Timers
from engine.net.user_agent import UserAgent

PEER = Peer("127.0.0.1", 5062)


class Recorder:
    """A handler that answers (or not) and records what the user agent reports."""

    def __init__(self, decision: str = "answer") -> None:
        self.decision = decision
        self.agent: UserAgent
        self.reports: list[tuple[str, Any]] = []

    def incoming(self, call: SipCall) -> None:
        """Answer (180, 200), ring, or reject with ``decision`` as a status."""
        self.reports.append(("incoming", call.number))
        if self.decision == "answer":
            self.agent.ring(call)
            self.agent.answer(call, build_offer("127.0.0.1", 40000, 1))
        elif self.decision != "ring":
            self.agent.reject(call, int(self.decision))

    def confirmed(self, call: SipCall) -> None:
        """Recorded with the remote SDP."""
        self.reports.append(("confirmed", call.remote_sdp))

    def ended(self, call: SipCall, reason: str) -> None:
        """Recorded with the reason."""
        self.reports.append(("ended", reason))

    def reoffer(self, call: SipCall, sdp: bytes) -> bytes:
        """Recorded; answered with a fixed description."""
        self.reports.append(("reoffer", sdp))
        return build_offer("127.0.0.1", 40000, 1, 2)

    def dtmf(self, call: SipCall, key: str, duration_ms: int) -> None:
        """Recorded with the key and its duration."""
        self.reports.append(("dtmf", (key, duration_ms)))

    def progress(self, call: SipCall, status: int) -> None:
        """Recorded with the status."""
        self.reports.append(("progress", status))


class Wire:
    """A user agent at 127.0.0.1:5080 whose sent messages are kept (parsed) in :attr:`sent` with their peer."""

    def __init__(self, decision: str = "answer") -> None:
        self.sent: list[tuple[SipMessage, Peer]] = []
        self.timers = Timers()
        self.handler = Recorder(decision)
        self.agent = UserAgent("127.0.0.1", 5080, lambda d, a: self.sent.append((parse_message(d), a)),
                               self.timers, self.handler)
        self.handler.agent = self.agent

    def deliver(self, text: str, source: Peer = PEER) -> list[SipMessage]:
        """Hand ``text`` to the user agent from ``source``; what it sent in return."""
        before = len(self.sent)
        self.agent.datagram(text.encode(), source)
        return [m for m, _ in self.sent[before:]]

    def statuses(self) -> list[int]:
        """The statuses of every response sent so far."""
        return [m.status for m, _ in self.sent if not m.is_request]

    def advance(self, seconds: float) -> list[SipMessage]:
        """Move the timers ``seconds`` on; what was sent meanwhile."""
        before = len(self.sent)
        self.timers.run_due(self.timers.now + seconds)
        return [m for m, _ in self.sent[before:]]


def request(method: str, branch: str | None = None, cseq: int = 1, to_tag: str = "", body: str = "",
            call_id: str = "call-1", extra: str = "", cseq_method: str | None = None) -> str:
    """A request from alice (127.0.0.1:5062, over UDP) to 10086@127.0.0.1:5080; ``extra``: more header lines."""
    to = "<sip:10086@127.0.0.1:5080>" + (f";tag={to_tag}" if to_tag else "")
    headers = (f"{method} sip:10086@127.0.0.1:5080 SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:5062;branch={branch or new_branch()}\r\n"
               "Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1:5062>;tag=a1\r\n"
               f"To: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {cseq_method or method}\r\n"
               "Contact: <sip:alice@127.0.0.1:5062>\r\n" + extra)
    return headers + f"Content-Length: {len(body)}\r\n\r\n{body}"


#: An SDP offer (PCMU and telephone-event, port 6000) as text.
OFFER = build_offer("127.0.0.1", 6000, 7).decode()


def to_tag(message: SipMessage) -> str:
    """The To tag of a message."""
    return parse_name_addr(message.get("to")).tag
