"""A small HTTP/1.1 POST client for callbacks: keep-alive connections, bounded answers, bounded time.

Why not httpx: the answer must be cut off after ``max_answer_bytes`` (4096) without being read (a receiver
answering 1 GiB once swelled the engine to 4.4 GB), and the sender must keep up with thousands of events per
second on one thread. :meth:`Poster.post` writes the request, reads the status line and headers (at most
``MAX_HEAD_BYTES``), then at most ``max_answer_bytes`` of the body: a longer answer (by ``Content-Length``, by
chunks or by bytes read) is reported ``truncated`` and its connection closed, never drained. ``http://`` and
``https://`` URLs; idle connections are reused per host (at most ``keep_idle`` each). Time is bounded by the
caller (``asyncio.wait_for`` in :mod:`engine.server.delivery`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_ANSWER_BYTES = 4096
MAX_HEAD_BYTES = 16 * 1024


@dataclass(frozen=True)
class Answer:
    """A receiver's answer: HTTP ``status``, the first bytes of the ``body``, ``truncated`` when it was longer."""

    status: int
    body: bytes
    truncated: bool = False


class AnswerError(OSError):
    """The receiver's answer is not HTTP/1.x (or its head is over ``MAX_HEAD_BYTES``)."""


_Key = tuple[str, str, int]
_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Poster:
    """POSTs JSON bytes to URLs over pooled HTTP/1.1 connections; one event loop uses it."""

    def __init__(self, max_answer_bytes: int = MAX_ANSWER_BYTES, keep_idle: int = 64) -> None:
        self.max_answer_bytes = max_answer_bytes
        self.keep_idle = keep_idle
        self._idle: defaultdict[_Key, list[_Conn]] = defaultdict(list)
        self._ssl: ssl.SSLContext | None = None

    async def post(self, url: str, body: bytes) -> Answer:
        """POST ``body`` (JSON) to ``url``; the answer's body is cut at ``max_answer_bytes``.

        Raises ``OSError`` (connection refused, reset, :class:`AnswerError`) or ``asyncio.IncompleteReadError``.
        """
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        key = (parts.scheme, parts.hostname or "", parts.port or (443 if secure else 80))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc.rsplit("@", 1)[-1]
        head = (f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nUser-Agent: ipcc-engine\r\n\r\n").encode("latin-1")
        data = head + body
        if self._idle[key]:
            try:
                return await self._exchange(key, self._idle[key].pop(), data)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                pass  # a kept connection the receiver closed meanwhile: once more on a new one
        return await self._exchange(key, await self._connect(key), data)

    async def _exchange(self, key: _Key, conn: _Conn, data: bytes) -> Answer:
        """Send ``data`` (a whole request) on ``conn`` and read the answer; the connection is kept or closed."""
        reader, writer = conn
        try:
            writer.write(data)
            answer, reusable = await self._read_answer(reader)
        except BaseException:
            writer.close()
            raise
        self._release(key, reader, writer, reusable)
        return answer

    async def close(self) -> None:
        """Close every idle connection."""
        for conns in self._idle.values():
            for _reader, writer in conns:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
        self._idle.clear()

    # -- internals ----------------------------------------------------------------------------------------

    async def _connect(self, key: _Key) -> _Conn:
        scheme, host, port = key
        context = None
        if scheme == "https":
            context = self._ssl = self._ssl or ssl.create_default_context()
        return await asyncio.open_connection(host, port, ssl=context, limit=MAX_HEAD_BYTES)

    def _release(self, key: _Key, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 reusable: bool) -> None:
        if reusable and len(self._idle[key]) < self.keep_idle:
            self._idle[key].append((reader, writer))
        else:
            writer.close()

    async def _read_answer(self, reader: asyncio.StreamReader) -> tuple[Answer, bool]:
        """The answer and whether the connection may be reused (the body read whole, no ``close``)."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit():
            raise AnswerError(f"not an HTTP answer: {lines[0][:60]!r}")
        status = int(status_line[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        keep = headers.get("connection") != "close" and status_line[0] == "HTTP/1.1"
        limit = self.max_answer_bytes
        if "chunked" in headers.get("transfer-encoding", ""):
            body, whole = await _read_chunked(reader, limit)
            return Answer(status, body, not whole), keep and whole
        length = headers.get("content-length")
        if length is not None and length.isdigit():
            size = int(length)
            if size > limit:
                return Answer(status, b"", True), False
            return Answer(status, await reader.readexactly(size)), keep
        if status in (204, 304) or 100 <= status < 200:
            return Answer(status, b""), keep
        body = await reader.read(limit + 1)  # delimited by the connection's end
        return Answer(status, body[:limit], len(body) > limit), False


async def _read_chunked(reader: asyncio.StreamReader, limit: int) -> tuple[bytes, bool]:
    """A chunked body up to ``limit`` bytes: (body, True) when whole, (prefix, False) when cut off."""
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # the empty trailer
            return bytes(body), True
        if len(body) + size > limit:
            return bytes(body), False
        body += await reader.readexactly(size)
        await reader.readexactly(2)
