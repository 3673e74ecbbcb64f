"""The phone service: SIP calls (user agent, over UDP and TCP) with RTP media (hub sessions), as lines.

A :class:`Line` is one SIP call with its :class:`~engine.net.rtp_session.RtpSession` (the engine call's caller
and sink). The service does the telephony — SDP offer/answer (``488`` when nothing in common; an offerless
INVITE gets our offer in the 200 and its answer from the ACK), ringing, answering, re-INVITE (hold, unhold,
a new address), INFO keys, hang-up either side, outgoing INVITE/CANCEL, REFER — and asks a
:class:`LineHandler` (the server's glue) what the engine does with each line. All SIP work runs on the SIP
thread; :meth:`PhoneService.hang_up`, :meth:`PhoneService.dial` and :meth:`PhoneService.transfer` may be
called from any thread.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.errors import BusyError
from engine.format import ms_to_samples
from engine.media.pacer import Clock
from engine.net.rtp_hub import RtpHub
from engine.net.rtp_session import DEFAULT_INACTIVITY_TICKS, RtpSession
from engine.net.sdp import NoCommonMediaError, SdpError, build_answer, build_offer, negotiate, parse_sdp
from engine.net.sip_call import SipCall
from engine.net.transport import SipTransport
from engine.net.user_agent import UserAgent

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Line:
    """One SIP call and its media; ``data``: the handler's own (the engine's call id...)."""

    call: SipCall
    session: RtpSession
    number: str
    caller: str
    incoming: bool
    data: dict[str, Any] = field(default_factory=dict)


class LineHandler(Protocol):
    """What the engine does with lines (called on the SIP thread)."""

    def incoming(self, line: Line) -> str:
        """A new incoming call: ``answer`` (at once), ``ring`` (180; answer later), or a status to refuse."""

    def connected(self, line: Line) -> None:
        """The call is up (media flows both ways)."""

    def status(self, line: Line, status: int) -> None:
        """An outgoing call's status (180, 200, 486, 408, 487, ...)."""

    def ended(self, line: Line, reason: str) -> None:
        """The SIP call is over (``bye``: the far end hung up; ``cancel``; ``timeout``; ``local``)."""


