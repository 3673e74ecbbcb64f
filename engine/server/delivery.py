"""Events to the applications: the event log first, then the callbacks; nothing lost, nothing hangs.

Every event gets a sequence number (``seq``) and is written to the crash-safe, segmented event log
(:mod:`engine.server.event_log`) *before* it is sent. An application with a ``callbackUrl`` has an
:class:`~engine.server.sender.AppSender` that reads its events back from the log and POSTs them — several
calls at once, each call's events in order — until each is acknowledged (HTTP 200 ``{"code": "0"}``),
retrying with back-off for ever (:class:`~engine.server.sender.RetryPolicy`). Acknowledgements are kept in
an :class:`~engine.server.acks.AckBook`; segments every sender has passed are removed. A restart reads one
segment and two small files, whatever the history, and sends what was not acknowledged again.

Live calls and accepted requests are journaled (:class:`~engine.server.journal.Journal`): the HTTP side calls
:meth:`Delivery.call_started` / :meth:`Delivery.request_accepted` before it answers (``108104`` when the state
folder cannot be written); a ``multrpt`` written to the log ends a request; :meth:`Delivery.call_ended`
(from the media thread, never blocking) ends a call. At start-up, calls left open by a crash get
``multrpt`` ``error`` for each request without an outcome and ``calldisconnectrpt`` with reason ``restart``
(:mod:`engine.server.recovery`).

Threads: :meth:`Delivery.publish` and :meth:`Delivery.call_ended` only queue (any thread, never the disk or
the network); one thread (``ipcc-delivery``) runs an asyncio loop that writes the log and runs the senders.
A full disk: a clear log line, events wait in memory and are written (then sent) as soon as space returns
(:mod:`engine.server.log_writer`).
Any exception on that thread is logged and the thread carries on. A state folder that cannot be written
stops start-up at once with :class:`~engine.server.framing.StateDirError`.

Events are also kept in memory per call (at most ``per_call`` events for at most ``max_calls`` calls) for
``GET /ipcc/events``; after a restart that memory is refilled from the newest segment only.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.server.acks import AckBook
from engine.server.event_log import DEFAULT_SEGMENT_BYTES, EventLog
from engine.server.framing import make_state_dir
from engine.server.journal import Journal
from engine.server.log_writer import LogWriter, drain
from engine.server.migration import migrate_jsonl
from engine.server.poster import Poster
from engine.server.recovery import recovery_records
from engine.server.sender import DEFAULT_CONCURRENCY, DEFAULT_WINDOW, AppSender, Counters, RetryPolicy

__all__ = ["DEFAULT_CONCURRENCY", "Delivery", "RetryPolicy"]
log = logging.getLogger(__name__)
DISK_RETRY_S = 0.5


class Delivery:
    """The event log, the journal and the callback senders. ``callbacks``: appId → URL (None: log only).

    ``concurrency``: events in flight at once per application (one number for all, or by appId with
    :data:`DEFAULT_CONCURRENCY` for the others); ``window``: events per application held in
    memory; ``fsync``: see :mod:`engine.server.event_log`; ``replay`` False starts every sender at the log's end.
    """

    def __init__(self, state_dir: str | Path, callbacks: Mapping[str, str | None],
                 policy: RetryPolicy | None = None, fsync: bool = False, per_call: int = 1000,
                 max_calls: int = 10000, replay: bool = True,
                 concurrency: int | Mapping[str, int] = DEFAULT_CONCURRENCY,
                 window: int = DEFAULT_WINDOW, segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 wall_clock: Callable[[], datetime] = datetime.now) -> None:
        self.state_dir = Path(state_dir)
        make_state_dir(self.state_dir)
        self.callbacks = {app: url for app, url in callbacks.items() if url}
        self.policy = policy or RetryPolicy()
        self.per_call, self.max_calls = per_call, max_calls
        self.concurrency, self.window = concurrency, window
        self.log = EventLog(self.state_dir / "events", segment_bytes, fsync)
        self.book = AckBook(self.state_dir, fsync)
        self.journal = Journal(self.state_dir, fsync)
        migrate_jsonl(self.state_dir, self.log, self.book)
        self.counters = Counters()
        self.logged = 0
        self.writer = LogWriter(self.log)
        self._lock = threading.Lock()
        self._memory: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
        self._inbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._wake_pending = False
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._closing = False
        self._drain_s = 0.0
        self._senders: dict[str, AppSender] = {}
        for record in self.log.tail_records():
            self._remember(record["callId"], record["event"])
        self._seq = self.log.last_seq
        if not replay:
            for app in self.callbacks:
                self.book.passed(app, self.log.end, [])
        self._recover(wall_clock())

    @property
    def disk_full(self) -> bool:
        """True while the state folder refuses the event log (events wait in memory)."""
        return self.writer.disk_full

    # -- any thread ---------------------------------------------------------------------------------------

    def publish(self, app_id: str, call_id: str, body: dict[str, Any]) -> int:
        """Log and send ``body`` (an event of ``call_id``) to ``app_id``; returns its ``seq``."""
        with self._lock:
            self._seq += 1
            record = {"seq": self._seq, "appId": app_id, "callId": call_id, "event": body}
            self._remember(call_id, body)
            self._post(record)  # under the lock: the log gets the events in ``seq`` order, whatever the threads
        return record["seq"]

    def call_started(self, app_id: str, call_id: str) -> None:
        """Journal a new call (before answering); ``StateWriteError`` (``108104``) when it cannot be."""
        self.journal.call_started(app_id, call_id)

    def request_accepted(self, app_id: str, call_id: str) -> None:
        """Journal an accepted request (before ``000000``); ``StateWriteError`` (``108104``) when it cannot be."""
        self.journal.request_accepted(call_id)

    def call_ended(self, call_id: str) -> None:
        """``call_id`` ended (its events already published): journaled by the delivery thread, after them."""
        self._post({"end": call_id})

    def events(self, call_id: str) -> list[dict[str, Any]] | None:
        """The events kept for ``call_id`` in order, or None when none are known."""
        with self._lock:
            kept = self._memory.get(call_id)
            return list(kept) if kept is not None else None

    def stats(self) -> dict[str, Any]:
        """Counters: logged, delivered, attempts, failures, backlog (in memory, unacknowledged), per application."""
        apps = {app: {"backlog": s.backlog, "caught_up": s.position >= self.log.end}
                for app, s in list(self._senders.items())}
        with self._lock:
            return {"logged": self.logged, "delivered": self.counters.delivered,
                    "attempts": self.counters.attempts, "failures": self.counters.failures,
                    "errors": self.counters.errors, "backlog": sum(a["backlog"] for a in apps.values()),
                    "calls_kept": len(self._memory), "disk_full": self.disk_full, "applications": apps}

    def backlogs(self) -> dict[str, int]:
        """Events held in memory and not yet acknowledged, per application (those with any)."""
        return {app_id: sender.backlog for app_id, sender in list(self._senders.items()) if sender.backlog}

    def start(self) -> None:
        """Start the delivery thread (returns once it runs; ``RuntimeError`` if it could not start)."""
        self._thread = threading.Thread(target=self._run, name="ipcc-delivery", daemon=True)
        self._thread.start()
        while not self._ready.wait(0.1):
            if not self._thread.is_alive():
                raise RuntimeError("the delivery thread did not start (see the log)")

    def close(self, drain_s: float = 2.0) -> None:
        """Write what is queued, give senders up to ``drain_s`` to finish, then stop.

        Events not acknowledged by then stay in the log and are sent again after a restart.
        """
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or self._thread is None:
            return
        self._closing = True
        self._drain_s = drain_s
        loop.call_soon_threadsafe(wake.set)
        self._thread.join(drain_s + self.policy.timeout_s + 5)

    # -- internals --------------------------------------------------------------------------------------------

    def _post(self, item: dict[str, Any]) -> None:
        self._inbox.put(item)
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not self._wake_pending:
            # one wake-up per batch: the delivery loop clears the flag before it drains
            self._wake_pending = True
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop closed: the item stays in the inbox
                pass

    def _remember(self, call_id: str, body: dict[str, Any]) -> None:
        kept = self._memory.get(call_id)
        if kept is None:
            kept = self._memory[call_id] = deque(maxlen=self.per_call)
            while len(self._memory) > self.max_calls:
                self._memory.popitem(last=False)
        else:
            self._memory.move_to_end(call_id)
        kept.append(body)

    def _recover(self, moment: datetime) -> None:
        """Outcomes for what a crash left open (:mod:`engine.server.recovery`), logged before anything new."""
        records = recovery_records(self.journal.open_calls(), self._seq, moment)
        for record in records:
            self._remember(record["callId"], record["event"])
        if records:
            self._seq = records[-1]["seq"]
            self.log.append(records)
            self.log.sync()
        self.journal.reset()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException:
            log.critical("the delivery thread stopped", exc_info=True)
            raise

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        poster = Poster()
        tasks = []
        for app, url in self.callbacks.items():
            limit = (self.concurrency if isinstance(self.concurrency, int)
                     else self.concurrency.get(app, DEFAULT_CONCURRENCY))
            sender = self._senders[app] = AppSender(app, url, self.log, self.book, poster, self.policy,
                                                    self.counters, limit, self.window)
            tasks.append(asyncio.create_task(sender.run()))
        self._ready.set()
        pending: list[dict[str, Any]] = []
        try:
            while True:
                self._wake_pending = False
                self._wake.clear()
                pending.extend(drain(self._inbox))
                try:
                    pending = self._write(pending)
                    self._tidy()
                except Exception:
                    log.exception("event log pass failed; carrying on")
                if self._closing and not pending and self._inbox.empty():
                    break
                if pending:  # the disk is full: try again soon
                    await asyncio.sleep(DISK_RETRY_S)
                elif self._inbox.empty():
                    await self._wake.wait()
            await self._wait_idle()
        finally:
            for sender in self._senders.values():
                await sender.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await poster.close()
            self.book.close()
            self.log.close()
            self.journal.close()

    def _write(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Log the events of ``items`` and journal the ends; returns what could not be written yet."""
        if not items:
            return items
        written = self.writer.write(items)
        if written is None:  # the disk refused: everything waits in memory
            return items
        items, records = written
        for item in items:
            if "seq" not in item:
                self.journal.call_ended(item["end"])
            elif item["event"].get("event") == "multrpt":
                self.journal.request_ended(item["callId"])
        with self._lock:
            self.logged += len(records)
        for app in {record["appId"] for record in records}:
            sender = self._senders.get(app)
            if sender is not None:
                sender.wake.set()
        return []

    def _tidy(self) -> None:
        """Remove the segments every sender has passed."""
        if self._senders:
            oldest = min(self.book.position(app) or (0, 0) for app in self._senders)
        else:
            oldest = self.log.end
        self.log.remove_before(oldest)

    async def _wait_idle(self) -> None:
        for sender in self._senders.values():  # one with nothing in the last writes has not read to the end yet
            sender.wake.set()
        deadline = asyncio.get_running_loop().time() + self._drain_s
        while any(not s.idle for s in self._senders.values()) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

