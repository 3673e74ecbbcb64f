"""The calls page's book: every server call as it happened, live and lately finished, per application.

A :class:`CallBook` watches the media thread (:class:`~engine.server.call_watcher.CallWatcher`): when a call starts
ticking it is entered with its endpoint's kind (``wav``, ``sip``, ``browser``, ``null``, ...); each event of its
player is noted with its sample (from the call's start), and each request with the sample it started at, on its
first event; when the call ends its length and its recording (the path inside the recordings folder the endpoint
wrote, "" when none) are noted. A SIP call keeps its RTP session while live (its live figures are asked of the media
that carries it: :mod:`engine.server.rtp_queries`) and its session's final stats once ended. Nothing is done per
frame: a call's picture takes its audio from its recording.

Requests are kept without their audio (:func:`light_program`: each prompt a zero-stride array of its length), at
most :data:`MAX_REQUESTS` and :data:`MAX_EVENTS` per call; the last :data:`KEEP_FINISHED` finished calls of each
application are kept. A request that failed before any event of its own (``multrpt`` ``error`` from the loop)
is not drawn: its player is gone when the event comes.

Threads: the media thread writes, the server's event loop reads (under :attr:`CallBook.lock`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from engine.core.reports import PlayerEvent
from engine.core.timeline import Program
from engine.format import SAMPLE_DTYPE
from engine.media.call import Call
from engine.net.rtp_session import RtpSession
from engine.server.call_watcher import CallWatcher
from engine.wire.events import event_body

#: Finished calls kept per application (their trace, for the list and the picture): 20.
KEEP_FINISHED = 20
#: Requests and events traced per call at most (beyond, counted in ``cut``): 200 and 1000.
MAX_REQUESTS = 200
MAX_EVENTS = 1000
#: Event bodies in the book are stamped with this (the timestamp is dropped: the call's sample says when).
_EPOCH = datetime(2000, 1, 1)


def light_program(program: Program) -> Program:
    """``program`` without its audio: each prompt a read-only zero-stride array of the same length (no memory)."""
    return Program(program.request, tuple(np.broadcast_to(SAMPLE_DTYPE(0), (len(p),)) for p in program.prompts))


def trace_body(event: PlayerEvent, app_id: str, call_id: str) -> dict[str, Any]:
    """The contract's body of ``event`` without its ``timeStamp`` (the call's sample says when)."""
    body = event_body(event, app_id, call_id, _EPOCH)
    del body["timeStamp"]
    return body


@dataclass
class CallRecord:
    """One call of the book.

    ``kind``: the endpoint's scheme; ``called``: what the call events name as called ("" if none);
    ``requests``: ``(start_sample, light program)``; ``events``: ``(at_sample, player event)`` (their bodies:
    :meth:`bodies`, made when asked for, never on the media thread); ``samples``: the call's
    length once ended; ``recording``: inside the recordings folder ("" none); ``cut``: requests and events not
    kept; ``png``: the picture, once drawn; ``session``: a SIP call's RTP session while live (None: no RTP);
    ``rtp``: its session's final stats once ended (None: no RTP; empty: the media gave none).
    """

    app_id: str
    call_id: str
    kind: str
    called: str = ""
    requests: list[tuple[int, Program]] = field(default_factory=list)
    events: list[tuple[int, PlayerEvent]] = field(default_factory=list)
    samples: int = 0
    recording: str = ""
    ended: bool = False
    cut: int = 0
    png: bytes | None = None
    session: RtpSession | None = None
    rtp: dict[str, Any] | None = None
    _request_key: tuple[int, int] = (-1, 0)

    def note(self, call: Call, event: PlayerEvent, at_sample: int) -> None:
        """(Media thread.) One event of the call's player; the request it belongs to, on its first event."""
        player = call.player
        if player is not None and (call.request_start_sample, id(player.program)) != self._request_key:
            self._request_key = (call.request_start_sample, id(player.program))
            if len(self.requests) < MAX_REQUESTS:
                self.requests.append((call.request_start_sample, light_program(player.program)))
            else:
                self.cut += 1
        if len(self.events) < MAX_EVENTS:
            self.events.append((at_sample, event))
        else:
            self.cut += 1

    def bodies(self) -> list[tuple[int, dict[str, Any]]]:
        """The events noted, as ``(at_sample, body)`` with the contract's body (:func:`trace_body`)."""
        return [(at, trace_body(event, self.app_id, self.call_id)) for at, event in self.events]


class CallBook(CallWatcher):
    """Every call of one engine: the live ones by id, the last :data:`KEEP_FINISHED` finished ones per application."""

    def __init__(self, keep_finished: int = KEEP_FINISHED) -> None:
        self.keep_finished = keep_finished
        self.lock = threading.Lock()
        self.live: dict[str, CallRecord] = {}
        self.finished: dict[str, OrderedDict[str, CallRecord]] = {}

    def call_started(self, call: Call, endpoint: Any) -> None:
        """(Media thread.) Enter ``call`` and note its player's events from now on."""
        info = getattr(endpoint, "info", None)
        record = CallRecord(call.app_id, call.call_id, str(endpoint.description).partition(":")[0],
                            called=getattr(info, "called", "") or "")
        caller = getattr(endpoint, "caller", None)
        record.session = caller if isinstance(caller, RtpSession) else None
        forward = call.on_event

        def on_event(c: Call, event: PlayerEvent, at_sample: int) -> None:
            forward(c, event, at_sample)
            record.note(c, event, at_sample)

        call.on_event = on_event
        with self.lock:
            self.live[call.call_id] = record

    def call_ended(self, call: Call, endpoint: Any) -> None:
        """(Media thread.) ``call`` ended: its length and recording; it moves to the finished calls."""
        with self.lock:
            record = self.live.pop(call.call_id, None)
            if record is None:
                return
            record.samples = call.position_samples
            record.recording = str(endpoint.recording or "")
            record.ended = True
            if record.session is not None:  # closed by now (a worker's call: its worker's figures)
                record.rtp, record.session = dict(record.session.final_stats), None
            kept = self.finished.setdefault(call.app_id, OrderedDict())
            kept[call.call_id] = record
            while len(kept) > self.keep_finished:
                kept.popitem(last=False)

    def kind_of(self, call_id: str) -> str:
        """The endpoint kind of the live call ``call_id`` ("" when it is not in the book)."""
        record = self.live.get(call_id)
        return record.kind if record is not None else ""

    def sessions(self, call_ids: list[str]) -> dict[str, RtpSession]:
        """The RTP sessions of those of the live calls ``call_ids`` that have one (SIP calls)."""
        with self.lock:
            records = [self.live.get(call_id) for call_id in call_ids]
        return {r.call_id: r.session for r in records if r is not None and r.session is not None}

    def finished_calls(self, app_id: str) -> list[CallRecord]:
        """The finished calls of ``app_id``, the newest first."""
        with self.lock:
            return list(reversed(self.finished.get(app_id, {}).values()))

    def finished_call(self, app_id: str, call_id: str) -> CallRecord | None:
        """The finished call ``call_id`` of ``app_id`` (None: unknown, live, forgotten, or another application's)."""
        with self.lock:
            return self.finished.get(app_id, {}).get(call_id)
