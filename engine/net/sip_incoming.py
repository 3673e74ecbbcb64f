"""Incoming calls of the user agent: INVITE, ringing, answering (the 2xx until the ACK), rejecting, CANCEL.

A part of :class:`~engine.net.user_agent.UserAgent` (mixed in), kept apart to keep each module one subject.
"""

from __future__ import annotations

from engine.net.dialog import Dialog, new_tag
from engine.net.sip_call import SipCall
from engine.net.sip_message import ALLOW, SipMessage
from engine.net.sip_parts import AgentParts
from engine.net.sip_peer import Peer
from engine.net.sip_uri import parse_name_addr, parse_uri
from engine.net.transaction import T1, T2, Transaction

#: Calls (in and out) the user agent holds at most; a new INVITE past it gets ``503``.
MAX_CALLS = 100_000


class IncomingCalls(AgentParts):
    """The UAS side of calls (a part of the user agent)."""

    def _new_invite(self, tx: Transaction, request: SipMessage, source: Peer) -> None:
        """An INVITE outside any dialog: a new call, or our 2xx again for a retransmission after it."""
        known = self.invites.get(request.branch)
        if known is None:
            self._invite(tx, request, source)
            return
        self.server_tx.pop(tx.key, None)
        if known.final and known.state == "answered":  # the INVITE again after our 2xx: the 2xx again
            self.send(known.final, source)

    def _invite(self, tx: Transaction, request: SipMessage, source: Peer) -> None:
        if len(self.calls) >= MAX_CALLS:
            self._respond(tx, request, source, 503, new_tag())
            return
        tag = new_tag()
        dialog = Dialog.as_uas(request, tag, self.sent_by, self.contact("ipcc", source), source.via_token)
        to_uri = parse_uri(parse_name_addr(request.get("to")).uri)
        request_uri = parse_uri(request.uri)
        caller = parse_uri(parse_name_addr(request.get("from")).uri).user if "sip" in request.get("from") else ""
        call = SipCall(True, dialog, request, source, request_uri.user or to_uri.user, caller,
                       remote_sdp=request.body, transaction=tx)
        self.calls[dialog.key] = call
        self.pending[request.branch] = call
        self.invites[request.branch] = call
        self._respond(tx, request, source, 100)
        self.handler.incoming(call)

    def ring(self, call: SipCall) -> None:
        """Send 180 Ringing to an incoming call."""
        if call.state == "early" and call.transaction is not None:
            self._respond(call.transaction, call.invite, call.remote, 180, call.dialog.local_tag,
                          [("contact", call.dialog.contact)])

    def answer(self, call: SipCall, sdp: bytes) -> None:
        """Answer an incoming call with 200 and ``sdp``; retransmitted until the ACK (64·T1, then BYE)."""
        if call.state != "early" or call.transaction is None:
            return
        call.local_sdp = sdp
        response = self._respond(call.transaction, call.invite, call.remote, 200, call.dialog.local_tag,
                                 [("contact", call.dialog.contact), ("allow", ALLOW),
                                  ("content-type", "application/sdp")], sdp)
        self.pending.pop(call.invite.branch, None)
        call.state = "answered"
        call.final = response.to_bytes()
        call.extra["interval"] = T1
        call.retransmit = self.timers.after(T1, lambda: self._resend_2xx(call))
        call.give_up = self.timers.after(64 * T1, lambda: self._no_ack(call))

    def _resend_2xx(self, call: SipCall) -> None:
        """RFC 3261 §13.3.1.4: the UAS core retransmits its 2xx (over any transport) until the ACK."""
        if call.state != "answered":
            return
        self.send(call.final, call.remote)
        call.extra["interval"] = min(call.extra["interval"] * 2, T2)
        call.retransmit = self.timers.after(call.extra["interval"], lambda: self._resend_2xx(call))

    def _no_ack(self, call: SipCall) -> None:
        if call.state == "answered":
            self.counters["no_ack"] += 1
            self.hang_up(call, "timeout")

    def reject(self, call: SipCall, status: int) -> None:
        """Refuse an incoming call (486, 488, 603, ...)."""
        if call.state == "early" and call.transaction is not None:
            self._respond(call.transaction, call.invite, call.remote, status, call.dialog.local_tag)
            self.pending.pop(call.invite.branch, None)
            self._end(call, str(status), notify=False)

    def _ack(self, request: SipMessage) -> None:
        call = self._dialog_call(request)
        if call is None or call.state != "answered":
            return  # a retransmitted ACK, or one for a call already over
        for timer in (call.retransmit, call.give_up):
            if timer is not None:
                timer.cancel()
        call.state = "confirmed"
        if request.body:
            call.remote_sdp = request.body
        self.handler.confirmed(call)

    def _cancel(self, tx: Transaction, request: SipMessage, source: Peer) -> None:
        call = self.pending.pop(request.branch, None)
        if call is None or call.state != "early" or call.transaction is None:
            self._respond(tx, request, source, 481)
            return
        self._respond(tx, request, source, 200)
        self._respond(call.transaction, call.invite, call.remote, 487, call.dialog.local_tag)
        self._end(call, "cancel")
