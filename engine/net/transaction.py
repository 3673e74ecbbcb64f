"""SIP transactions (RFC 3261 §17) with their timers A, B, D, E, F, G, H, I, J, K.

Four state machines share :class:`Transaction`: client INVITE (A retransmits, B times out, D absorbs
retransmitted finals), client non-INVITE (E, F, K), server INVITE (G retransmits a non-2xx final until the
ACK, H gives up, I absorbs ACKs), server non-INVITE (J absorbs retransmitted requests). A 2xx to an INVITE
ends the server transaction at once: the dialog layer retransmits it until the ACK (RFC 3261 §13.3.1.4).
Over a ``reliable`` transport (TCP) nothing is retransmitted (no A, E or G) and D, I, J and K are zero
(§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2); B, F and H still time out.
Times are seconds on :class:`~engine.net.timers.Timers`; ``send(bytes)`` puts a message on the wire.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from engine.net.sip_message import SipMessage
from engine.net.timers import Timer, Timers

T1 = 0.5
T2 = 4.0
T4 = 5.0


class State(Enum):
    """Transaction states (RFC 3261 figures 5-8)."""

    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Transaction:
    """One transaction; ``on_response(msg)`` (client) gets responses, ``on_timeout()`` a timer B/F/H expiry."""

    def __init__(self, request: SipMessage, send: Callable[[bytes], None], timers: Timers, server: bool,
                 on_response: Callable[[SipMessage], None] | None = None,
                 on_timeout: Callable[[], None] | None = None,
                 on_terminated: Callable[[Transaction], None] | None = None, reliable: bool = False) -> None:
        self.request = request
        self.reliable = reliable
        self.send = send
        self.timers = timers
        self.server = server
        self.invite = request.method == "INVITE"
        self.on_response = on_response
        self.on_timeout = on_timeout
        self.on_terminated = on_terminated
        self.last_response: SipMessage | None = None
        self._wire = b""
        self._retransmit: Timer | None = None
        self._timeout: Timer | None = None
        self._interval = T1
        self.retransmissions = 0
        if server:
            self.state = State.PROCEEDING if self.invite else State.TRYING
        else:
            self.state = State.CALLING if self.invite else State.TRYING
            self._wire = request.to_bytes()
            self.send(self._wire)
            if not reliable:
                self._retransmit = timers.after(T1, self._resend_request)  # timer A or E
            self._timeout = timers.after(64 * T1, self._expire)  # timer B or F

    @property
    def key(self) -> tuple[str, str]:
        """(branch, method) — ACK matches its INVITE's server transaction."""
        method = "INVITE" if self.request.method == "ACK" else self.request.method
        return self.request.branch, method

    # -- client -------------------------------------------------------------------------------------------

    def _resend_request(self) -> None:
        if self.state not in (State.CALLING, State.TRYING, State.PROCEEDING):
            return
        if self.invite and self.state is State.PROCEEDING:
            return  # a provisional response stopped timer A
        self.send(self._wire)
        self.retransmissions += 1
        self._interval = min(self._interval * 2, T2) if not self.invite else self._interval * 2
        if self.state is State.PROCEEDING:  # non-INVITE: timer E fires at T2 once a provisional came
            self._interval = T2
        self._retransmit = self.timers.after(self._interval, self._resend_request)

    def _expire(self) -> None:
        if self.state in (State.COMPLETED, State.CONFIRMED, State.TERMINATED):
            return
        if self.invite and self.state is State.PROCEEDING:
            return  # timer B only counts in Calling: a ringing phone may ring on (the TU's timeout ends it)
        self._terminate()
        if self.on_timeout is not None:
            self.on_timeout()

    def receive_response(self, response: SipMessage) -> None:
        """A response matched to this client transaction."""
        if self.state is State.TERMINATED:
            return
        if self.state is State.COMPLETED:
            if self.invite and response.status >= 300:
                self.send(self._ack_bytes(response))  # a retransmitted final: ACK it again
            return
        if response.status < 200:
            self.state = State.PROCEEDING
        elif self.invite and response.status < 300:
            self._terminate()  # the dialog layer ACKs 2xx (and their retransmissions)
        else:
            self.state = State.COMPLETED
            self._cancel_timers()
            if self.invite:
                self.send(self._ack_bytes(response))
                self._linger(32.0)  # timer D
            else:
                self._linger(T4)  # timer K
        if self.on_response is not None:
            self.on_response(response)

    def _ack_bytes(self, response: SipMessage) -> bytes:
        """The ACK of a non-2xx final (RFC 3261 §17.1.1.3): same branch, the response's To."""
        request = self.request
        headers = [("via", request.get_all("via")[0]), ("max-forwards", "70"), ("from", request.get("from")),
                   ("to", response.get("to")), ("call-id", request.call_id),
                   ("cseq", f"{request.cseq[0]} ACK")]
        headers += [("route", r) for r in request.get_all("route")]
        return SipMessage(method="ACK", uri=request.uri, headers=headers).to_bytes()

    # -- server -------------------------------------------------------------------------------------------

    def respond(self, response: SipMessage) -> None:
        """The TU's response, sent and kept for retransmitted requests."""
        if self.state in (State.COMPLETED, State.CONFIRMED, State.TERMINATED):
            return
        self.last_response = response
        self._wire = response.to_bytes()
        self.send(self._wire)
        if response.status < 200:
            return
        if self.invite and response.status < 300:
            self._terminate()
            return
        self.state = State.COMPLETED
        if self.invite:
            self._interval = T1
            if not self.reliable:
                self._retransmit = self.timers.after(T1, self._resend_response)  # timer G
            self._timeout = self.timers.after(64 * T1, self._expire_completed)  # timer H
        else:
            self._linger(64 * T1)  # timer J

    def _resend_response(self) -> None:
        if self.state is not State.COMPLETED:
            return
        self.send(self._wire)
        self.retransmissions += 1
        self._interval = min(self._interval * 2, T2)
        self._retransmit = self.timers.after(self._interval, self._resend_response)

    def _expire_completed(self) -> None:
        if self.state is State.COMPLETED:  # timer H: the ACK never came
            self._terminate()
            if self.on_timeout is not None:
                self.on_timeout()

    def receive_request(self, request: SipMessage) -> None:
        """A retransmitted request, or the ACK of a non-2xx final."""
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self._cancel_timers()
                self._linger(T4)  # timer I
            return
        if self._wire and self.state in (State.PROCEEDING, State.TRYING, State.COMPLETED):
            self.send(self._wire)

    # -- both ---------------------------------------------------------------------------------------------

    def _linger(self, unreliable_s: float) -> None:
        """Timer D, I, J or K: ``unreliable_s`` over UDP, zero (terminated now) over a reliable transport."""
        if self.reliable:
            self._terminate()
        else:
            self.timers.after(unreliable_s, self._terminate)

    def _cancel_timers(self) -> None:
        for timer in (self._retransmit, self._timeout):
            if timer is not None:
                timer.cancel()

    def _terminate(self) -> None:
        if self.state is State.TERMINATED:
            return
        self.state = State.TERMINATED
        self._cancel_timers()
        if self.on_terminated is not None:
            self.on_terminated(self)
