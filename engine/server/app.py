"""The HTTP API: FastAPI over the switchboard (live calls), the media thread and the event delivery.

Endpoints (all POST bodies JSON, all answers HTTP 200 with the contract's JSON, malformed JSON, unknown paths
and wrong methods included: :mod:`engine.server.http`): ``/ipcc/call/multOrders``, ``/ipcc/call/play``,
``/ipcc/call/outCall``, ``/ipcc/call/stoPlay``, ``/ipcc/call/disConnect`` (here), the rest of the call API
(:mod:`engine.server.call_api`), the upload (:mod:`engine.server.upload`), ``/docs`` served offline
(:mod:`engine.server.docs`); ``GET /ipcc/events?callId=`` (a call's events) and ``GET /ipcc/status``. Each
module registers its routes with a ``register(app, engine)`` function; :data:`ROUTE_MODULES` lists them.

A body is read as a stream and refused (``108100``) as soon as it exceeds ``max_body_bytes`` (``[limits]
bodyBytes``, 1 MiB) — by its ``Content-Length`` before reading, else while counting — so a huge body is never held
whole. The actions behind the routes, the pool and the fast path: :mod:`engine.server.actions`; the
settings: :mod:`engine.server.settings`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from engine.errors import INTERNAL, OK, UNKNOWN_CALL
from engine.media.pacer import Clock
from engine.server import call_api, docs, upload
from engine.server.actions import Engine, HookFactory
from engine.server.http import IpccApp, add_post, install_error_answers
from engine.server.metrics import CONTENT_TYPE, exposition, registry_for
from engine.server.settings import ServerSettings, delivery_concurrency
from engine.tts.synthesizer import SpeechSource
from engine.wire.openapi import CallBody, EventsResponse, MultOrdersBody, OutCallBody, PlayBody, StatusResponse

__all__ = ["ROUTE_MODULES", "Engine", "HookFactory", "ServerSettings", "create_app", "delivery_concurrency",
           "register"]


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

    app = IpccApp(title="ipcc-engine", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
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
    add_post(app, engine, "/ipcc/call/outCall", OutCallBody, engine.out_call, "Call a phone number or an endpoint",
             prepares=False)  # set-up bursts: no preparation slot
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
        if engine.board.workers is not None:  # [sip] mediaProcesses: each worker's timing and RTP counters
            body["workers"] = engine.board.workers.stats()
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
