"""Requests inside a dialog (BYE, re-INVITE, INFO, NOTIFY, REFER) and REGISTER, for the user agent.

A part of :class:`~engine.net.user_agent.UserAgent` (mixed in), kept apart to keep each module one subject.
"""

from __future__ import annotations

from engine.net.dialog import new_tag
from engine.net.registrar import RegistrationError, contact_params
from engine.net.sdp import SdpError
from engine.net.sip_call import SipCall
from engine.net.sip_message import SipMessage
from engine.net.sip_parts import AgentParts
from engine.net.sip_peer import Peer
from engine.net.transaction import Transaction

#: The longest key an INFO ``application/dtmf-relay`` may ask for (milliseconds).
MAX_INFO_KEY_MS = 5000


class DialogRequests(AgentParts):
    """In-dialog requests and REGISTER (a part of the user agent)."""

    def _in_dialog(self, tx: Transaction, request: SipMessage, source: Peer) -> None:
        call = self._dialog_call(request)
        if call is None or call.ended:
            self._respond(tx, request, source, 481)
            return
        number = request.cseq[0]
        if number <= call.dialog.remote_seq:
            self._respond(tx, request, source, 500, headers=[("retry-after", "1")])
            return
        call.dialog.remote_seq = number
        method = request.method
        if method == "BYE":
            self._respond(tx, request, source, 200)
            self._end(call, "bye")
        elif method == "INVITE":
            self._reinvite(tx, call, request, source)
        elif method == "INFO":
            self._info(tx, call, request, source)
        else:  # NOTIFY (of a REFER), REFER from the far end, others: accepted, nothing to do
            self._respond(tx, request, source, 200)

    def _reinvite(self, tx: Transaction, call: SipCall, request: SipMessage, source: Peer) -> None:
        try:
            answer = self.handler.reoffer(call, request.body)
        except SdpError:
            self._respond(tx, request, source, 488)
            return
        call.remote_sdp = request.body
        self._respond(tx, request, source, 200, headers=[("contact", call.dialog.contact),
                                                         ("content-type", "application/sdp")], body=answer)

    def _info(self, tx: Transaction, call: SipCall, request: SipMessage, source: Peer) -> None:
        kind = request.get("content-type").split(";")[0].strip().lower()
        if kind != "application/dtmf-relay":
            self._respond(tx, request, source, 415 if request.body else 200)
            return
        fields = {}
        for line in request.body.decode("utf-8", "replace").splitlines():
            name, _, value = line.partition("=")
            fields[name.strip().lower()] = value.strip()
        key = fields.get("signal", "").upper()
        duration = fields.get("duration", "250")
        if len(key) != 1 or key not in "0123456789*#ABCD" or not duration.isdigit():
            self._respond(tx, request, source, 400)
            return
        self._respond(tx, request, source, 200)
        self.handler.dtmf(call, key, min(int(duration), MAX_INFO_KEY_MS))

    def _register(self, tx: Transaction, request: SipMessage, source: Peer) -> None:
        try:
            bindings = self.registrar.register(request, self.timers.now, source)
        except RegistrationError as exc:
            headers = [("min-expires", "60")] if exc.status == 423 else []
            self._respond(tx, request, source, exc.status, new_tag(), headers)
            return
        except ValueError:
            self._respond(tx, request, source, 400, new_tag())
            return
        contacts = [("contact", contact_params(b, self.timers.now)) for b in bindings]
        self._respond(tx, request, source, 200, new_tag(), contacts)
