"""Outgoing calls of the user agent: INVITE, the responses to it, ACK, CANCEL, REFER.

A part of :class:`~engine.net.user_agent.UserAgent` (mixed in), kept apart to keep each module one subject.
A target ``sip:...;transport=tcp`` is dialled over TCP (the Via, Contact and every later request of the dialog
then say so). Hanging up a call still ringing sends CANCEL, once a provisional response has come (RFC 3261
§9.1: before one, the CANCEL waits for it); the INVITE's 487 then ends its transaction.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.net.dialog import Dialog, new_tag
from engine.net.sip_call import SipCall
from engine.net.sip_message import ALLOW, SipMessage
from engine.net.sip_parts import AgentParts
from engine.net.sip_peer import TCP, UDP, Peer
from engine.net.sip_uri import parse_uri


def address_of(uri: str, default_port: int = 5060) -> Peer:
    """Where to send a request for ``uri`` (IP literal or ``localhost``; no DNS), over its ``transport``."""
    parsed = parse_uri(uri)
    host = "127.0.0.1" if parsed.host == "localhost" else parsed.host.strip("[]")
    transport = TCP if parsed.params.get("transport", "").lower() == TCP else UDP
    return Peer(host, parsed.port or default_port, transport)


class OutgoingCalls(AgentParts):
    """The UAC side of calls (a part of the user agent)."""

    def invite(self, target: str, caller: str, sdp: bytes, headers: list[tuple[str, str]] | None = None) -> SipCall:
        """Call ``target`` (a SIP URI) as ``caller`` (a user part) with our offer ``sdp``.

        A target registered here over a TCP connection that is still open is called over that connection.
        """
        uri = str(parse_uri(target))
        flow = self.registrar.flow(target, self.timers.now)
        peer = flow if flow is not None and self.connected(flow) else address_of(uri)
        local_uri = f"sip:{caller or 'ipcc'}@{self.sent_by}"
        dialog = Dialog(new_tag() + new_tag(), new_tag(), "", local_uri, uri, uri, self.sent_by,
                        local_seq=0, contact=self.contact(caller or "ipcc", peer), transport=peer.via_token)
        request = dialog.request("INVITE", sdp, "application/sdp", extra=[("allow", ALLOW), *(headers or [])])
        call = SipCall(False, dialog, request, peer, target, caller, local_sdp=sdp)
        self.calls[dialog.key] = call
        call.transaction = self._client(request, call.remote, lambda r: self._invite_response(call, r),
                                        lambda: self._invite_timeout(call))
        return call

    def _invite_response(self, call: SipCall, response: SipMessage) -> None:
        status = response.status
        if status < 200 and call.extra.setdefault("provisional", status) and call.extra.pop("cancel_due", False):
            self._send_cancel(call)  # hung up before any provisional: the CANCEL may leave now
        if call.ended and status < 300:
            if status >= 200:  # answered after we gave up: ACK and BYE it
                call.dialog.confirm_as_uac(response)
                self._send_ack(call)
                self._client(call.dialog.request("BYE"), call.remote)
            return
        if status < 200:
            self.handler.progress(call, status)
            return
        if status < 300:
            call.dialog.confirm_as_uac(response)
            call.remote_sdp = response.body
            call.state = "confirmed"
            self._send_ack(call)
            self.handler.progress(call, status)
            self.handler.confirmed(call)
            return
        self.handler.progress(call, status)
        self._end(call, str(status))

    def _send_ack(self, call: SipCall) -> None:
        ack = call.dialog.request("ACK", cseq=call.invite.cseq[0])
        call.extra["ack"] = ack.to_bytes()
        self.send(call.extra["ack"], call.remote)

    def _invite_timeout(self, call: SipCall) -> None:
        if not call.ended:
            self.handler.progress(call, 408)
            self._end(call, "408")

    def _cancel_outgoing(self, call: SipCall, reason: str) -> None:
        """Give up our ringing INVITE: CANCEL now, or at its first provisional response."""
        if "provisional" in call.extra:
            self._send_cancel(call)
        else:
            call.extra["cancel_due"] = True
        self._end(call, reason)

    def _send_cancel(self, call: SipCall) -> None:
        invite = call.invite
        headers = [(n, v) for n, v in invite.headers if n in ("via", "from", "to", "call-id", "route")]
        headers.insert(1, ("max-forwards", "70"))
        headers.append(("cseq", f"{invite.cseq[0]} CANCEL"))
        self._client(SipMessage(method="CANCEL", uri=invite.uri, headers=headers), call.remote)
        call.extra["cancelled"] = True

    def refer(self, call: SipCall, target: str, then: Callable[[int], None] | None = None) -> None:
        """Ask the far end to call ``target`` instead (REFER, RFC 3515).

        ``then(status)`` is called once with the REFER's final status (408 when none came; 481 when the call is
        not confirmed); a failure (≥ 300) is also reported as the call's ``progress``.
        """
        if call.state != "confirmed":
            if then is not None:
                then(481)
            return
        request = call.dialog.request("REFER", extra=[("refer-to", f"<{target}>"),
                                                      ("referred-by", f"<{call.dialog.local_uri}>")])

        def response(message: SipMessage) -> None:
            if message.status < 200:
                return
            if message.status >= 300:
                self.handler.progress(call, message.status)
            if then is not None:
                then(message.status)

        self._client(request, self._dialog_peer(call), response, (lambda: then(408)) if then is not None else None)
