"""Call attempts: an answered one becomes a live call; a failing one sends its outcome, at once or once rung out.

A route's failing outcome publishes ``callstatrpt`` with its ``ansCode``, then ``calldisconnectrpt`` (reason
``notconnected``) and ``callbillrpt`` (the attempt was started: ``000000``, as the platform answers): at once
for busy, reject and unreachable; for no answer once the phone has rung ``timeout`` seconds of media time
(default :data:`DEFAULT_RING_S`). An attempt still ringing when the engine stops is ended by :meth:`close`:
no answer, reason ``shutdown``, so its application hears of it. A phone still ringing (an endpoint with
``ring``: SIP) can be given up by the application's ``disConnect`` (:meth:`Attempts.cancel`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from engine.format import seconds_to_samples
from engine.server.endpoints import Endpoint, OutCallSpec
from engine.server.routes import Connection
from engine.server.switchboard import Switchboard
from engine.wire.call_events import (
    ANSWERED,
    FAILED,
    NO_ANSWER,
    REASON_APP,
    REASON_NOT_CONNECTED,
    REASON_SHUTDOWN,
    CallInfo,
)
from engine.wire.call_events import call_bill_report as bill
from engine.wire.call_events import call_disconnect_report as disconnect
from engine.wire.call_events import call_stat_report as stat

#: Seconds a phone rings before a "no answer" route gives up, when ``outCall`` gives no ``timeout``.
DEFAULT_RING_S = 30
#: ``publish(app_id, call_id, body)``: the delivery's.
Publish = Callable[[str, str, dict[str, Any]], None]


class Attempts:
    """Starts call attempts on ``board``; owns the attempts still ringing."""

    def __init__(self, board: Switchboard, publish: Publish, wall_clock: Callable[[], datetime]) -> None:
        self.board = board
        self.publish = publish
        self.wall_clock = wall_clock
        self._ringing: dict[str, CallInfo] = {}
        self._dialling: dict[str, tuple[CallInfo, Endpoint]] = {}  # a phone ringing (SIP), until its outcome
        self._lock = threading.Lock()

    def start(self, spec: OutCallSpec, connection: Connection, call_id: str, transferred_from: str = "") -> None:
        """Start the attempt ``connection`` describes (thread-safe, no I/O: the media thread may call it)."""
        info = CallInfo(spec.app_id, call_id, spec.caller, connection.called, self.wall_clock(), data=spec.data,
                        transferred_from=transferred_from)
        endpoint = connection.endpoint
        if endpoint is None and connection.ans_code == NO_ANSWER:
            with self._lock:
                self._ringing[call_id] = info
            self.board.after(seconds_to_samples(spec.timeout_s or DEFAULT_RING_S), lambda: self._rang_out(call_id))
            return
        if endpoint is None:
            self.not_connected(info, connection.ans_code)
            return
        ring = getattr(endpoint, "ring", None)  # sip: a phone that answers later (engine.server.sip_glue)
        if ring is not None:
            info.recording = endpoint.recording
            endpoint.info = info
            with self._lock:
                self._dialling[call_id] = (info, endpoint)
            ring(spec.timeout_s, lambda ans_code: self._answered(info, endpoint, ans_code))
            return
        self.connect(info, endpoint)

    def _answered(self, info: CallInfo, endpoint: Endpoint, ans_code: int) -> None:
        """A ringing phone's outcome (any thread): answered, a live call; else its events (none once cancelled)."""
        with self._lock:
            if self._dialling.pop(info.call_id, None) is None:
                return  # the application gave it up first (cancel)
        if ans_code != ANSWERED:
            endpoint.discard()
            self.not_connected(info, ans_code)
            return
        self.connect(info, endpoint)

    def connect(self, info: CallInfo, endpoint: Endpoint) -> None:
        """Make the answered call ``info`` live on ``endpoint`` (``callstatrpt`` answered follows).

        Also what an inbound endpoint calls once the application accepted the call (``info.direction`` "in").
        The endpoint is discarded when the call cannot be created (``108102`` when the engine is full).
        """
        info.recording = endpoint.recording
        endpoint.info = info
        try:
            self.board.create(info.app_id, endpoint, info.call_id)
        except BaseException:
            endpoint.discard()
            raise

    def cancel(self, app_id: str, call_id: str) -> bool:
        """``disConnect`` of a phone still ringing: stop it (SIP CANCEL) and publish the events; False: none."""
        with self._lock:
            entry = self._dialling.get(call_id)
            if entry is None or entry[0].app_id != app_id:
                return False
            del self._dialling[call_id]
        info, endpoint = entry
        endpoint.discard()
        self.not_connected(info, NO_ANSWER, REASON_APP)
        return True

    def ringing(self) -> int:
        """Attempts ringing now."""
        with self._lock:
            return len(self._ringing)

    def close(self) -> None:
        """End every attempt still ringing: no answer, reason ``shutdown`` (call before the delivery stops)."""
        with self._lock:
            ringing, self._ringing = list(self._ringing.values()), {}
        for info in ringing:
            self.not_connected(info, NO_ANSWER, REASON_SHUTDOWN)

    def _rang_out(self, call_id: str) -> None:
        """A "no answer" attempt has rung its time (on the media thread): its events, unless close sent them."""
        with self._lock:
            info = self._ringing.pop(call_id, None)
        if info is not None:
            self.not_connected(info, NO_ANSWER)

    def not_connected(self, info: CallInfo, ans_code: int = FAILED, reason: str = REASON_NOT_CONNECTED) -> None:
        """Publish an attempt's failure: ``callstatrpt`` ``ans_code``, ``calldisconnectrpt``, ``callbillrpt``."""
        moment = self.wall_clock()
        for body in (stat(info, ans_code, moment), disconnect(info, reason, 0, moment), bill(info, 0, moment)):
            self.publish(info.app_id, info.call_id, body)