class PhoneService:
    """SIP at ``host:port`` and RTP on ``hub``; lines go to ``handler``."""

    def __init__(self, host: str, port: int, hub: RtpHub, handler: LineHandler, clock: Clock | None = None,
                 inactivity_ticks: int = DEFAULT_INACTIVITY_TICKS,
                 allow: Callable[[tuple[str, int]], bool] | None = None, transport: SipTransport | None = None) -> None:
        self.hub = hub
        self.handler = handler
        self.inactivity_ticks = inactivity_ticks
        self.transport = transport or SipTransport(host, port, clock)
        self.agent = UserAgent(host, port, self.transport.send, self.transport.timers, self, allow=allow)
        self.transport.on_message = self.agent.datagram
        if self.transport.tcp is not None:
            self.transport.tcp.on_broken = lambda head, reason, _peer: self.agent.refusal(head, reason)
            self.transport.tcp.in_use = self.agent.peers_in_use
            self.agent.connected = self.transport.tcp.connected
            self.transport.tcp.allow = allow
            self.transport.tcp.on_unreachable = self.agent.unreachable
        self.lines: dict[str, Line] = {}

    def start(self) -> None:
        """Bind and start the SIP thread."""
        self.transport.start()
        self.agent.port = self.transport.port

    def close(self) -> None:
        """Stop the SIP thread (calls are not hung up: the switchboard does that)."""
        self.transport.close()

    @property
    def address(self) -> tuple[str, int]:
        """Where SIP listens."""
        return self.transport.host, self.transport.port

    # -- the user agent's reports ----------------------------------------------------------------------------

    def incoming(self, call: SipCall) -> None:
        """A new INVITE: negotiate, make its media, ask the handler."""
        negotiated = None
        if call.remote_sdp:
            try:
                negotiated = negotiate(parse_sdp(call.remote_sdp))
            except NoCommonMediaError:
                self.agent.reject(call, 488)
                return
            except SdpError:
                self.agent.reject(call, 488)
                return
        try:
            session = RtpSession(self.hub, negotiated, self.inactivity_ticks)
        except BusyError as exc:  # no media process has room (``[sip] mediaProcesses``)
            log.warning("incoming call refused: %s", exc)
            self.agent.reject(call, 503)
            return
        line = Line(call, session, call.number, call.caller, True)
        call.owner = line
        session_id = random.getrandbits(31)
        if negotiated is not None:
            call.local_sdp = build_answer(negotiated, self.hub.host, session.local_port, session_id)
        else:
            call.local_sdp = build_offer(self.hub.host, session.local_port, session_id)
        try:
            decision = self.handler.incoming(line)
        except Exception:
            log.exception("the line handler failed on an incoming call")
            decision = "500"
        if decision == "answer":
            self.agent.ring(call)
            self.agent.answer(call, call.local_sdp)
        elif decision == "ring":
            self.agent.ring(call)
        else:
            session.close()
            self.agent.reject(call, int(decision) if decision.isdigit() else 500)

    def answer(self, line: Line) -> None:
        """Answer a ringing incoming line (any thread)."""
        self.transport.call_soon(lambda: self.agent.answer(line.call, line.call.local_sdp))

    def confirmed(self, call: SipCall) -> None:
        """ACK (incoming) or 2xx (outgoing): take the remote's SDP if it came now, tell the handler."""
        line: Line | None = call.owner
        if line is None:
            return
        if call.remote_sdp and (not call.incoming or not call.invite.body):
            try:
                line.session.update(negotiate(parse_sdp(call.remote_sdp)))
            except SdpError:
                log.warning("call %s: unusable SDP answer; hanging up", call.call_id)
                self.agent.hang_up(call)
                return
        self.handler.connected(line)

    def ended(self, call: SipCall, reason: str) -> None:
        """The SIP call is over."""
        line: Line | None = call.owner
        if line is not None:
            self.lines.pop(call.call_id, None)
            self.handler.ended(line, reason)

    def reoffer(self, call: SipCall, sdp: bytes) -> bytes:
        """A re-INVITE: hold, unhold or a new address; the answer keeps our address and port."""
        line: Line = call.owner
        port = line.session.local_port
        if not sdp:
            return build_offer(self.hub.host, port, random.getrandbits(31), 2)
        negotiated = negotiate(parse_sdp(sdp))
        line.session.update(negotiated)
        return build_answer(negotiated, self.hub.host, port, random.getrandbits(31), 2)

    def dtmf(self, call: SipCall, key: str, duration_ms: int) -> None:
        """A key by SIP INFO: rendered as its tone into the caller's audio (the detector decides it)."""
        line: Line | None = call.owner
        if line is not None:
            self.hub.post_key(line.session, key, ms_to_samples(max(duration_ms, 60)))

    def progress(self, call: SipCall, status: int) -> None:
        """An outgoing call's status."""
        line: Line | None = call.owner
        if line is not None:
            self.handler.status(line, status)

    # -- commands (any thread) -------------------------------------------------------------------------------

    def line(self, target: str, caller: str) -> Line:
        """A new outgoing line to ``target`` (a SIP URI) as ``caller``, with its media; not dialled yet."""
        session = RtpSession(self.hub, None, self.inactivity_ticks)
        return Line(None, session, target, caller, False)  # type: ignore[arg-type]

    def dial_line(self, line: Line, on_line: Callable[[Line], None] | None = None,
                  ring_timeout_s: float = 60.0) -> None:
        """Send ``line``'s INVITE (on the SIP thread); unanswered after ``ring_timeout_s`` it is cancelled."""
        offer = build_offer(self.hub.host, line.session.local_port, random.getrandbits(31))

        def send() -> None:
            call = self.agent.invite(line.number, line.caller, offer)
            call.owner = line
            line.call = call
            self.lines[call.call_id] = line
            self.agent.timers.after(ring_timeout_s, lambda: self._ring_timeout(call))
            if on_line is not None:
                on_line(line)

        self.transport.call_soon(send)

    def dial(self, target: str, caller: str, on_line: Callable[[Line], None] | None = None,
             ring_timeout_s: float = 60.0) -> Line:
        """Call ``target`` (a SIP URI); the line exists at once, its INVITE leaves on the SIP thread.

        Unanswered after ``ring_timeout_s`` seconds (default 60), the INVITE is cancelled (CANCEL, then 487).
        """
        line = self.line(target, caller)
        self.dial_line(line, on_line, ring_timeout_s)
        return line

    def _ring_timeout(self, call: SipCall) -> None:
        if call.state == "early":
            self.agent.hang_up(call, "timeout")

    def hang_up(self, line: Line) -> None:
        """Hang the line up (BYE, CANCEL or 603, whichever fits)."""
        self.transport.call_soon(lambda: line.call is not None and self.agent.hang_up(line.call))

    def transfer(self, line: Line, target: str, hang_up: bool = False) -> None:
        """REFER the far end to ``target``; ``hang_up``: then BYE once it answers (a blind transfer)."""
        def refer() -> None:
            call = line.call
            if call is not None:
                self.agent.refer(call, target, (lambda _status: self.agent.hang_up(call)) if hang_up else None)

        self.transport.call_soon(refer)
