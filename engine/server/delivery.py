"""Events to the applications: an event log first, then the callback, retried until it is acknowledged.

Every event gets a sequence number (``seq``) and is appended — one JSON line, flushed, optionally fsynced —
to ``<state dir>/events.jsonl`` *before* it is sent, as ``{"seq", "appId", "callId", "event"}``. An
application with a ``callbackUrl`` gets each event POSTed as JSON; only an HTTP 200 answer whose body is
``{"code": "0"}`` (``0`` as a number is accepted too) acknowledges it. Anything else — another answer, a
connection error, no complete answer within ``timeout_s`` — is retried after ``initial_s``, doubling up to
``cap_s`` (:class:`RetryPolicy`), for ever. Acknowledged events are appended as ``{"seq"}`` to
``delivered.jsonl``; at start-up the log is read back (``replay``): events of a live application not yet
acknowledged are sent again, and the per-call memory is refilled. So a receiver that is down, or a restart,
loses nothing; an event may arrive twice only if the engine stopped between the answer and its mark.

Ordering: each application has one sender task; its events go out strictly one after another in ``seq``
order, so a slow or hanging receiver delays only its own application. All sending happens on one thread
(``ipcc-delivery``) running an asyncio loop with one ``httpx.AsyncClient``; :meth:`Delivery.publish` is
thread-safe and never blocks on the network or the disk.

Events are also kept in memory, per call (at most ``per_call`` events for at most ``max_calls`` calls, the
least recently active dropped first), for ``GET /ipcc/events?callId=...``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Back-off between attempts: ``initial_s`` (0.5), ×``factor`` (2) up to ``cap_s`` (30).

    Each attempt gets ``timeout_s`` (5) seconds in all for a complete answer.
    """

    initial_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 30.0
    timeout_s: float = 5.0

    def delay_s(self, failures: int) -> float:
        """The wait after the ``failures``-th failed attempt in a row (1-based)."""
        return min(self.cap_s, self.initial_s * self.factor ** (failures - 1))


def acknowledged(response: httpx.Response) -> bool:
    """True when the receiver answered HTTP 200 with ``{"code": "0"}``."""
    if response.status_code != 200:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("code") in ("0", 0)


