"""One computation per key at a time: concurrent callers of a key that is being made wait for that one result."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Runs ``make`` once per key in flight; the callers that arrive meanwhile get its result (or its exception).

    Thread-safe. It keeps nothing once a key's computation ends: caching the result is the caller's business.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[Hashable, Future[T]] = {}

    def claim(self, key: Hashable) -> tuple[bool, Future[T]]:
        """(True, a new future) when this caller must make ``key``; (False, the future to wait on) otherwise."""
        with self._lock:
            pending = self._pending.get(key)
            if pending is not None:
                return False, pending
            pending = self._pending[key] = Future()
            return True, pending

    def run(self, key: Hashable, pending: Future[T], make: Callable[[], T]) -> T:
        """Make ``key`` for the waiters of ``pending`` (the future :meth:`claim` gave its owner), then forget it."""
        try:
            value = make()
            pending.set_result(value)
            return value
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        finally:
            with self._lock:
                del self._pending[key]
