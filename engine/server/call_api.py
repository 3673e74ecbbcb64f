"""The rest of the call API: ``callNotifyV2``, ``transfer``, ``reply``, ``message``; ``playoverrpt`` for ``play``.

* ``callNotifyV2`` dials ``called`` as ``outCall`` does (the route table), plays ``voices`` in order, then
  hangs up (``calldisconnectrpt`` reason ``notified``). Answers ``callId``.
* ``transfer`` plays ``fileName`` (when given) as a request on the call — its ``multrpt`` comes first — then
  ends the call with reason ``transfer`` and dials ``called`` through the route table: a new call, whose
  ``callstatrpt`` names the first in ``origCallId``. The new leg's endpoint is made when the request is
  accepted (never on the media thread); it is dropped if the first call is hung up before the prompt ends.
  Answers ``callid`` (the first call) and ``newCallId``. A SIP call moved to a ``sip:`` target is instead
  REFERred (:attr:`CallApi.referrer`, set by the SIP glue): the phone makes the new call, ``newCallId`` is "".
* ``reply`` accepts (``ansCode`` 0) or rejects (1) an incoming call offered by :class:`Inbound`; there are
  none without an inbound endpoint (the SIP work adds them): ``108105``.
* ``message`` plays a prompt, then records the caller (the call's recording goes on) until ``key2Stop``,
  ``maxTime`` or the caller's silence (:mod:`engine.server.message`); ``messagerpt`` then gives the
  recording's ``fileName``, where the message lies in it (``startMs``, ``endMs``) and why it ended
  (``endReason``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from engine.admission import prepare
from engine.core.orders import MultOrders, PlayKind
from engine.core.reports import RequestReport, Result
from engine.errors import OK, UnknownCallError
from engine.format import seconds_to_samples
from engine.media.call import Call
from engine.server.endpoints import parse_out_call
from engine.server.http import add_post
from engine.server.message import Message
from engine.server.routes import Connection, connect
from engine.server.switchboard import RequestHook
from engine.server.upload import check_owner
from engine.wire.call_bodies import parse_message, parse_notify, parse_reply, parse_transfer, transfer_prompt
from engine.wire.call_events import REASON_NOTIFIED, REASON_TRANSFER, CallInfo, incoming_call_report
from engine.wire.call_events import play_over_report as play_over
from engine.wire.openapi import CallNotifyBody, MessageBody, ReplyBody, TransferBody
from engine.wire.request import response

if TYPE_CHECKING:
    from engine.server.app import Engine

log = logging.getLogger(__name__)


def play_over_hook(engine: Engine) -> Callable[[MultOrders], RequestHook]:
    """The hook (made per request) that sends ``playoverrpt`` after a ``/play`` request's ``multrpt``."""

    def make(request: MultOrders) -> RequestHook:
        data = request.orders[0].data

        def hook(call: Call, report: RequestReport) -> None:
            body = play_over(call.app_id, call.call_id, data, report.result.value, engine.wall_clock())
            engine.delivery.publish(call.app_id, call.call_id, body)

        return hook

    return make


def _hang_up_hook(engine: Engine, reason: str, then: Callable[[RequestReport], None] | None = None) -> RequestHook:
    def hook(call: Call, report: RequestReport) -> None:
        if report.result in (Result.HANGUP, Result.ERROR):
            if then is not None:
                then(report)
            return
        try:
            engine.board.hang_up(call.app_id, call.call_id, reason)
        except UnknownCallError:  # the application hung up first
            return
        if then is not None:
            then(report)

    return hook


def _check_files(engine: Engine, request: MultOrders, fields: list[str]) -> None:
    """The files of ``request`` are the application's and audio; errors name ``fields[i]`` (``108100``)."""
    for order, field in zip(request.orders, fields, strict=True):
        check_owner(request.app_id, order.source, field, order.kind)
        if order.kind is PlayKind.FILE:
            engine.library.load(order.source, field)


