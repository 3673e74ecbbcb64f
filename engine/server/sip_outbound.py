"""``outCall`` to a SIP phone and ``transfer`` by REFER: the outgoing half of the SIP glue (mixed in).

``called`` = ``sip:user@host:port`` (add ``;transport=tcp`` to dial over TCP), or ``sip:NAME`` (the softphone
registered as NAME), dials when the attempt starts; its final status becomes ``callstatrpt``
(:data:`ANS_CODES`); unanswered within ``timeout`` (default ``ringTimeoutS``) it is cancelled (ansCode 2), and
the application's ``disConnect`` while it rings cancels it too (:meth:`~engine.server.attempts.Attempts.cancel`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from engine.errors import EndpointError, EngineError
from engine.net.outgoing import address_of
from engine.net.phone import Line, PhoneService
from engine.net.sip_uri import SipParseError, parse_uri
from engine.server.endpoints import Endpoint, EndpointContext, OutCallSpec
from engine.server.sip_policy import is_address
from engine.wire.call_events import ANSWERED, BUSY, FAILED, NO_ANSWER, REJECTED, UNREACHABLE

log = logging.getLogger(__name__)
#: ``callstatrpt`` ``ansCode`` of an outgoing INVITE's final status (others ≥ 300: failed).
ANS_CODES = {200: ANSWERED, 486: BUSY, 600: BUSY, 408: NO_ANSWER, 480: NO_ANSWER, 487: NO_ANSWER,
             403: REJECTED, 488: REJECTED, 603: REJECTED, 404: UNREACHABLE, 410: UNREACHABLE,
             484: UNREACHABLE, 503: UNREACHABLE}
#: ``ended`` reasons of an unanswered outgoing line: cancelled at the ring timeout.
_NO_ANSWER_REASONS = ("cancel", "timeout", "408", "local")


class SipEndpoint(Endpoint):
    """An outgoing line's endpoint: :meth:`ring` dials when the attempt starts (``Engine.start_call``)."""

    dial: Callable[[float, Callable[[int], None]], None] = lambda _s, _outcome: None

    def ring(self, timeout_s: int, outcome: Callable[[int], None]) -> None:
        """Dial; ``outcome(ans_code)`` is called once (SIP thread): ``ANSWERED`` on 200, else the failure."""
        self.dial(timeout_s, outcome)


class OutboundCalls:
    """The glue's outgoing lines; the glue provides the attributes and helpers declared here."""

    engine: Any
    phone: PhoneService
    settings: Any
    _by_call: dict[str, Line]
    _endpoint: Callable[..., Endpoint]

    def status(self, line: Line, status: int) -> None:
        """An outgoing call's SIP status: the final one decides the attempt (``callstatrpt``)."""
        line.data["status"] = status
        if status >= 300:
            line.data["gone"] = True
        if status >= 200:
            self._decide(line, ANS_CODES.get(status, FAILED))

    def _decide(self, line: Line, ans_code: int) -> None:
        outcome = line.data.pop("outcome", None)  # once: the first final status or end wins
        if outcome is None:
            return
        try:
            outcome(ans_code)
        except EngineError as exc:  # answered, but no room for the call: the endpoint was discarded (BYE)
            log.warning("outgoing call to %s dropped: %s", line.number, exc)
            self.engine.not_connected(line.data["endpoint"].info, FAILED)

    def _outgoing_ended(self, line: Line, reason: str) -> None:
        ans_code = NO_ANSWER if reason in _NO_ANSWER_REASONS else ANS_CODES.get(
            int(reason) if reason.isdigit() else 0, FAILED)
        self._decide(line, ans_code)

    def referable(self, call_id: str, called: str) -> str | None:
        """The REFER target of a transfer of ``call_id`` to ``called`` (None: not a SIP call, or not ``sip:``)."""
        line = self._by_call.get(call_id)
        if line is None or not called.startswith("sip:"):
            return None
        return self._target(called.removeprefix("sip:"))

    def refer(self, call_id: str, target: str) -> None:
        """Make the engine's hang-up of ``call_id`` a REFER to ``target`` (media thread, before the hang-up)."""
        line = self._by_call.get(call_id)
        if line is not None:
            line.data["refer_to"] = target

    def _target(self, rest: str) -> str:
        """``sip:REST`` as a URI to send to: as given, or ``sip:NAME`` the contact registered as NAME."""
        target = "sip:" + rest
        try:
            uri = parse_uri(target)
        except SipParseError as exc:
            raise EndpointError("called", f"not a SIP URI ({exc.reason})") from None
        if not uri.user and not is_address(uri.host):  # sip:NUMBER: a softphone registered under it
            bindings = self.phone.agent.registrar.lookup(uri.host, self.phone.transport.timers.now)
            if not bindings:
                raise EndpointError("called", f"{rest[:40]!r} is not registered here")
            target = bindings[-1].contact
        if address_of(target).reliable and self.phone.transport.tcp is None:
            raise EndpointError("called", "SIP over TCP is off here ([sip] tcp = false)")
        return target

    def _out_call(self, rest: str, spec: OutCallSpec, context: EndpointContext) -> Endpoint:
        line = self.phone.line(self._target(rest), spec.caller or "ipcc")
        endpoint = self._endpoint(line, spec.app_id, uuid.uuid4().hex, SipEndpoint)
        line.data["endpoint"] = endpoint

        def dial(timeout_s: float, outcome: Callable[[int], None]) -> None:
            assert endpoint.info is not None
            self._by_call.pop(line.data["call_id"], None)
            line.data.update(call_id=endpoint.info.call_id, outcome=outcome)
            self._by_call[endpoint.info.call_id] = line
            self.phone.dial_line(line, ring_timeout_s=timeout_s or self.settings.ring_timeout_s)

        endpoint.dial = dial  # type: ignore[method-assign]
        return endpoint
