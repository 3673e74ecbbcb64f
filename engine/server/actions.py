"""The server's parts wired together (:class:`Engine`) and its actions: a body's text in, the contract's answer out.

Checking and preparing (speech synthesis, file decoding) runs on a small thread pool, never on the event loop;
the prepared request is then handed to the media thread by :class:`~engine.server.switchboard.Switchboard`. The
fast path (``*_cached``) checks and queues on the event loop a ``multOrders``/``play`` whose orders are all
speech already in the speaker's memory cache; a file order or a cache miss gives up (None) and the pool does
the whole request again. An unexpected exception answers ``108104`` and is logged with its traceback.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.admission import check_request, prepare
from engine.audio.library import VoiceLibrary
from engine.core.orders import MultOrders, PlayKind
from engine.core.timeline import Program
from engine.errors import INTERNAL, OK, EngineError, UnknownCallError
from engine.media.pacer import Clock
from engine.server import call_api
from engine.server.attempts import Attempts
from engine.server.delivery import Delivery
from engine.server.endpoints import EndpointContext, OutCallSpec, parse_out_call
from engine.server.guard import Guard
from engine.server.http import Action
from engine.server.routes import Connection, connect
from engine.server.settings import ServerSettings, delivery_concurrency
from engine.server.switchboard import RequestHook, Switchboard
from engine.server.upload import check_owner, owned
from engine.tts.synthesizer import SpeechSource
from engine.wire.body import Fields
from engine.wire.call_events import CallInfo
from engine.wire.request import (
    UNKNOWN_FIELDS,
    decode_body,
    error_response,
    ids_of,
    parse_mult_orders,
    parse_play,
    read_ids,
    response,
)

log = logging.getLogger("engine.server.app")  # the server's log, as before the split
#: Makes a request's hook once the request is parsed (``playoverrpt`` needs the order's ``data``).
HookFactory = Callable[[MultOrders], RequestHook]


class _NeedsPoolError(Exception):
    """The request cannot be answered without blocking (it plays a file): the fast path gives it up."""


class Engine:
    """The server's parts, wired: voice library, speaker, delivery, switchboard (with its media thread)."""

    def __init__(self, settings: ServerSettings, speaker: SpeechSource | None = None, clock: Clock | None = None,
                 wall_clock: Callable[[], datetime] = datetime.now) -> None:
        self.settings = settings
        self.config = settings.config
        limits = self.config.limits
        self.max_body_bytes = settings.max_body_bytes or limits.body_bytes
        self.max_upload_bytes = settings.max_upload_bytes or limits.upload_bytes
        self.json_limits = self.config.json_limits
        self.wall_clock = wall_clock
        self.library = VoiceLibrary(settings.voices, max_file_seconds=limits.file_seconds,
                                    max_file_bytes=limits.file_bytes, cache_bytes=limits.library_cache_bytes)
        if speaker is None:
            from engine.tts.synthesizer import synthesizer

            speaker = synthesizer(settings.cache or self.config.cache_dir, limits.speech_disk_bytes,
                                  memory_bytes=limits.speech_memory_bytes)
        self.speaker = speaker
        callbacks = {app_id: app.callback_url for app_id, app in self.config.applications.items()}
        self.delivery = Delivery(settings.state_dir, callbacks, settings.retry, settings.fsync,
                                 concurrency=delivery_concurrency(self.config, settings.delivery_concurrency),
                                 wall_clock=wall_clock)
        self.board = Switchboard(self.config, self.delivery.publish, clock, wall_clock,
                                 settings.max_calls or limits.calls, settings.guard, ledger=self.delivery)
        self.guard = Guard(settings.guard, settings.auth, self.board, self.delivery)
        self.endpoints = EndpointContext(Path(settings.recordings), self.library)
        self.pool = ThreadPoolExecutor(settings.prepare_workers, thread_name_prefix="ipcc-prepare")
        self.attempts = Attempts(self.board, self.delivery.publish, wall_clock)

    def start(self) -> None:
        """Start delivering events and playing calls."""
        self.delivery.start()
        self.board.start()
        self.guard.start()

    def close(self) -> None:
        """Hang up every call, end every attempt still ringing, deliver what can be delivered, stop.

        An attempt still ringing (a "no answer" route) gets its ``callstatrpt`` (no answer), ``calldisconnectrpt``
        (reason ``shutdown``) and ``callbillrpt`` before the delivery stops, so nothing is lost.
        """
        self.guard.close()
        self.board.close()
        if self.board.workers is not None:  # after the board: the calls on workers have ended
            self.board.workers.close()
        self.attempts.close()
        self.delivery.close()
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def run_on_pool(self, action: Action, body: str) -> dict[str, Any] | None:
        """:meth:`answer` on the preparing pool (never on the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, self.answer, action, body)

    def decode(self, body: str) -> Fields:
        """A body's fields, within the configuration's JSON limits."""
        return decode_body(body, self.json_limits)

    # -- actions: the body's text in, the answer out (run on the pool) -------------------------------------

    def answer(self, action: Action, body: str) -> dict[str, Any] | None:
        """Run ``action``; an :class:`EngineError` becomes its code, anything else ``108104`` (logged)."""
        try:
            return action(body)
        except EngineError as exc:
            return error_response(exc, ids_of(body), body)
        except Exception as exc:
            log.exception("internal failure on %s", getattr(action, "__name__", action))
            ids = ids_of(body)
            return response(INTERNAL, f"internal failure: {type(exc).__name__}", ids["appId"], ids["callId"])

    def _orders(self, body: str, parse: Callable[[Mapping[str, Any]], MultOrders],
                hook: HookFactory | None = None) -> dict[str, Any]:
        request, application = check_request(self.decode(body), self.config, self.library, owned(parse),
                                             self.board.check_call)
        program = prepare(request, self.library, self.speaker, application.voice)  # in a slot of the app: http.py
        self.board.submit(request.app_id, request.call_id, program, hook(request) if hook else None, guarded=True)
        return response(OK, "ok", request.app_id, request.call_id)

    def _cached_orders(self, body: str, parse: Callable[[Mapping[str, Any]], MultOrders],
                       hook: HookFactory | None = None) -> dict[str, Any] | None:
        """The fast path: check and queue a request whose orders are all cached speech.

        Returns None (nothing queued) when it needs the pool. Checks and refusals are those of :meth:`_orders`, in the
        same order.
        """
        cached = getattr(self.speaker, "cached", None)
        if cached is None:
            return None

        def speech_only(fields: Mapping[str, Any]) -> MultOrders:
            request = parse(fields)
            if any(order.kind is PlayKind.FILE for order in request.orders):
                raise _NeedsPoolError  # before check_files, which reads and decodes files
            return request

        try:
            request, application = check_request(self.decode(body), self.config, self.library, speech_only,
                                                 self.board.check_call)
        except _NeedsPoolError:
            return None
        prompts = []
        for order in request.orders:
            samples = cached(order.source, application.voice)
            if samples is None:
                return None
            prompts.append(samples)
        self.board.submit(request.app_id, request.call_id, Program(request, tuple(prompts)),
                          hook(request) if hook else None, guarded=True)
        return response(OK, "ok", request.app_id, request.call_id)

    def mult_orders(self, body: str) -> dict[str, Any]:
        """``multOrders``: check, prepare, queue."""
        return self._orders(body, parse_mult_orders)

    def mult_orders_cached(self, body: str) -> dict[str, Any] | None:
        """``multOrders`` on the fast path (:meth:`_cached_orders`)."""
        return self._cached_orders(body, parse_mult_orders)

    def play(self, body: str) -> dict[str, Any]:
        """``play``: a one-order multOrders; ``playoverrpt`` after its ``multrpt``."""
        return self._orders(body, parse_play, call_api.play_over_hook(self))

    def play_cached(self, body: str) -> dict[str, Any] | None:
        """``play`` on the fast path (:meth:`_cached_orders`)."""
        return self._cached_orders(body, parse_play, call_api.play_over_hook(self))

    def out_call(self, body: str) -> dict[str, Any]:
        """``outCall``: a new call to ``called``: a phone number (the route table) or an endpoint's name."""
        fields = self.decode(body)
        if app_id := ids_of(fields)["appId"]:
            self.config.application(app_id)  # 108101 before the other fields, as multOrders does
        spec = parse_out_call(fields)
        self.config.application(spec.app_id)
        if spec.caller_wav:
            check_owner(spec.app_id, spec.caller_wav, "callerWav")
        call_id = self.new_call_id()
        self.start_call(spec, connect(spec, call_id, self.config, self.endpoints), call_id)
        return response(OK, "ok", spec.app_id, call_id)

    @staticmethod
    def new_call_id() -> str:
        """A new call id (32 hex digits)."""
        return uuid.uuid4().hex

    def start_call(self, spec: OutCallSpec, connection: Connection, call_id: str, transferred_from: str = "") -> None:
        """Start the call attempt ``connection`` describes (:meth:`Attempts.start`; the media thread may call it)."""
        self.attempts.start(spec, connection, call_id, transferred_from)

    def not_connected(self, info: CallInfo, ans_code: int) -> None:
        """Publish a call attempt's failure (:meth:`Attempts.not_connected`: the SIP glue's outcomes)."""
        self.attempts.not_connected(info, ans_code)

    def _call_command(self, body: str, command: Callable[[str, str], None]) -> dict[str, Any]:
        fields = self.decode(body)
        app_id, call_id = read_ids(fields)
        self.config.application(app_id)
        UNKNOWN_FIELDS.note(app_id, getattr(command, "__name__", "call"), fields, ("appId", "callId"))
        command(app_id, call_id)
        return response(OK, "ok", app_id, call_id)

    def stop_play(self, body: str) -> dict[str, Any]:
        """``stoPlay``."""
        return self._call_command(body, self.board.stop_play)

    def disconnect(self, body: str) -> dict[str, Any]:
        """``disConnect``: a live call is hung up; an outgoing call still ringing is cancelled."""
        return self._call_command(body, self.hang_up)

    def hang_up(self, app_id: str, call_id: str) -> None:
        """Hang ``call_id`` up, or cancel it while its phone rings (``108105`` when it is neither)."""
        try:
            self.board.hang_up(app_id, call_id)
        except UnknownCallError:
            if not self.attempts.cancel(app_id, call_id):
                raise
