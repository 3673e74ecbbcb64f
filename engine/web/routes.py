"""The browser pages on the server's app: ``/phone``, ``/calls``, their assets, the WebSocket and the calls API.

* ``GET /phone`` and ``GET /calls``: the pages; ``/web/static/…``: their scripts (no build step, no CDN).
* ``WS /phone/ws?appId=&callId=&secret=``: a page becomes the phone of a live ``browser`` call of that
  application (:mod:`engine.web.socket`, :mod:`engine.web.phone`).
* ``GET /web/calls?appId=&secret=``: the application's live calls and its finished calls (of every endpoint)
  with their recordings and picture (:mod:`engine.web.calls_api`, from the :class:`~engine.web.call_book.CallBook`
  that watches the media thread).

Who a page is. A page sends its application's ``appId`` (and ``secret``) with every request; ``authorize(app_id,
secret)`` decides (default: the application is configured; the per-application authentication plugs in
here). A page sees only its application's calls: another application's call is refused like an unknown one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, WebSocket
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.websockets import WebSocketDisconnect

from engine.errors import EndpointError, EngineError
from engine.server.endpoints import Endpoint, EndpointContext, OutCallSpec, register_endpoint
from engine.web.call_book import CallBook
from engine.web.calls_api import mount_calls
from engine.web.phone import BrowserPhone
from engine.web.socket import CLOSE_NORMAL, CLOSE_POLICY, PageInput, SocketClose

if TYPE_CHECKING:
    from engine.server.app import Engine

log = logging.getLogger(__name__)
STATIC = resources.files("engine.web") / "static"
#: A page attaching to a call created a moment ago waits for it to start ticking, up to 100 × 20 ms.
ATTACH_WAIT_TICKS = 100

#: ``authorize(app_id, secret)``: True when a page may act for ``app_id``.
Authorize = Callable[[str, str], bool]


class PhoneRegistry:
    """The live ``browser`` calls of one engine by call id (a call that ended leaves; the calls page keeps it)."""

    def __init__(self) -> None:
        self.live: dict[str, BrowserPhone] = {}
        self.clock: Callable[[], float] | None = None  # stamps frames of new phones (a latency probe sets it)

    def endpoint(self, spec: OutCallSpec, context: EndpointContext) -> Endpoint:
        """A new ``browser`` call's endpoint: its phone is registered (and records) when the call starts ticking."""
        phone = BrowserPhone(spec.app_id, context.recordings, self._finished, self.clock)

        def attach(call: Any) -> None:
            phone.attach(call)
            endpoint.recording = phone.recording
            if endpoint.info is not None:  # what messagerpt names
                endpoint.info.recording = phone.recording
            self.live[call.call_id] = phone

        endpoint = Endpoint(phone.caller, phone, "browser", attach=attach)
        return endpoint

    def _finished(self, phone: BrowserPhone) -> None:
        self.live.pop(phone.call_id, None)


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
    book = app.state.web_book = CallBook()
    engine.board.thread.watchers.append(book)
    app.state.web_authorize = authorize or _configured(engine)

    def allowed(app_id: str, secret: str) -> bool:
        return bool(app.state.web_authorize(app_id, secret))

    app.mount("/web/static", StaticFiles(directory=str(STATIC)), name="web-static")
    app.add_api_route("/phone", lambda: _page("phone.html"), methods=["GET"], include_in_schema=False)
    app.add_api_route("/calls", lambda: _page("calls.html"), methods=["GET"], include_in_schema=False)
    _add_phone_socket(app, engine, registry, allowed)
    mount_calls(app, engine, book, allowed)
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

