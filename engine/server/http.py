"""The HTTP edge every route module shares: bounded bodies, charsets, the contract's JSON for every answer.

A POST answered on the engine's pool first takes one of its application's preparation slots (unless the route
says it ``prepares`` nothing), waiting for one on the event loop (:meth:`~engine.server.guard.Guard.prepared`):
one tenant cannot take every pool worker.

Every answer, for every path and method, is HTTP 200 with the contract's JSON (``code``, ``msg``): an unknown
path is ``108100`` "no such endpoint", a wrong method ``108100`` naming the method, a bad query ``108100``
naming the parameter, an unexpected exception ``108104`` (logged with its traceback). Never FastAPI's
``{"detail": ...}``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from engine.errors import BAD_REQUEST, INTERNAL, BusyError, RequestError
from engine.wire.body import JsonLimits, decode_text
from engine.wire.openapi import IpccResponse, request_body
from engine.wire.parsed import ParsedText, parse_once
from engine.wire.request import error_response, response

log = logging.getLogger(__name__)
#: An action: the body's text in, the answer out (None: "not on this path", the fast path's way).
Action = Callable[[str], dict[str, Any] | None]
#: A POST route's endpoint: the request in, the response out.
Endpoint = Callable[[Request], Awaitable[Response]]


class IpccApp(FastAPI):
    """FastAPI that serves the routes of :func:`add_post` directly: no router, no middleware stack per request.

    FastAPI's stack (error, telemetry and body-limit middlewares, routing, dependency solving) cost the contract's
    POSTs more CPU than their own work, all of it under the GIL the media thread needs. Those routes answer every
    outcome themselves (the contract's JSON; an unexpected exception ``108104``, logged, as
    :func:`install_error_answers` does), so nothing of the stack applies to them. Every other request, and these
    paths under a ``root_path``, go through FastAPI as usual; the routes stay registered with it (OpenAPI).
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.direct_posts: dict[str, Endpoint] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a POST of a direct route at once, anything else through FastAPI."""
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path") \
                and not self.root_path and (endpoint := self.direct_posts.get(scope["path"])) is not None:
            scope["app"] = self
            request = Request(scope, receive)
            try:
                answer = await endpoint(request)
            except Exception as exc:
                answer = internal_failure(request, exc)
            await answer(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class Answering(Protocol):
    """What :func:`add_post` needs of the engine: a body limit, a pool, a guard, and a safe way to run an action.

    ``guard`` (:class:`~engine.server.guard.Guard`): ``admit_post(host, headers, raw_body, text)`` answers a
    refusal (who may post, how often) or None, and the body's ids (read from ``text`` when it is parsed already);
    ``prepared(app_id, start)`` runs pool work in one of the application's preparation slots; ``count(answer)``
    counts answers by code. ``json_limits``: the bodies' JSON limits.
    """

    pool: Any
    guard: Any
    json_limits: JsonLimits

    @property
    def max_body_bytes(self) -> int:
        """Bodies over this many bytes are refused unread."""

    def answer(self, action: Action, body: str) -> dict[str, Any] | None:
        """Run ``action`` on ``body``; every exception becomes its code."""


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


async def read_text(request: Request, limit: int) -> str:
    """The body's text: at most ``limit`` bytes, decoded by its ``Content-Type``'s charset."""
    return decode_text(await read_body(request, limit), request.headers.get("content-type"))


def add_post(app: FastAPI, engine: Answering, path: str, model: type, action: Action, summary: str,
             inline: bool = False, fast: Action | None = None, prepares: bool = True) -> None:
    """Serve ``POST path`` with ``action`` (on the engine's pool unless ``inline``; ``fast`` tried first).

    ``prepares`` (default True): on the pool, the action holds one of its application's preparation slots.
    """

    async def endpoint(request: Request) -> Response:
        try:
            raw = await read_body(request, engine.max_body_bytes)
        except RequestError as exc:
            return JSONResponse(error_response(exc), headers={"Connection": "close"})
        except ClientDisconnect:
            return Response(status_code=400)
        content_type = request.headers.get("content-type")
        text = parse_once(raw, content_type, engine.json_limits)  # the ids and the action's fields: one decoding
        answer, ids = engine.guard.admit_post(request.client.host if request.client else None, request.headers, raw,
                                              text)
        if answer is None:
            try:
                answer = await _answer(engine, text or raw, content_type, action, inline, fast,
                                       ids["appId"] if prepares else None)
            except BusyError as exc:  # no preparation slot
                answer = response(exc.code, str(exc), ids["appId"], ids["callId"])
        engine.guard.count(answer)
        return JSONResponse(answer)

    endpoint.__name__ = path.rsplit("/", 1)[-1]
    if isinstance(app, IpccApp):
        app.direct_posts[path] = endpoint
    app.add_api_route(path, endpoint, methods=["POST"], response_model=IpccResponse, summary=summary,
                      openapi_extra=request_body(model))


async def _answer(engine: Answering, raw: bytes | ParsedText, content_type: str | None, action: Action,
                  inline: bool, fast: Action | None, slot_of: str | None) -> dict[str, Any] | None:
    """The answer to an admitted body: decoded by its charset (unless parsed already), then ``fast``, inline or pool.

    On the pool, in a preparation slot of the application ``slot_of`` (None: no slot).
    """
    if isinstance(raw, ParsedText):
        body: str = raw
    else:
        try:
            body = decode_text(raw, content_type)
        except RequestError as exc:
            return error_response(exc)
    if inline:
        return engine.answer(action, body)
    if fast is not None and (answer := engine.answer(fast, body)) is not None:
        return answer
    loop = asyncio.get_running_loop()
    if slot_of is None:
        return await loop.run_in_executor(engine.pool, engine.answer, action, body)
    return await engine.guard.prepared(slot_of, lambda: loop.run_in_executor(engine.pool, engine.answer, action, body))


def contract_error(code: str, msg: str) -> JSONResponse:
    """An HTTP 200 answer with the contract's fields."""
    return JSONResponse(response(code, msg))


def internal_failure(request: Request, exc: Exception) -> Response:
    """The answer to an unexpected exception: ``108104`` naming its type, logged with its traceback."""
    log.error("internal failure on %s %s", request.method, request.url.path[:100], exc_info=exc)
    return contract_error(INTERNAL, f"internal failure: {type(exc).__name__}")


def install_error_answers(app: FastAPI) -> None:
    """Make every error the framework raises an HTTP 200 answer with the contract's JSON (module docstring)."""

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        path = request.url.path[:100]
        if status == 404:
            return contract_error(BAD_REQUEST, f"no such endpoint: {path}")
        if status == 405:
            return contract_error(BAD_REQUEST, f"method {request.method} not allowed on {path}")
        return contract_error(BAD_REQUEST, f"request refused ({status})")

    async def validation_error(_request: Request, exc: Exception) -> Response:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        first = errors[0] if errors else {}
        field = ".".join(str(part) for part in first.get("loc", ())[1:]) or "query"
        return contract_error(BAD_REQUEST, f"{field}: {first.get('msg', 'is not valid')}")

    async def internal_error(request: Request, exc: Exception) -> Response:
        return internal_failure(request, exc)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, internal_error)