class Inbound:
    """Incoming calls waiting for the application's ``reply``: ``offer`` publishes ``incomingcall``.

    The one entry point for inbound calls: an inbound endpoint (the SIP glue, for an INVITE) reaches it as
    ``engine.call_api.inbound`` (the :class:`CallApi` that :func:`register` puts on the engine).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[str, Callable[[bool], None]]] = {}

    def offer(self, info: CallInfo, decide: Callable[[bool], None]) -> None:
        """Offer an incoming call to ``info.app_id``; ``decide(accept)`` is called once with its ``reply``.

        What a SIP glue calls for an INVITE, from any thread (no I/O here beyond publishing the event):

        1. make ``info`` a :class:`~engine.wire.call_events.CallInfo` with ``direction="in"``, the
           application that owns the called number, a new call id (``Engine.new_call_id``), ``caller`` /
           ``called`` from the INVITE and ``started`` from ``engine.wall_clock()``;
        2. ``offer(info, decide)``: ``incomingcall`` goes to the application (logged and retried like every
           event) and the call waits for ``POST /ipcc/call/reply`` with its ``callId``;
        3. in ``decide(True)``: answer the INVITE and make the call live with
           ``engine.attempts.connect(info, endpoint)`` (an :class:`~engine.server.endpoints.Endpoint`: the
           caller's RTP audio and where the call's audio goes) — ``callstatrpt`` (``dir`` "in") follows and
           the call plays requests like any other; in ``decide(False)``: reject the INVITE (nothing is sent).

        ``decide`` runs on the thread answering ``reply`` and must not block; a second ``reply`` answers
        ``108105``.
        """
        with self._lock:
            self._waiting[info.call_id] = (info.app_id, decide)
        body = incoming_call_report(info, self.engine.wall_clock())
        self.engine.delivery.publish(info.app_id, info.call_id, body)

    def withdraw(self, call_id: str) -> bool:
        """Stop waiting for the reply of ``call_id`` (the caller hung up first); False when it was not waiting."""
        with self._lock:
            return self._waiting.pop(call_id, None) is not None

    def reply(self, app_id: str, call_id: str, accept: bool) -> None:
        """Hand the application's answer to the call's endpoint; ``108105`` when no such call waits."""
        with self._lock:
            waiting = self._waiting.get(call_id)
            if waiting is None or waiting[0] != app_id:
                raise UnknownCallError(f"callId: {call_id[:64]!r} is no incoming call waiting for a reply")
            del self._waiting[call_id]
        waiting[1](accept)


class CallApi:
    """The actions of the module docstring (the body's text in, the answer out)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.inbound = Inbound(engine)
        #: Moves calls whose endpoint can be told to call elsewhere (SIP REFER; set by the SIP glue):
        #: ``referable(call_id, called)`` → the target or None (``EndpointError`` for a bad one), ``refer(...)``.
        self.referrer: Any = None

    def notify(self, body: str) -> dict[str, Any]:
        """``callNotifyV2``: dial, play ``voices``, hang up."""
        engine = self.engine
        fields = engine.decode(body)
        spec = parse_out_call(fields)
        application = engine.config.application(spec.app_id)
        request = parse_notify(fields, spec.app_id, "")
        _check_files(engine, request, [f"voices[{i}].voice" for i in range(len(request.orders))])
        program = prepare(request, engine.library, engine.speaker, application.voice)
        call_id = engine.new_call_id()
        engine.start_call(spec, connect(spec, call_id, engine.config, engine.endpoints), call_id)
        if engine.board.is_live(call_id):
            try:
                engine.board.submit(spec.app_id, call_id, program, _hang_up_hook(engine, REASON_NOTIFIED))
            except UnknownCallError:
                pass  # the call ended before its voices were queued; its events say so
        return response(OK, "ok", spec.app_id, call_id)

    def transfer(self, body: str) -> dict[str, Any]:
        """``transfer``: play ``fileName``, end the call (reason ``transfer``), dial ``called``."""
        engine = self.engine
        fields = engine.decode(body)
        transfer = parse_transfer(fields)
        engine.config.application(transfer.app_id)
        engine.board.check_call(transfer.app_id, transfer.call_id)
        old = engine.board.info(transfer.call_id)
        spec = parse_out_call({"appId": transfer.app_id, "called": transfer.called,
                               "caller": old.called if old is not None else "", "data": transfer.data})
        program = None
        if transfer.file_name:
            request = transfer_prompt(transfer)
            _check_files(engine, request, ["fileName"])
            voice = engine.config.application(transfer.app_id).voice
            program = prepare(request, engine.library, engine.speaker, voice)
        referrer = self.referrer  # sip: the phone itself is moved (REFER), no new leg is dialled
        refer_to = referrer.referable(transfer.call_id, transfer.called) if referrer is not None else None
        new_id = "" if refer_to else engine.new_call_id()
        connection = Connection(transfer.called, None) if refer_to else connect(spec, new_id, engine.config,
                                                                                 engine.endpoints)

        def next_leg(report: RequestReport) -> None:
            if report.result in (Result.HANGUP, Result.ERROR):
                if connection.endpoint is not None:
                    connection.endpoint.discard()
                return
            if refer_to:
                referrer.refer(transfer.call_id, refer_to)  # before the hang-up is applied (next tick)
                return
            engine.start_call(spec, connection, new_id, transferred_from=transfer.call_id)

        try:
            if program is not None:
                engine.board.submit(transfer.app_id, transfer.call_id, program,
                                    _hang_up_hook(engine, REASON_TRANSFER, next_leg))
            else:
                if refer_to:
                    next_leg(RequestReport(Result.COMPLETE, None, 0))
                engine.board.hang_up(transfer.app_id, transfer.call_id, REASON_TRANSFER)
        except BaseException:
            if connection.endpoint is not None:
                connection.endpoint.discard()
            raise
        if program is None and not refer_to:
            next_leg(RequestReport(Result.COMPLETE, None, 0))
        return response(OK, "ok", transfer.app_id, transfer.call_id, newCallId=new_id)

    def reply(self, body: str) -> dict[str, Any]:
        """``reply``: accept or reject an incoming call."""
        fields = self.engine.decode(body)
        app_id, call_id, accept = parse_reply(fields)
        self.engine.config.application(app_id)
        self.inbound.reply(app_id, call_id, accept)
        return response(OK, "ok", app_id, call_id)

    def message(self, body: str) -> dict[str, Any]:
        """``message``: play a prompt, record the caller until ``key2Stop``, ``maxTime`` or silence, report it."""
        engine = self.engine
        fields = engine.decode(body)
        request = parse_message(fields)
        application = engine.config.application(request.app_id)
        engine.board.check_call(request.app_id, request.call_id)
        _check_files(engine, request, ["voiceStr"])
        program = prepare(request, engine.library, engine.speaker, application.voice)
        message = Message(program, engine.board.info(request.call_id), request.orders[0].data,
                          seconds_to_samples(application.silence_s), application.silence_dbm0)

        def report_message(call: Call, report: RequestReport) -> None:
            engine.delivery.publish(call.app_id, call.call_id, message.report(call, report, engine.wall_clock()))

        engine.board.submit(request.app_id, request.call_id, program, report_message,
                            watch=message if message.silence is not None else None)
        return response(OK, "ok", request.app_id, request.call_id)


def register(app: FastAPI, engine: Engine) -> None:
    """``callNotifyV2``, ``transfer``, ``reply``, ``message``."""
    api = engine.call_api = CallApi(engine)
    add_post(app, engine, "/ipcc/call/callNotifyV2", CallNotifyBody, api.notify, "Call a number, play voices, hang up")
    add_post(app, engine, "/ipcc/call/transfer", TransferBody, api.transfer, "Play a prompt, move the call")
    add_post(app, engine, "/ipcc/call/reply", ReplyBody, api.reply, "Accept or reject an incoming call", inline=True)
    add_post(app, engine, "/ipcc/call/message", MessageBody, api.message, "Voicemail: prompt, record, report")