class Delivery:
    """The event log and the callback senders. ``callbacks``: appId → callback URL (None: log only)."""

    def __init__(self, state_dir: str | Path, callbacks: Mapping[str, str | None],
                 policy: RetryPolicy | None = None, fsync: bool = False, per_call: int = 1000,
                 max_calls: int = 10000, replay: bool = True) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.state_dir / "events.jsonl"
        self.delivered_path = self.state_dir / "delivered.jsonl"
        self.callbacks = dict(callbacks)
        self.policy = policy or RetryPolicy()
        self.fsync = fsync
        self.per_call = per_call
        self.max_calls = max_calls
        self.logged = self.delivered = self.attempts = self.failures = 0
        self._lock = threading.Lock()
        self._memory: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
        self._inbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._closing = False
        self._wake_pending = False  # a wake-up is scheduled on the delivery loop and has not drained yet
        self._drain_s = 0.0
        self._backlog: dict[str, int] = {}
        self._seq = self._replay() if replay else self._last_seq()

    # -- any thread ---------------------------------------------------------------------------------------

    def publish(self, app_id: str, call_id: str, body: dict[str, Any]) -> int:
        """Log and send ``body`` (an event of ``call_id``) to ``app_id``; returns its ``seq``."""
        with self._lock:
            self._seq += 1
            record = {"seq": self._seq, "appId": app_id, "callId": call_id, "event": body}
            self._remember(call_id, body)
        self._inbox.put(record)
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not self._wake_pending:
            # one wake-up per batch, not per event: the delivery loop clears the flag before it drains, so
            # a record put while the flag is set is drained by the pass the pending wake-up starts
            self._wake_pending = True
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop closed: the record stays in the inbox (and is lost with it)
                pass
        return record["seq"]

    def events(self, call_id: str) -> list[dict[str, Any]] | None:
        """The events kept for ``call_id`` in order, or None when none are known."""
        with self._lock:
            kept = self._memory.get(call_id)
            return list(kept) if kept is not None else None

    def stats(self) -> dict[str, int]:
        """Counters: events logged, delivered, attempts, failed attempts, backlog (not yet acknowledged)."""
        with self._lock:
            return {"logged": self.logged, "delivered": self.delivered, "attempts": self.attempts,
                    "failures": self.failures, "backlog": sum(self._backlog.values()),
                    "calls_kept": len(self._memory)}

    def backlogs(self) -> dict[str, int]:
        """Events not yet acknowledged, per application (those with any)."""
        with self._lock:
            return {app_id: n for app_id, n in self._backlog.items() if n}

    def start(self) -> None:
        """Start the delivery thread (returns once it runs)."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="ipcc-delivery",
                                        daemon=True)
        self._thread.start()
        self._ready.wait()

    def close(self, drain_s: float = 2.0) -> None:
        """Log what is still in the inbox, give senders up to ``drain_s`` to finish, then stop.

        Events not acknowledged by then stay in the log and are sent again after a restart (``replay``).
        """
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or self._thread is None:
            return
        self._closing = True
        self._drain_s = drain_s
        loop.call_soon_threadsafe(wake.set)
        self._thread.join(drain_s + self.policy.timeout_s + 5)

    # -- internals --------------------------------------------------------------------------------------------

    def _remember(self, call_id: str, body: dict[str, Any]) -> None:
        kept = self._memory.get(call_id)
        if kept is None:
            kept = self._memory[call_id] = deque(maxlen=self.per_call)
            while len(self._memory) > self.max_calls:
                self._memory.popitem(last=False)
        else:
            self._memory.move_to_end(call_id)
        kept.append(body)

    def _last_seq(self) -> int:
        return max((record["seq"] for record in _read_lines(self.log_path)), default=0)

    def _replay(self) -> int:
        """Refill memory from the log; queue the unacknowledged events of applications with a callback."""
        done = {record.get("seq") for record in _read_lines(self.delivered_path)}
        last = 0
        for record in _read_lines(self.log_path):
            last = max(last, record["seq"])
            self._remember(record["callId"], record["event"])
            if record["seq"] not in done and self.callbacks.get(record["appId"]):
                record["replayed"] = True
                self._inbox.put(record)
        return last

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        senders: list[asyncio.Task[None]] = []
        log_file = self.log_path.open("a", encoding="utf-8")
        delivered_file = self.delivered_path.open("a", encoding="utf-8")
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
        async with httpx.AsyncClient(timeout=self.policy.timeout_s, limits=limits) as client:
            self._ready.set()
            try:
                while True:
                    self._wake_pending = False
                    self._wake.clear()
                    batch = _drain(self._inbox)
                    if batch:
                        new = [r for r in batch if not r.pop("replayed", False)]
                        for record in new:
                            log_file.write(json.dumps(record, ensure_ascii=False) + "\n")
                        if new:
                            log_file.flush()
                            if self.fsync:
                                os.fsync(log_file.fileno())
                        with self._lock:
                            self.logged += len(new)
                        for record in batch:
                            url = self.callbacks.get(record["appId"])
                            if not url:
                                continue
                            app_queue = queues.get(record["appId"])
                            if app_queue is None:
                                app_queue = queues[record["appId"]] = asyncio.Queue()
                                senders.append(asyncio.create_task(
                                    self._sender(client, url, app_queue, delivered_file)))
                            with self._lock:
                                self._backlog[record["appId"]] = self._backlog.get(record["appId"], 0) + 1
                            app_queue.put_nowait(record)
                    if self._closing and self._inbox.empty():
                        break
                    if self._inbox.empty():
                        await self._wake.wait()
                await _wait_drained(queues, self._drain_s)
            finally:
                for task in senders:
                    task.cancel()
                await asyncio.gather(*senders, return_exceptions=True)
                log_file.close()
                delivered_file.close()

    async def _sender(self, client: httpx.AsyncClient, url: str, app_queue: asyncio.Queue[dict[str, Any]],
                      delivered_file: Any) -> None:
        while True:
            record = await app_queue.get()
            failures = 0
            while not await self._attempt(client, url, record):
                failures += 1
                await asyncio.sleep(self.policy.delay_s(failures))
            delivered_file.write(json.dumps({"seq": record["seq"]}) + "\n")
            delivered_file.flush()
            with self._lock:
                self.delivered += 1
                self._backlog[record["appId"]] -= 1
            app_queue.task_done()

    async def _attempt(self, client: httpx.AsyncClient, url: str, record: dict[str, Any]) -> bool:
        with self._lock:
            self.attempts += 1
        try:
            response = await asyncio.wait_for(client.post(url, json=record["event"]), self.policy.timeout_s)
            if acknowledged(response):
                return True
            reason = f"answered {response.status_code} {response.text[:80]!r}"
        except (TimeoutError, httpx.HTTPError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.failures += 1
        log.warning("event %d to %s not acknowledged (%s); retrying", record["seq"], url, reason)
        return False


def _drain(inbox: queue.SimpleQueue[dict[str, Any]]) -> list[dict[str, Any]]:
    batch = []
    while True:
        try:
            batch.append(inbox.get_nowait())
        except queue.Empty:
            return batch


async def _wait_drained(queues: Mapping[str, asyncio.Queue[dict[str, Any]]], timeout_s: float) -> None:
    if queues:
        joins = [asyncio.create_task(q.join()) for q in queues.values()]
        await asyncio.wait(joins, timeout=timeout_s)
        for task in joins:
            task.cancel()


def _read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; a torn last line (a crash mid-write) is skipped."""
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as file:
        for line in file:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("seq"), int):
                records.append(record)
    return records
