"""The HTTP API: FastAPI over the switchboard (live calls), the media thread and the event delivery.

Endpoints (all POST bodies JSON, all answers HTTP 200 with the contract's JSON, malformed JSON, unknown paths
and wrong methods included: :mod:`engine.server.http`): ``/ipcc/call/multOrders``, ``/ipcc/call/play``,
``/ipcc/call/outCall``, ``/ipcc/call/stoPlay``, ``/ipcc/call/disConnect`` (here), the rest of the call API
(:mod:`engine.server.call_api`), the upload (:mod:`engine.server.upload`), ``/docs`` served offline
(:mod:`engine.server.docs`); ``GET /ipcc/events?callId=`` (a call's events) and ``GET /ipcc/status``. Each
module registers its routes with a ``register(app, engine)`` function; :data:`ROUTE_MODULES` lists them.

A body is read as a stream and refused (``108100``) as soon as it exceeds ``max_body_bytes`` (1 MiB) — by its
``Content-Length`` before reading, else while counting — so a huge body is never held whole. Checking and
preparing (speech synthesis, file decoding) runs on a small thread pool, never on the event loop; the
prepared request is then handed to the media thread by :class:`~engine.server.switchboard.Switchboard`. The one
exception is the fast path: a ``multOrders``/``play`` whose orders are all speech already in the speaker's
memory cache (``speaker.cached``) is checked and queued on the event loop, since nothing in it can block
(about 50 µs of CPU, measured, against a thread hop per request); a file order or a cache miss goes to the
pool, which then does the whole request again. An unexpected exception answers ``108104`` and is logged
with its traceback; the server keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from engine.admission import check_request, prepare
from engine.audio.library import DEFAULT_ROOT, VoiceLibrary
from engine.config import Config, default_config
from engine.core.orders import MultOrders, PlayKind
from engine.core.timeline import Program
from engine.errors import INTERNAL, OK, UNKNOWN_CALL, EngineError
from engine.format import seconds_to_samples
from engine.media.pacer import Clock
from engine.server import call_api, docs, upload
from engine.server.auth import AuthSettings
from engine.server.delivery import DEFAULT_CONCURRENCY, Delivery, RetryPolicy
from engine.server.endpoints import EndpointContext, OutCallSpec, parse_out_call
from engine.server.guard import Guard
from engine.server.http import Action, add_post, install_error_answers
from engine.server.limits import GuardSettings
from engine.server.metrics import CONTENT_TYPE, exposition, registry_for
from engine.server.routes import Connection, connect
from engine.server.switchboard import DEFAULT_MAX_CALLS, RequestHook, Switchboard
from engine.server.upload import MAX_UPLOAD_BYTES, check_owner, owned
from engine.tts.synthesizer import SpeechSource
from engine.wire.body import Fields
from engine.wire.call_events import ANSWERED, FAILED, NO_ANSWER, REASON_NOT_CONNECTED, CallInfo
from engine.wire.call_events import call_bill_report as bill
from engine.wire.call_events import call_disconnect_report as disconnect
from engine.wire.call_events import call_stat_report as stat
from engine.wire.openapi import CallBody, EventsResponse, MultOrdersBody, OutCallBody, PlayBody, StatusResponse
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

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1 << 20
#: Seconds a phone rings before a "no answer" route gives up, when ``outCall`` gives no ``timeout``.
DEFAULT_RING_S = 30
#: Makes a request's hook once the request is parsed (``playoverrpt`` needs the order's ``data``).
HookFactory = Callable[[MultOrders], RequestHook]


class _NeedsPoolError(Exception):
    """The request cannot be answered without blocking (it plays a file): the fast path gives it up."""


@dataclass
class ServerSettings:
    """Everything ``serve`` is configured with.

    Paths default to the current folder's ``recordings/`` and ``state/`` (the event log). ``prepare_workers``: threads
    checking and preparing requests. ``guard``: per-application limits, call timeouts, admission and HTTP
    timeouts; ``auth``: per-application credentials (none by default).
    """

    config: Config = field(default_factory=default_config)
    voices: Path = DEFAULT_ROOT
    recordings: Path = Path("recordings")
    state_dir: Path = Path("state")
    cache: Path | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_calls: int = DEFAULT_MAX_CALLS
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    fsync: bool = False
    delivery_concurrency: int | dict[str, int] = DEFAULT_CONCURRENCY  # events in flight per application
    prepare_workers: int = 4
    guard: GuardSettings = field(default_factory=GuardSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)


class Engine:
    """The server's parts, wired: voice library, speaker, delivery, switchboard (with its media thread)."""

    def __init__(self, settings: ServerSettings, speaker: SpeechSource | None = None, clock: Clock | None = None,
                 wall_clock: Callable[[], datetime] = datetime.now) -> None:
        self.settings = settings
        self.config = settings.config
        self.wall_clock = wall_clock
        self.library = VoiceLibrary(settings.voices)
        if speaker is None:
            from engine.tts.synthesizer import synthesizer

            speaker = synthesizer(settings.cache)
        self.speaker = speaker
        callbacks = {app_id: app.callback_url for app_id, app in self.config.applications.items()}
        self.delivery = Delivery(settings.state_dir, callbacks, settings.retry, settings.fsync,
                                 concurrency=settings.delivery_concurrency, wall_clock=wall_clock)
        self.board = Switchboard(self.config, self.delivery.publish, clock, wall_clock, settings.max_calls,
                                 settings.guard, ledger=self.delivery)
        self.guard = Guard(settings.guard, settings.auth, self.board, self.delivery)
        self.endpoints = EndpointContext(Path(settings.recordings), self.library)
        self.pool = ThreadPoolExecutor(settings.prepare_workers, thread_name_prefix="ipcc-prepare")

    def start(self) -> None:
        """Start delivering events and playing calls."""
        self.delivery.start()
        self.board.start()
        self.guard.start()

    def close(self) -> None:
        """Hang up every call, stop the media thread, deliver what can be delivered, stop."""
        self.guard.close()
        self.board.close()
        self.delivery.close()
        self.pool.shutdown(wait=False, cancel_futures=True)

    @property
    def max_body_bytes(self) -> int:
        """Bodies over this many bytes are refused unread."""
        return self.settings.max_body_bytes

    async def run_on_pool(self, action: Action, body: str) -> dict[str, Any] | None:
        """:meth:`answer` on the preparing pool (never on the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, self.answer, action, body)

    def decode(self, body: str) -> Fields:
        """A body's fields, within the configuration's JSON limits."""
        return decode_body(body, self.config.json_limits)

    # -- actions: the body's text in, the answer out (run on the pool) -------------------------------------

    def answer(self, action: Action, body: str) -> dict[str, Any] | None:
        """Run ``action``; an :class:`EngineError` becomes its code, anything else ``108104`` (logged)."""
        try:
            return action(body)
        except EngineError as exc:
            return error_response(exc, ids_of(body))
        except Exception as exc:
            log.exception("internal failure on %s", getattr(action, "__name__", action))
            ids = ids_of(body)
            return response(INTERNAL, f"internal failure: {type(exc).__name__}", ids["appId"], ids["callId"])

    def _orders(self, body: str, parse: Callable[[Mapping[str, Any]], MultOrders],
                hook: HookFactory | None = None) -> dict[str, Any]:
        request, application = check_request(self.decode(body), self.config, self.library, owned(parse),
                                             self.board.check_call)
        with self.guard.preparing(request.app_id):  # bounded per application: one tenant cannot take the pool
            program = prepare(request, self.library, self.speaker, application.voice)
        self.board.submit(request.app_id, request.call_id, program, hook(request) if hook else None)
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
                          hook(request) if hook else None)
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
        """Start the call attempt ``connection`` describes (thread-safe, no I/O: the media thread may call it).

        An answered attempt becomes a live call (its events come from the switchboard); a route's failing
        outcome publishes ``callstatrpt`` with its ``ansCode``, then ``calldisconnectrpt`` and ``callbillrpt``
        (the attempt was started: ``000000``, as the platform answers): at once, or for no answer once the
        phone has rung ``timeout`` seconds of media time (default :data:`DEFAULT_RING_S`).
        """
        info = CallInfo(spec.app_id, call_id, spec.caller, connection.called, self.wall_clock(), data=spec.data,
                        transferred_from=transferred_from)
        endpoint = connection.endpoint
        if endpoint is None and connection.ans_code == NO_ANSWER:
            ring_s = spec.timeout_s or DEFAULT_RING_S
            self.board.after(seconds_to_samples(ring_s), lambda: self.not_connected(info, NO_ANSWER))
            return
        if endpoint is None:
            self.not_connected(info, connection.ans_code)
            return
        info.recording = endpoint.recording
        endpoint.info = info
        ring = getattr(endpoint, "ring", None)  # sip: a phone that answers later (engine.server.sip_glue)
        if ring is not None:
            ring(spec.timeout_s, lambda ans_code: self._answered(spec.app_id, endpoint, call_id, ans_code))
            return
        self._answered(spec.app_id, endpoint, call_id)

    def _answered(self, app_id: str, endpoint: Any, call_id: str, ans_code: int = ANSWERED) -> None:
        """The attempt's outcome: answered, a live call on ``endpoint``; else its events (any thread)."""
        if ans_code != ANSWERED:
            endpoint.discard()
            self.not_connected(endpoint.info, ans_code)
            return
        try:
            self.board.create(app_id, endpoint, call_id)
        except BaseException:
            endpoint.discard()
            raise

    def not_connected(self, info: CallInfo, ans_code: int = FAILED) -> None:
        """Publish a call attempt's failure: ``callstatrpt`` ``ans_code``, ``calldisconnectrpt``, ``callbillrpt``."""
        moment = self.wall_clock()
        for body in (stat(info, ans_code, moment), disconnect(info, REASON_NOT_CONNECTED, 0, moment),
                     bill(info, 0, moment)):
            self.delivery.publish(info.app_id, info.call_id, body)

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
        """``disConnect``."""
        return self._call_command(body, self.board.hang_up)


