"""The SIP user agent: requests and responses in, transactions and dialogs, calls reported to a handler.

Pure of I/O: datagrams come in through :meth:`UserAgent.datagram` and go out through ``send(data, address)``;
time is the injected :class:`~engine.net.timers.Timers`. Served: INVITE (100, then the handler's 180/200 or
a rejection; the 2xx retransmitted until the ACK), ACK (an offerless INVITE's answer in it), BYE, CANCEL
(200, and 487 for the INVITE), OPTIONS, REGISTER (:class:`~engine.net.registrar.Registrar`), INFO
``application/dtmf-relay``, re-INVITE, NOTIFY; a request in an unknown dialog ``481``; an unknown method
``501``; a malformed request ``400`` when it can be answered, else dropped (both counted in ``counters``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from engine.net.dialog import Dialog, new_tag
from engine.net.digest import DigestAuth
from engine.net.outgoing import ALLOW, OutgoingCalls, address_of
from engine.net.registrar import Registrar, RegistrationError, contact_params
from engine.net.sdp import SdpError
from engine.net.sip_call import Address, CallHandler, SipCall
from engine.net.sip_message import (
    SipMessage,
    parse_name_addr,
    parse_or_partial,
    parse_params,
    parse_uri,
    response_to,
)
from engine.net.timers import Timers
from engine.net.transaction import T1, T2, Transaction

log = logging.getLogger(__name__)
KNOWN = set(ALLOW.replace(",", " ").split())
REASONS = {100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 202: "Accepted",
           400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 408: "Request Timeout", 415: "Unsupported Media Type",
           423: "Interval Too Brief", 481: "Call/Transaction Does Not Exist", 483: "Too Many Hops",
           486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 500: "Server Internal Error",
           501: "Not Implemented", 503: "Service Unavailable", 603: "Decline"}
MAX_CALLS = 100_000


class UserAgent(OutgoingCalls):
    """SIP on one listening address ``host:port``; ``send(data, address)`` writes a datagram."""

    def __init__(self, host: str, port: int, send: Callable[[bytes, Address], None], timers: Timers,
                 handler: CallHandler, registrar: Registrar | None = None,
                 allow: Callable[[Address], bool] | None = None, auth: DigestAuth | None = None) -> None:
        self.host = host
        self.port = port
        self._send = send
        self.timers = timers
        self.handler = handler
        self.registrar = registrar or Registrar()
        self.allow = allow
        #: When set, REGISTER and new INVITEs must carry digest credentials (401 with a challenge otherwise).
        self.auth = auth
        self.counters: Counter[str] = Counter()
        self.server_tx: dict[tuple[str, str], Transaction] = {}
        self.client_tx: dict[tuple[str, str], Transaction] = {}
        self.calls: dict[tuple[str, str], SipCall] = {}  # (Call-ID, local tag)
        self.pending: dict[str, SipCall] = {}  # INVITE branch → incoming call not yet answered
        self.invites: dict[str, SipCall] = {}  # INVITE branch → incoming call (kept 32 s after it ends)

    @property
    def sent_by(self) -> str:
        """Our Via sent-by."""
        return f"{self.host}:{self.port}"

    def contact(self, user: str = "ipcc") -> str:
        """Our Contact header value."""
        return f"<sip:{user}@{self.sent_by}>"

    def send(self, data: bytes, address: Address) -> None:
        """Write a datagram (errors logged and counted)."""
        try:
            self._send(data, address)
        except OSError as exc:
            self.counters["send_errors"] += 1
            log.warning("SIP send to %s failed: %s", address, exc)

    # -- input ----------------------------------------------------------------------------------------------

    def datagram(self, data: bytes, source: Address) -> None:
        """One datagram from ``source``; nothing raises out of here."""
        try:
            self._datagram(data, source)
        except Exception:
            self.counters["errors"] += 1
            log.exception("SIP datagram from %s failed", source)

    def _datagram(self, data: bytes, source: Address) -> None:
        if not data.strip():
            return  # a keep-alive (CRLF)
        if self.allow is not None and not self.allow(source):
            self.counters["refused_source"] += 1
            return
        message, error = parse_or_partial(data)
        if message is None:
            assert error is not None
            self.counters["malformed"] += 1
            if error.partial is not None and error.partial.method != "ACK":
                self.send(response_to(error.partial, 400, f"Bad Request ({error.reason[:60]})", new_tag())
                          .to_bytes(), source)
            return
        if message.is_request:
            self.counters[f"in_{message.method}"] += 1
            self._request(message, source)
        else:
            self._response(message)

    def _respond(self, tx: Transaction | None, request: SipMessage, source: Address, status: int,
                 to_tag: str = "", headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> SipMessage:
        response = response_to(request, status, REASONS.get(status, "Unknown"), to_tag, headers, body)
        if tx is not None:
            tx.respond(response)
        else:
            self.send(response.to_bytes(), source)
        return response

    def _server_tx(self, request: SipMessage, source: Address) -> Transaction:
        tx = Transaction(request, lambda data: self.send(data, source), self.timers, server=True,
                         on_terminated=lambda t: self.server_tx.pop(t.key, None))
        self.server_tx[tx.key] = tx
        return tx

    def _request(self, request: SipMessage, source: Address) -> None:
        existing = self.server_tx.get((request.branch, "INVITE" if request.method == "ACK" else request.method))
        if existing is not None:
            existing.receive_request(request)
            return
        if request.method == "ACK":
            self._ack(request)
            return
        max_forwards = request.get("max-forwards", "70")
        tx = self._server_tx(request, source)
        if not max_forwards.isdigit() or int(max_forwards) == 0:
            self._respond(tx, request, source, 483 if max_forwards == "0" else 400, new_tag())
            return
        method = request.method
        if self.auth is not None and (method == "REGISTER" or (method == "INVITE" and not
                                                               parse_name_addr(request.get("to")).tag)):
            if self.auth.check(request) is None:
                self.counters["unauthorised"] += 1
                self._respond(tx, request, source, 401, new_tag(), self.auth.challenges())
                return
        if method not in KNOWN:
            self._respond(tx, request, source, 501, new_tag(), [("allow", ALLOW)])
        elif method == "OPTIONS":
            self._respond(tx, request, source, 200, new_tag(), [("allow", ALLOW), ("accept", "application/sdp")])
        elif method == "REGISTER":
            self._register(tx, request, source)
        elif method == "CANCEL":
            self._cancel(tx, request, source)
        elif method == "INVITE" and not parse_name_addr(request.get("to")).tag:
            known = self.invites.get(request.branch)
            if known is None:
                self._invite(tx, request, source)
            elif known.final and known.state == "answered":  # the INVITE again after our 2xx: the 2xx again
                self.server_tx.pop(tx.key, None)
                self.send(known.final, source)
            else:
                self.server_tx.pop(tx.key, None)
        else:
            self._in_dialog(tx, request, source)

    def _dialog_call(self, request: SipMessage) -> SipCall | None:
        return self.calls.get((request.call_id, parse_name_addr(request.get("to")).tag))

    def _in_dialog(self, tx: Transaction, request: SipMessage, source: Address) -> None:
        call = self._dialog_call(request)
        if call is None or call.ended:
            self._respond(tx, request, source, 481)
            return
        number = request.cseq[0]
        if number <= call.dialog.remote_seq and request.method != "ACK":
            self._respond(tx, request, source, 500, headers=[("retry-after", "1")])
            return
        call.dialog.remote_seq = number
        method = request.method
        if method == "BYE":
            self._respond(tx, request, source, 200)
            self._end(call, "bye")
        elif method == "INVITE":
            try:
                answer = self.handler.reoffer(call, request.body)
            except SdpError:
                self._respond(tx, request, source, 488)
                return
            call.remote_sdp = request.body
            self._respond(tx, request, source, 200, headers=[("contact", call.dialog.contact),
                                                             ("content-type", "application/sdp")], body=answer)
        elif method == "INFO":
            self._info(tx, call, request, source)
        else:  # NOTIFY (of a REFER), REFER from the far end, others: accepted, nothing to do
            self._respond(tx, request, source, 200)

    def _info(self, tx: Transaction, call: SipCall, request: SipMessage, source: Address) -> None:
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
        self.handler.dtmf(call, key, min(int(duration), 5000))

    def _register(self, tx: Transaction, request: SipMessage, source: Address) -> None:
        try:
            bindings = self.registrar.register(request, self.timers.now)
        except RegistrationError as exc:
            headers = [("min-expires", "60")] if exc.status == 423 else []
            self._respond(tx, request, source, exc.status, new_tag(), headers)
            return
        except ValueError:
            self._respond(tx, request, source, 400, new_tag())
            return
        contacts = [("contact", contact_params(b, self.timers.now)) for b in bindings]
        self._respond(tx, request, source, 200, new_tag(), contacts)

    # -- incoming calls --------------------------------------------------------------------------------------

    def _invite(self, tx: Transaction, request: SipMessage, source: Address) -> None:
        if len(self.calls) >= MAX_CALLS:
            self._respond(tx, request, source, 503, new_tag())
            return
        tag = new_tag()
        dialog = Dialog.as_uas(request, tag, self.sent_by, self.contact())
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

    def _cancel(self, tx: Transaction, request: SipMessage, source: Address) -> None:
        call = self.pending.pop(request.branch, None)
        if call is None or call.state != "early" or call.transaction is None:
            self._respond(tx, request, source, 481)
            return
        self._respond(tx, request, source, 200)
        self._respond(call.transaction, call.invite, call.remote, 487, call.dialog.local_tag)
        self._end(call, "cancel")

    # -- ending ----------------------------------------------------------------------------------------------

    def _end(self, call: SipCall, reason: str, notify: bool = True) -> None:
        if call.ended:
            return
        call.state = "ended"
        call.end_reason = reason
        for timer in (call.retransmit, call.give_up):
            if timer is not None:
                timer.cancel()
        def forget() -> None:  # late retransmissions get 481 from now on
            self.calls.pop(call.dialog.key, None)
            self.invites.pop(call.invite.branch, None)

        self.timers.after(32.0, forget)
        if notify:
            self.handler.ended(call, reason)

    def hang_up(self, call: SipCall, reason: str = "local") -> None:
        """Hang up: BYE when answered, CANCEL for our unanswered INVITE, 603 for an unanswered incoming one."""
        if call.ended:
            return
        if call.state == "early":
            if call.incoming:
                self.reject(call, 603)
                self._end(call, reason)
            else:
                self._cancel_outgoing(call)
            return
        bye = call.dialog.request("BYE")
        self._client(bye, address_of(call.dialog.route_set[0].strip("<>").split(">")[0]) if call.dialog.route_set
                     else call.remote)
        self._end(call, reason)

    # -- outgoing ---------------------------------------------------------------------------------------------

    def _client(self, request: SipMessage, address: Address, on_response: Callable[[SipMessage], None] | None = None,
                on_timeout: Callable[[], None] | None = None) -> Transaction:
        tx = Transaction(request, lambda data: self.send(data, address), self.timers, server=False,
                         on_response=on_response, on_timeout=on_timeout,
                         on_terminated=lambda t: self.client_tx.pop(t.key, None))
        self.client_tx[tx.key] = tx
        return tx

    def _response(self, response: SipMessage) -> None:
        if response.get_all("via") and parse_params(response.get_all("via")[0].partition(";")[2]).get("branch"):
            _, method = response.cseq
            tx = self.client_tx.get((response.branch, method))
            if tx is not None:
                tx.receive_response(response)
                return
        if response.cseq[1] == "INVITE" and 200 <= response.status < 300:  # a retransmitted 2xx: ACK again
            call = self.calls.get((response.call_id, parse_name_addr(response.get("from")).tag))
            if call is not None and "ack" in call.extra:
                self.send(call.extra["ack"], call.remote)
        self.counters["stray_responses"] += 1
