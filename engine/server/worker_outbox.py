"""A media worker's reports: queued by its media thread each tick, written to the server's pipe by a writer thread.

The media thread never waits on the pipe. A write that fails means the server is gone: so is the worker.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from multiprocessing.connection import Connection
from typing import Any


class Outbox:
    """Reports queued by the media thread and written to the pipe by a writer thread."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._batch: list[tuple[Any, ...]] = []
        self._queue: deque[list[tuple[Any, ...]]] = deque()
        self._ready = threading.Condition()
        threading.Thread(target=self._run, name="worker-writer", daemon=True).start()

    def add(self, report: tuple[Any, ...]) -> None:
        """Queue one report (media thread)."""
        self._batch.append(report)

    def flush(self) -> None:
        """Hand this tick's reports to the writer (media thread)."""
        if self._batch:
            batch, self._batch = self._batch, []
            with self._ready:
                self._queue.append(batch)
                self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                batch = self._queue.popleft()
            try:
                self.conn.send(("batch", batch))
            except OSError:
                os._exit(0)  # the server is gone: so is this worker