def create_app(settings: ServerSettings | None = None, *, speaker: SpeechSource | None = None,
               clock: Clock | None = None, wall_clock: Callable[[], datetime] = datetime.now,
               engine: Engine | None = None) -> FastAPI:
    """The FastAPI application; the engine starts and stops with it (lifespan).

    Tests inject ``speaker`` (speech), ``clock`` (media pacing) and ``wall_clock`` (event timestamps).
    """
    engine = engine or Engine(settings or ServerSettings(), speaker, clock, wall_clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, engine.close)

    app = FastAPI(title="ipcc-engine", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="The IPCC cloud call-centre API (multOrders and its sibling endpoints).")
    app.state.engine = engine
    install_error_answers(app)
    for module in ROUTE_MODULES:
        module.register(app, engine)
    from engine.web.routes import mount_web  # the browser pages, their WebSocket, the `browser` endpoint

    mount_web(app, engine)
    return app


def register(app: FastAPI, engine: Engine) -> None:
    """The five endpoints of the contract's first page, the events, the status and the metrics."""
    guard = engine.guard
    add_post(app, engine, "/ipcc/call/multOrders", MultOrdersBody, engine.mult_orders, "Queue play orders on a call",
             fast=engine.mult_orders_cached)
    add_post(app, engine, "/ipcc/call/play", PlayBody, engine.play, "Queue one play order on a call",
             fast=engine.play_cached)
    add_post(app, engine, "/ipcc/call/outCall", OutCallBody, engine.out_call, "Call a phone number or an endpoint")
    add_post(app, engine, "/ipcc/call/stoPlay", CallBody, engine.stop_play, "Stop what is playing now", inline=True)
    add_post(app, engine, "/ipcc/call/disConnect", CallBody, engine.disconnect, "Hang up a call", inline=True)

    @app.get("/ipcc/events", response_model=EventsResponse, summary="A call's events, in order")
    async def events(request: Request, callId: str, appId: str = "") -> Response:  # noqa: N803 - the contract's
        refusal = guard.admit_query(appId, request.client.host if request.client else None, request.headers,
                                    request.url.query.encode())  # guard: the call's appId (and signature)
        if refusal is not None:
            return JSONResponse({**refusal, "callId": callId, "events": []})
        kept = engine.delivery.events(callId)
        if (kept[0].get("appId") if kept else engine.board.app_of(callId)) != appId or not appId:
            return JSONResponse({"code": UNKNOWN_CALL, "msg": f"callId: no events for {callId[:64]!r}",
                                 "callId": callId, "events": []})
        return JSONResponse({"code": OK, "msg": "ok", "callId": callId, "events": kept or []})

    @app.get("/ipcc/status", response_model=StatusResponse, summary="Live calls, timing, delivery")
    async def status() -> Response:
        pacer = engine.board.pacer.stats()
        body = {"calls": engine.board.sizes(), "pacer": vars(pacer), "delivery": engine.delivery.stats(),
                "guard": guard.status()}
        if not body["guard"]["healthy"]:  # guard: the watchdog says the media loop stalled
            return JSONResponse({"code": INTERNAL, "msg": "; ".join(body["guard"]["reasons"]), **body}, 503)
        return JSONResponse(body)

    registry = registry_for(guard.snapshot)

    @app.get("/metrics", summary="Prometheus metrics (503 while the media loop is stalled)")
    async def metrics() -> Response:
        health = guard.health()
        if not health.healthy:
            return JSONResponse({"code": INTERNAL, "msg": "; ".join(health.why())}, 503)
        return Response(exposition(registry), media_type=CONTENT_TYPE)


#: The modules whose ``register(app, engine)`` adds routes, in order (this one first).
ROUTE_MODULES: list[Any] = [sys.modules[__name__], call_api, upload, docs]
