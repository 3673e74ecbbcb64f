"""One application's callback sender: several events at once, each call's events strictly in order.

A sender reads its application's events from the event log at its own position, into a window of at most
``window`` events (default :data:`DEFAULT_WINDOW`: the in-memory backlog is bounded, the rest stays in the
log). Per call, events form a queue whose head is in flight or ready; at most ``concurrency`` calls (default
:data:`DEFAULT_CONCURRENCY`) have an event in flight at once, so one call whose receiver hangs or fails holds
one slot and delays only its own later events. Each attempt is bounded by ``RetryPolicy.timeout_s``; a failed
attempt is retried after the policy's back-off, for ever. Acknowledgements go to the
:class:`~engine.server.acks.AckBook`; the window's oldest events are let go once acknowledged.

Any exception in an attempt is logged and counted as a failed attempt: the sender carries on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from engine.server.acks import AckBook
from engine.server.event_log import EventLog, Position
from engine.server.poster import Answer, Poster

log = logging.getLogger(__name__)
DEFAULT_CONCURRENCY = 16
DEFAULT_WINDOW = 2000


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


def acknowledged(answer: Answer) -> bool:
    """True when the receiver answered HTTP 200 with ``{"code": "0"}`` (``0`` as a number too)."""
    if answer.status != 200 or answer.truncated:
        return False
    try:
        body = json.loads(answer.body)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("code") in ("0", 0)


def encode_body(event: dict[str, Any]) -> bytes:
    """``event`` as UTF-8 JSON; a lone surrogate (not encodable in UTF-8) becomes U+FFFD, never an error."""
    text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


@dataclass
class _Entry:
    seq: int
    call_id: str
    position: Position
    body: bytes
    done: bool = False


@dataclass
class Counters:
    """What every sender adds to (shared, delivery thread only)."""

    delivered: int = 0
    attempts: int = 0
    failures: int = 0
    errors: int = 0  # unexpected exceptions, logged


@dataclass
class AppSender:
    """Delivers ``app_id``'s events from ``log`` to ``url``."""

    app_id: str
    url: str
    log: EventLog
    book: AckBook
    poster: Poster
    policy: RetryPolicy
    counters: Counters
    concurrency: int = DEFAULT_CONCURRENCY
    window: int = DEFAULT_WINDOW
    position: Position = (0, 0)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    _entries: deque[_Entry] = field(default_factory=deque)
    _calls: dict[str, deque[_Entry]] = field(default_factory=dict)
    _ready: deque[str] = field(default_factory=deque)
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.position = self.book.position(self.app_id) or (0, 0)

    backlog: int = 0  # events read from the log and not yet acknowledged

    @property
    def idle(self) -> bool:
        """Nothing in memory and nothing left to read."""
        return not self._entries and self.position >= self.log.end

    async def run(self) -> None:
        """Read, send, repeat; never returns (cancel it)."""
        while True:
            self.wake.clear()
            try:
                self._fill()
                self._launch()
                self.book.flush()
            except Exception:
                log.exception("event sender of %s failed; carrying on", self.app_id)
                self.counters.errors += 1
                await asyncio.sleep(self.policy.initial_s)
                continue
            await self.wake.wait()

    async def stop(self) -> None:
        """Cancel the attempts in flight (their events stay unacknowledged in the log)."""
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _fill(self) -> None:
        skip = self.book.acked.get(self.app_id, set())
        while len(self._entries) < self.window:
            records, self.position = self.log.read(self.position, self.window - len(self._entries))
            if not records:
                return
            for position, record in records:
                if record.get("appId") != self.app_id:
                    continue
                if record["seq"] in skip:  # acknowledged before a restart
                    skip.discard(record["seq"])
                    continue
                entry = _Entry(record["seq"], str(record.get("callId")), position, encode_body(record["event"]))
                self._entries.append(entry)
                self.backlog += 1
                queue = self._calls.get(entry.call_id)
                if queue is None:
                    queue = self._calls[entry.call_id] = deque()
                    self._ready.append(entry.call_id)
                queue.append(entry)
        self._let_go()

    def _launch(self) -> None:
        while self._ready and len(self._in_flight) < self.concurrency:
            entry = self._calls[self._ready.popleft()][0]
            task = asyncio.get_running_loop().create_task(self._deliver(entry))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _deliver(self, entry: _Entry) -> None:
        failures = 0
        while not await self._attempt(entry):
            failures += 1
            await asyncio.sleep(self.policy.delay_s(failures))
        entry.done = True
        self.backlog -= 1
        self.counters.delivered += 1
        self.book.ack(self.app_id, entry.seq)
        queue = self._calls[entry.call_id]
        queue.popleft()
        if queue:
            self._ready.append(entry.call_id)
        else:
            del self._calls[entry.call_id]
        self._let_go()
        self._in_flight.discard(asyncio.current_task())  # now, not in a done callback after the wake-up
        self.wake.set()

    async def _attempt(self, entry: _Entry) -> bool:
        self.counters.attempts += 1
        try:
            async with asyncio.timeout(self.policy.timeout_s):  # no extra task, unlike wait_for
                answer = await self.poster.post(self.url, entry.body)
            if acknowledged(answer):
                return True
            reason = f"answered {answer.status} {answer.body[:80]!r}{' (cut off)' if answer.truncated else ''}"
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            log.exception("event %d to %s: unexpected failure", entry.seq, self.app_id)
            self.counters.errors += 1
            reason = type(exc).__name__
        self.counters.failures += 1
        log.warning("event %d of %s not acknowledged (%s); retrying", entry.seq, self.app_id, reason)
        return False

    def _let_go(self) -> None:
        """Drop acknowledged events from the window's front; move the acknowledged position on."""
        passed = []
        while self._entries and self._entries[0].done:
            passed.append(self._entries.popleft().seq)
        if passed or not self._entries:
            self.book.passed(self.app_id, self._entries[0].position if self._entries else self.position, passed)
