"""The HTTP API: FastAPI over the switchboard (live calls), the media thread and the event delivery.

Endpoints (all POST bodies JSON, all answers HTTP 200 with the contract's JSON, malformed JSON included):
``/ipcc/call/multOrders``, ``/ipcc/call/play``, ``/ipcc/call/outCall``, ``/ipcc/call/stoPlay``,
``/ipcc/call/disConnect``; ``GET /ipcc/events?callId=`` (a call's events) and ``GET /ipcc/status``.

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
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from engine.admission import check_request, prepare
from engine.audio.library import DEFAULT_ROOT, VoiceLibrary
from engine.config import Config, default_config
from engine.core.orders import MultOrders, PlayKind
from engine.core.timeline import Program
from engine.errors import INTERNAL, OK, UNKNOWN_CALL, EngineError, RequestError
from engine.media.pacer import Clock
from engine.server.auth import AuthSettings
from engine.server.delivery import Delivery, RetryPolicy
from engine.server.endpoints import EndpointContext, make_endpoint, parse_out_call
from engine.server.guard import Guard
from engine.server.limits import GuardSettings
from engine.server.metrics import CONTENT_TYPE, exposition, registry_for
from engine.server.switchboard import DEFAULT_MAX_CALLS, Switchboard
from engine.tts.synthesizer import SpeechSource
from engine.wire.openapi import (
    CallBody,
    EventsResponse,
    IpccResponse,
    MultOrdersBody,
    OutCallBody,
    PlayBody,
    StatusResponse,
    request_body,
)
from engine.wire.request import decode_body, error_response, ids_of, parse_mult_orders, parse_play, read_ids, response

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1 << 20


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
    max_calls: int = DEFAULT_MAX_CALLS
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    fsync: bool = False
    prepare_workers: int = 4
    guard: GuardSettings = field(default_factory=GuardSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)


class Engine:
    """The server's parts, wired: voice library, speaker, delivery, switchboard (with its media thread)."""

    def __init__(self, settings: ServerSettings, speaker: SpeechSource | None = None, clock: Clock | None = None,
                 wall_clock: Callable[[], datetime] = datetime.now) -> None:
        self.settings = settings
        self.config = settings.config
        self.library = VoiceLibrary(settings.voices)
        if speaker is None:
            from engine.tts.synthesizer import synthesizer

            speaker = synthesizer(settings.cache)
        self.speaker = speaker
        callbacks = {app_id: app.callback_url for app_id, app in self.config.applications.items()}
        self.delivery = Delivery(settings.state_dir, callbacks, settings.retry, settings.fsync)
        self.board = Switchboard(self.config, self.delivery.publish, clock, wall_clock, settings.max_calls,
                                 settings.guard)
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

    # -- actions: bytes in, the answer out (run on the pool) ------------------------------------------------

    def answer(self, action: Callable[[bytes], dict[str, Any] | None], body: bytes) -> dict[str, Any] | None:
        """Run ``action``; an :class:`EngineError` becomes its code, anything else ``108104`` (logged)."""
        try:
            return action(body)
        except EngineError as exc:
            return error_response(exc, ids_of(body))
        except Exception as exc:
            log.exception("internal failure on %s", getattr(action, "__name__", action))
            ids = ids_of(body)
            return response(INTERNAL, f"internal failure: {type(exc).__name__}", ids["appId"], ids["callId"])

    def _orders(self, body: bytes, parse: Callable[[Mapping[str, Any]], MultOrders]) -> dict[str, Any]:
        request, application = check_request(body, self.config, self.library, parse, self.board.check_call)
        with self.guard.preparing(request.app_id):  # bounded per application: one tenant cannot take the pool
            program = prepare(request, self.library, self.speaker, application.voice)
        self.board.submit(request.app_id, request.call_id, program)
        return response(OK, "ok", request.app_id, request.call_id)

    def _cached_orders(self, body: bytes, parse: Callable[[Mapping[str, Any]], MultOrders]) -> dict[str, Any] | None:
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
            request, application = check_request(body, self.config, self.library, speech_only, self.board.check_call)
        except _NeedsPoolError:
            return None
        prompts = []
        for order in request.orders:
            samples = cached(order.source, application.voice)
            if samples is None:
                return None
            prompts.append(samples)
        self.board.submit(request.app_id, request.call_id, Program(request, tuple(prompts)))
        return response(OK, "ok", request.app_id, request.call_id)

    def mult_orders(self, body: bytes) -> dict[str, Any]:
        """``multOrders``: check, prepare, queue."""
        return self._orders(body, parse_mult_orders)

    def mult_orders_cached(self, body: bytes) -> dict[str, Any] | None:
        """``multOrders`` on the fast path (:meth:`_cached_orders`)."""
        return self._cached_orders(body, parse_mult_orders)

    def play(self, body: bytes) -> dict[str, Any]:
        """``play``: a one-order multOrders."""
        return self._orders(body, parse_play)

    def play_cached(self, body: bytes) -> dict[str, Any] | None:
        """``play`` on the fast path (:meth:`_cached_orders`)."""
        return self._cached_orders(body, parse_play)

    def out_call(self, body: bytes) -> dict[str, Any]:
        """``outCall``: a new call on the endpoint ``called`` names."""
        fields = decode_body(body)
        app_id = fields.get("appId")
        if isinstance(app_id, str):
            self.config.application(app_id)  # 108101 before the other fields, as multOrders does
        spec = parse_out_call(fields)
        self.config.application(spec.app_id)
        endpoint = make_endpoint(spec, self.endpoints)
        try:
            call_id = self.board.create(spec.app_id, endpoint)
        except BaseException:
            endpoint.sink.close()
            if endpoint.on_close is not None:
                endpoint.on_close()
            raise
        return response(OK, "ok", spec.app_id, call_id)

    def _call_command(self, body: bytes, command: Callable[[str, str], None]) -> dict[str, Any]:
        fields = decode_body(body)
        app_id, call_id = read_ids(fields)
        self.config.application(app_id)
        command(app_id, call_id)
        return response(OK, "ok", app_id, call_id)

    def stop_play(self, body: bytes) -> dict[str, Any]:
        """``stoPlay``."""
        return self._call_command(body, self.board.stop_play)

    def disconnect(self, body: bytes) -> dict[str, Any]:
        """``disConnect``."""
        return self._call_command(body, self.board.hang_up)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with ``RequestError`` once over ``limit`` bytes (never read whole beyond it)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError("body", f"is {int(declared)} bytes; at most {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError("body", f"is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


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

    app = FastAPI(title="ipcc-engine", version="0.1.0", lifespan=lifespan,
                  description="The IPCC cloud call-centre API (multOrders and its sibling endpoints).")
    app.state.engine = engine
    limit = engine.settings.max_body_bytes
    guard = engine.guard

    async def run(request: Request, action: Callable[[bytes], dict[str, Any]], inline: bool,
                  fast: Callable[[bytes], dict[str, Any] | None] | None) -> Response:
        try:
            body = await read_body(request, limit)
        except RequestError as exc:
            return JSONResponse(error_response(exc), headers={"Connection": "close"})
        except ClientDisconnect:
            return Response(status_code=400)
        answer = guard.admit(request.client.host if request.client else None, request.headers, body)  # guard
        if answer is None:
            if inline:
                answer = engine.answer(action, body)
            elif fast is None or (answer := engine.answer(fast, body)) is None:
                loop = asyncio.get_running_loop()
                answer = await loop.run_in_executor(engine.pool, engine.answer, action, body)
        guard.count(answer)  # guard: answers by code
        return JSONResponse(answer)

    def post(path: str, model: type, action: Callable[[bytes], dict[str, Any]], summary: str,
             inline: bool = False, fast: Callable[[bytes], dict[str, Any] | None] | None = None) -> None:
        async def endpoint(request: Request) -> Response:
            return await run(request, action, inline, fast)

        endpoint.__name__ = path.rsplit("/", 1)[-1]
        app.add_api_route(path, endpoint, methods=["POST"], response_model=IpccResponse, summary=summary,
                          openapi_extra=request_body(model))

    post("/ipcc/call/multOrders", MultOrdersBody, engine.mult_orders, "Queue play orders on a call",
         fast=engine.mult_orders_cached)
    post("/ipcc/call/play", PlayBody, engine.play, "Queue one play order on a call", fast=engine.play_cached)
    post("/ipcc/call/outCall", OutCallBody, engine.out_call, "Create a call on a phone endpoint")
    post("/ipcc/call/stoPlay", CallBody, engine.stop_play, "Stop what is playing now", inline=True)
    post("/ipcc/call/disConnect", CallBody, engine.disconnect, "Hang up a call", inline=True)

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

    return app
