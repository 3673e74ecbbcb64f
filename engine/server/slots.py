"""Preparation slots per application: requests beyond an application's slots wait for one, on the event loop.

A request that must be prepared on the server's pool (speech synthesis, file decoding) first takes one of its
application's ``AppLimits.preparing`` slots. When all are taken it waits — as a future on the asyncio event
loop, never in a pool thread (a waiting pool thread would let one tenant starve the others) — in a queue of at
most ``AppLimits.preparing_queue`` requests, for at most ``GuardSettings.preparing_wait_s`` seconds; beyond
either bound it is refused with :class:`~engine.errors.BusyError` (``108102``) naming the limit. A slot is given
back when the pool's work ends (even when the client went away meanwhile), and handed to the longest waiter.

Every method but :meth:`PreparationSlots.in_preparation` and :meth:`PreparationSlots.waiting` runs on the
event loop's thread; those two may be read from any thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from engine.errors import BusyError
from engine.server.limits import GuardSettings

T = TypeVar("T")


class PreparationSlots:
    """Per-application slots and bounded queues of waiting requests (module docstring)."""

    def __init__(self, settings: GuardSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()  # for readers on other threads
        self._held: dict[str, int] = {}
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    async def run(self, app_id: str, start: Callable[[], asyncio.Future[T]]) -> T:
        """Take a slot of ``app_id`` (waiting for one), then ``start()`` the work; the slot is held until it ends.

        ``start`` returns the work's future (e.g. ``loop.run_in_executor(...)``); if this coroutine is cancelled
        the work goes on, and its slot is given back when it ends.
        """
        await self.acquire(app_id)
        try:
            future = start()
        except BaseException:
            self.release(app_id)
            raise
        future.add_done_callback(lambda done: self._finished(app_id, done))
        return await asyncio.shield(future)

    def _finished(self, app_id: str, done: asyncio.Future[T]) -> None:
        if not done.cancelled():
            done.exception()  # retrieved: an abandoned future's failure was answered, or nobody waits for it
        self.release(app_id)

    async def acquire(self, app_id: str) -> None:
        """Take one of ``app_id``'s slots, waiting in its queue if need be.

        Raises :class:`BusyError` when the queue is full or the wait is over.
        """
        limits = self.settings.limits(app_id)
        queue = self._waiting.get(app_id)
        held = self._held.get(app_id, 0)
        if held < limits.preparing and not queue:
            with self._lock:
                self._held[app_id] = held + 1
            return
        waiting = len(queue) if queue else 0
        if waiting >= limits.preparing_queue:
            raise BusyError(f"appId: {held} requests of this application are being prepared (speech, files) and "
                            f"{waiting} wait; at most {limits.preparing} at once and {limits.preparing_queue} "
                            f"waiting")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            queue = self._waiting.setdefault(app_id, deque())
            queue.append(future)
        try:
            async with asyncio.timeout(self.settings.preparing_wait_s):
                await future
        except (TimeoutError, asyncio.CancelledError) as exc:
            if future.done() and not future.cancelled():  # the slot was handed over just as the wait ended
                if isinstance(exc, TimeoutError):
                    return
                self.release(app_id)
                raise
            self._forget(app_id, future)
            if isinstance(exc, TimeoutError):
                raise BusyError(f"appId: waited {self.settings.preparing_wait_s:g} s for one of this application's "
                                f"{limits.preparing} preparation slots (speech, files)") from None
            raise

    def release(self, app_id: str) -> None:
        """Give back a slot of ``app_id``: to its longest waiter, else free."""
        with self._lock:
            queue = self._waiting.get(app_id)
            while queue:
                future = queue.popleft()
                if not future.done():
                    future.set_result(None)  # the slot passes on: held stays
                    if not queue:
                        del self._waiting[app_id]
                    return
            self._waiting.pop(app_id, None)
            held = self._held.get(app_id, 0) - 1
            if held > 0:
                self._held[app_id] = held
            else:
                self._held.pop(app_id, None)

    def _forget(self, app_id: str, future: asyncio.Future[None]) -> None:
        with self._lock:
            queue = self._waiting.get(app_id)
            if queue is not None and future in queue:
                queue.remove(future)
                if not queue:
                    del self._waiting[app_id]

    def in_preparation(self) -> dict[str, int]:
        """Slots held now, per application."""
        with self._lock:
            return dict(self._held)

    def waiting(self) -> dict[str, int]:
        """Requests waiting for a slot now, per application."""
        with self._lock:
            return {app: len(queue) for app, queue in self._waiting.items() if queue}
