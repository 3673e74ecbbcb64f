"""The browser pages on the server's app: ``/phone``, ``/calls``, their assets, the WebSocket and the calls API.

* ``GET /phone`` and ``GET /calls``: the pages; ``/web/static/…``: their scripts (no build step, no CDN).
* ``WS /phone/ws?appId=&callId=&secret=``: a page becomes the phone of a live ``browser`` call of that
  application (:mod:`engine.web.socket`, :mod:`engine.web.phone`).
* ``GET /web/calls?appId=&secret=``: the application's live calls with their events, and its finished
  ``browser`` calls with their recording and picture (``/web/calls/{callId}/recording.wav`` and
  ``/web/calls/{callId}/picture.png``).

Who a page is. A page sends its application's ``appId`` (and ``secret``) with every request; ``authorize(app_id,
secret)`` decides (default: the application is configured; the per-application authentication plugs in
here). A page sees only its application's calls: another application's call is refused like an unknown one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query, WebSocket
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.websockets import WebSocketDisconnect

from engine.errors import EndpointError, EngineError
from engine.server.endpoints import Endpoint, EndpointContext, OutCallSpec, register_endpoint
from engine.web.phone import BrowserPhone
from engine.web.socket import CLOSE_NORMAL, CLOSE_POLICY, PageInput, SocketClose

if TYPE_CHECKING:
    from engine.server.app import Engine

log = logging.getLogger(__name__)
STATIC = resources.files("engine.web") / "static"
#: Finished ``browser`` calls kept for the calls page (their trace, recording and picture): 10 (190 MB at most).
KEEP_FINISHED = 10
#: A page attaching to a call created a moment ago waits for it to start ticking, up to 100 × 20 ms.
ATTACH_WAIT_TICKS = 100

#: ``authorize(app_id, secret)``: True when a page may act for ``app_id``.
Authorize = Callable[[str, str], bool]


class PhoneRegistry:
    """The ``browser`` calls of one engine: live ones by call id, and the last :data:`KEEP_FINISHED` finished ones."""

    def __init__(self) -> None:
        self.live: dict[str, BrowserPhone] = {}
        self.finished: OrderedDict[str, BrowserPhone] = OrderedDict()
        self.clock: Callable[[], float] | None = None  # stamps frames of new phones (a latency probe sets it)

    def endpoint(self, spec: OutCallSpec, context: EndpointContext) -> Endpoint:
        """A new ``browser`` call's endpoint: its phone is registered when the call starts ticking."""
        phone = BrowserPhone(spec.app_id, context.recordings, self._finished, self.clock)

        def attach(call: Any) -> None:
            phone.attach(call)
            self.live[call.call_id] = phone

        return Endpoint(phone.caller, phone, "browser", attach=attach)

    def _finished(self, phone: BrowserPhone) -> None:
        self.live.pop(phone.call_id, None)
        self.finished[phone.call_id] = phone
        while len(self.finished) > KEEP_FINISHED:
            self.finished.popitem(last=False)


_REGISTRIES: dict[int, tuple[EndpointContext, PhoneRegistry]] = {}


def registry_for(context: EndpointContext) -> PhoneRegistry:
    """The registry of the engine whose endpoint context is ``context`` (made on first use)."""
    entry = _REGISTRIES.get(id(context))
    if entry is None or entry[0] is not context:
        entry = _REGISTRIES[id(context)] = (context, PhoneRegistry())
    return entry[1]


def browser_endpoint(rest: str, spec: OutCallSpec, context: EndpointContext) -> Endpoint:
    """``browser``: the call's phone is a page (``/phone``) attached over the WebSocket."""
    if rest:
        raise EndpointError("called", f"browser takes no name, got {spec.called[:40]!r}")
    return registry_for(context).endpoint(spec, context)


register_endpoint("browser", browser_endpoint)


def _page(name: str) -> HTMLResponse:
    return HTMLResponse((STATIC / name).read_text(encoding="utf-8"))


def mount_web(app: FastAPI, engine: Engine, authorize: Authorize | None = None) -> PhoneRegistry:
    """Add the pages, their assets, the WebSocket and the calls API to ``app``; returns the phone registry.

    ``authorize``: see the module docstring (default: the application is configured). It is kept in
    ``app.state.web_authorize`` and read per request, so it may be replaced after mounting.
    """
    registry = registry_for(engine.endpoints)
    app.state.web_registry = registry
    app.state.web_authorize = authorize or _configured(engine)

    def allowed(app_id: str, secret: str) -> bool:
        return bool(app.state.web_authorize(app_id, secret))

    app.mount("/web/static", StaticFiles(directory=str(STATIC)), name="web-static")
    app.add_api_route("/phone", lambda: _page("phone.html"), methods=["GET"], include_in_schema=False)
    app.add_api_route("/calls", lambda: _page("calls.html"), methods=["GET"], include_in_schema=False)
    _add_phone_socket(app, engine, registry, allowed)
    _add_calls_api(app, engine, registry, allowed)
    return registry


def _configured(engine: Engine) -> Authorize:
    """The default :data:`Authorize`: any configured application, whatever the secret."""

    def known(app_id: str, _secret: str) -> bool:
        try:
            engine.config.application(app_id)
        except EngineError:
            return False
        return True

    return known


