"""A scriptable callback receiver on asyncio (thousands of answers per second), for delivery and fault tests.

``behaviour(body) -> str`` decides each POST's answer: ``"ack"`` (200 ``{"code":"0"}``), ``"error"`` (500),
``"hang"`` (no answer until :meth:`ScriptedReceiver.release`), ``"huge"`` (200 declaring a 1 GiB body and
streaming zeros until the engine closes the connection; the bytes it managed to send are counted in
``huge_bytes_sent``) or ``"close"`` (the connection is closed without an answer).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

ACK = b'{"code":"0"}'
HUGE_BYTES = 1 << 30


class ScriptedReceiver:
    """Serves on a free 127.0.0.1 port in its own thread; ``posts`` and ``acked`` hold bodies in arrival order."""

    def __init__(self, behaviour: Callable[[dict[str, Any]], str] = lambda _body: "ack") -> None:
        self.behaviour = behaviour
        self.posts: list[dict[str, Any]] = []
        self.acked: list[dict[str, Any]] = []
        self.huge_bytes_sent = 0
        self.open_now = self.max_open = 0  # POSTs being answered now / at most at once (ack and error answers)
        self.lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._released: asyncio.Event | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True, name="test-receiver")
        self._thread.start()
        started.wait(10)
        self.url = f"http://127.0.0.1:{self.port}/events"

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._released = asyncio.Event()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        started.set()
        self._loop.run_forever()

    def release(self) -> None:
        """Answer every hanging POST (with an acknowledgement) and let later ones through."""
        assert self._released is not None
        self._loop.call_soon_threadsafe(self._released.set)

    def close(self) -> None:
        """Stop serving."""
        async def stop() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                body = json.loads(await reader.readexactly(length))
                with self.lock:
                    self.posts.append(body)
                    self.open_now += 1
                    self.max_open = max(self.max_open, self.open_now)
                action = self.behaviour(body)
                if action == "hang":
                    assert self._released is not None
                    await self._released.wait()
                    action = "ack"
                if action == "close":
                    break
                if action == "huge":
                    await self._huge(writer)
                    break
                status, answer = (b"200 OK", ACK) if action == "ack" else (b"500 Internal Server Error", b"{}")
                if action == "ack":
                    with self.lock:
                        self.acked.append(body)
                with self.lock:
                    self.open_now -= 1
                writer.write(b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (status, len(answer), answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError, StopIteration):
            pass
        finally:
            writer.close()

    async def _huge(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % HUGE_BYTES)
        chunk = b"0" * 65536
        try:
            for _ in range(HUGE_BYTES // len(chunk)):
                writer.write(chunk)
                await writer.drain()
                with self.lock:
                    self.huge_bytes_sent += len(chunk)
        except ConnectionError:
            pass


def main() -> None:
    """``python -m engine.testing.receivers``: an acknowledging receiver; prints its URL, serves until stdin ends."""
    import sys

    receiver = ScriptedReceiver()
    print(receiver.url, flush=True)
    sys.stdin.read()
    receiver.close()


if __name__ == "__main__":
    main()