def _add_phone_socket(app: FastAPI, engine: Engine, registry: PhoneRegistry, allowed: Authorize) -> None:
    """``WS /phone/ws``: a page becomes the phone of a live ``browser`` call of its application."""

    @app.websocket("/phone/ws")
    async def phone_socket(websocket: WebSocket, appId: str = "", callId: str = "",  # noqa: N803
                           secret: str = "") -> None:
        await websocket.accept()
        try:
            phone = await _attachable(appId, callId, secret)
        except SocketClose as refusal:
            await websocket.close(refusal.code, refusal.reason)
            return
        queue = phone.open_page(asyncio.get_running_loop())
        if queue is None:
            await websocket.close(CLOSE_POLICY, "callId: a page is attached to this call already")
            return
        try:
            await _serve_page(websocket, phone, queue)
        finally:
            phone.close_page()

    async def _attachable(app_id: str, call_id: str, secret: str) -> BrowserPhone:
        if not app_id or not allowed(app_id, secret):
            raise SocketClose(CLOSE_POLICY, "appId: unknown application or wrong secret")
        phone = None
        try:
            engine.board.check_call(app_id, call_id)
            # a call just created starts ticking (and its phone registers) at the media thread's next frame
            for _ in range(ATTACH_WAIT_TICKS):
                phone = registry.live.get(call_id)
                if phone is not None:
                    break
                await asyncio.sleep(0.02)
        except EngineError:
            phone = None
        if phone is None or phone.app_id != app_id:
            raise SocketClose(CLOSE_POLICY, "callId: not a live browser call of this application")
        return phone


def _add_calls_api(app: FastAPI, engine: Engine, registry: PhoneRegistry, allowed: Authorize) -> None:
    """``GET /web/calls`` and a finished call's ``recording.wav`` and ``picture.png``."""

    @app.get("/web/calls", include_in_schema=False)
    async def calls(appId: str = Query(""), secret: str = Query("")) -> Response:  # noqa: N803
        if not allowed(appId, secret):
            return JSONResponse({"error": "appId: unknown application or wrong secret"}, status_code=403)
        live = [{"callId": cid, "browser": cid in registry.live, "events": engine.delivery.events(cid) or []}
                for cid in engine.board.live_calls(appId)]
        finished = [_finished_entry(phone, engine) for phone in reversed(registry.finished.values())
                    if phone.app_id == appId]
        return JSONResponse({"live": live, "finished": finished})

    def _owned(app_id: str, secret: str, call_id: str) -> BrowserPhone | None:
        if not allowed(app_id, secret):
            return None
        phone = registry.finished.get(call_id) or registry.live.get(call_id)
        return phone if phone is not None and phone.app_id == app_id else None

    @app.get("/web/calls/{call_id}/recording.wav", include_in_schema=False)
    async def recording(call_id: str, appId: str = Query(""), secret: str = Query("")) -> Response:  # noqa: N803
        phone = _owned(appId, secret, call_id)
        if phone is None or phone.recording is None or not phone.ended:
            return JSONResponse({"error": "callId: no finished browser call of this application"}, status_code=404)
        return FileResponse(phone.recording, media_type="audio/wav", filename=phone.recording.name)

    @app.get("/web/calls/{call_id}/picture.png", include_in_schema=False)
    async def picture(call_id: str, appId: str = Query(""), secret: str = Query("")) -> Response:  # noqa: N803
        phone = _owned(appId, secret, call_id)
        if phone is None or not phone.ended:
            return JSONResponse({"error": "callId: no finished browser call of this application"}, status_code=404)
        loop = asyncio.get_running_loop()
        png = await loop.run_in_executor(engine.pool, _draw, phone)
        return Response(png, media_type="image/png")


def _finished_entry(phone: BrowserPhone, engine: Engine) -> dict[str, Any]:
    base = f"/web/calls/{phone.call_id}"
    return {"callId": phone.call_id, "events": engine.delivery.events(phone.call_id) or [],
            "seconds": phone.trace.samples / 8000, "recording": f"{base}/recording.wav",
            "picture": f"{base}/picture.png"}


def _draw(phone: BrowserPhone) -> bytes:
    from engine.web.picture import CallPicture, draw_png

    trace = phone.trace
    return draw_png(CallPicture(trace.played_audio(), trace.heard_audio(), trace.requests, trace.events,
                                title=f"browser call {phone.call_id}"))


async def _serve_page(websocket: WebSocket, phone: BrowserPhone, queue: asyncio.Queue[Any]) -> None:
    """Send the call to the page and take its keys and microphone until either side ends."""
    sender = asyncio.create_task(_send(websocket, queue))
    checker = PageInput()
    try:
        while not sender.done():
            receive = asyncio.ensure_future(websocket.receive())
            done, _ = await asyncio.wait({receive, sender}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:
                receive.cancel()
                break
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                break
            kind, value = checker.take(message, time.monotonic())
            if kind == "key":
                phone.caller.press(value)
            else:
                phone.caller.mic.feed(value)
    except SocketClose as refusal:
        log.info("browser call %s: page closed: %s", phone.call_id, refusal.reason)
        with contextlib.suppress(Exception):
            await websocket.close(refusal.code, refusal.reason)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender


async def _send(websocket: WebSocket, queue: asyncio.Queue[Any]) -> None:
    try:
        while True:
            message = await queue.get()
            if message is None:
                await websocket.close(CLOSE_NORMAL, "the call ended")
                return
            if isinstance(message, bytes):
                await websocket.send_bytes(message)
            else:
                await websocket.send_json(message)
    except (WebSocketDisconnect, RuntimeError):
        return

