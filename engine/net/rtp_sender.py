"""The RTP sender: a thread that sends each tick's packets at their deadlines, group by group.

The media thread builds tick ``k``'s packets (:meth:`~engine.net.rtp_hub.RtpHub.prepare`, right after the media
loop's tick) ``lead_periods`` periods (default 1) ahead of their deadline; the sender sends them at
``origin + k * period`` (no drift),
group ``g`` of the hub's ``send_groups`` a further ``g * period / groups`` later. So at a deadline only the
``sendmmsg`` of one group remains to be done, however long the media loop takes (up to a period), and the
kernel's cost of the sends (on loopback it also delivers every packet) is spread over the period. The price:
the audio leaves ``lead_periods`` periods (20 ms each) later than it would when sent at the end of its tick; a
lead of 2 lets a tick overrun its period now and then (a busy machine) without a late packet.

``origin`` is the lead after the start of the first tick. A frame built late, or one the sender reaches
late, is sent at once (its lateness says so: the sender catches up, never skips). When a frame is handed over
more than ``max_behind_s`` after its deadline (the media loop stopped, its pacer re-anchored) the deadlines
are re-anchored to one period from then (``resyncs``). Lateness is each group's send completion minus its
deadline, kept for the last ``window`` groups sent (default one minute of ticks in 4 groups).
Time comes from the injected clock.

``realtime_priority`` (default 0: none) asks for the sender thread to be scheduled ``SCHED_FIFO`` at that
priority (1-99; needs CAP_SYS_NICE, else logged and ignored), so that on a busy machine it runs at its
deadlines, ahead of ordinary processes; its work is bounded (one ``sendmmsg`` per group per tick).

The sender thread must get the interpreter soon after it wakes: :meth:`RtpSender.start` lowers the
interpreter's switch interval (process-wide) to at most :data:`SWITCH_INTERVAL_S`. And it must get the core:
on Linux 6.12 and later the thread asks the fair scheduler for a short time slice (:data:`SLICE_S`, a latency
hint of ``sched_setattr``: same policy, same weight, no privilege), so that when it wakes at a deadline it
preempts the media thread at once instead of after the media thread's slice (milliseconds); elsewhere nothing
changes.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Callable

import numpy as np

from engine.media.clock import Clock
from engine.media.lateness import LatenessWindow
from engine.media.pacer import Pacer
from engine.net.rtp_hub import RtpHub
from engine.net.rtp_outbound import FRAMES, PacketFrame

log = logging.getLogger(__name__)
PERIOD_S = 0.02
SWITCH_INTERVAL_S = 0.0005  # the longest the media thread keeps the interpreter from a woken sender (s)
DEFAULT_WINDOW = 12000
MAX_LEAD_PERIODS = FRAMES - 2  # frames being built, sent and waiting must fit in the hub's ring
#: The live design (the server's hub, each media worker's, and what ``benchmarks/bench_rtp.py`` measures): the
#: calls' packets in 8 send groups over the period, built 2 periods (40 ms) ahead of their deadlines.
LIVE_SEND_GROUPS = 8
LIVE_LEAD_PERIODS = 2
SLICE_S = 0.0001  # the sender thread's time slice asked of the fair scheduler (s): the shortest Linux grants
_SYS_SCHED_SETATTR = 314  # x86_64


class _SchedAttr(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("policy", ctypes.c_uint32), ("flags", ctypes.c_uint64),
                ("nice", ctypes.c_int32), ("priority", ctypes.c_uint32), ("runtime_ns", ctypes.c_uint64),
                ("deadline_ns", ctypes.c_uint64), ("period_ns", ctypes.c_uint64), ("util_min", ctypes.c_uint32),
                ("util_max", ctypes.c_uint32)]


def short_slice(seconds: float) -> bool:
    """Ask for a fair-scheduler time slice of ``seconds`` for the calling thread (its policy and nice kept).

    True when granted (Linux 6.12+ on x86_64); False elsewhere, nothing changed.
    """
    if not sys.platform.startswith("linux") or os.uname().machine != "x86_64":
        return False
    attr = _SchedAttr(size=ctypes.sizeof(_SchedAttr), policy=os.SCHED_OTHER,
                      nice=os.getpriority(os.PRIO_PROCESS, 0), runtime_ns=int(seconds * 1e9))
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(_SYS_SCHED_SETATTR, 0, ctypes.byref(attr), 0) == 0


class RtpSender:
    """Sends ``hub``'s frames at deadlines on ``clock``: every ``period_s`` (default 20 ms), in the hub's groups."""

    def __init__(self, hub: RtpHub, clock: Clock, period_s: float = PERIOD_S, window: int = DEFAULT_WINDOW,
                 max_behind_s: float = 1.0, realtime_priority: int = 0, lead_periods: int = 1) -> None:
        if not 0 <= realtime_priority <= 99:
            raise ValueError(f"realtime_priority must be 0 (none) or 1-99, got {realtime_priority}")
        if not 1 <= lead_periods <= MAX_LEAD_PERIODS:
            raise ValueError(f"lead_periods must be 1-{MAX_LEAD_PERIODS}, got {lead_periods}")
        self.lead_s = lead_periods * period_s
        self.realtime_priority = realtime_priority
        #: True once the thread got SCHED_FIFO (False: ordinary scheduling).
        self.realtime = False
        #: True once the thread got its short time slice (:func:`short_slice`).
        self.short_slice = False
        self.hub, self.clock, self.period_s = hub, clock, period_s
        self.spacing_s = period_s / hub.outbound.groups
        self.max_behind_s = max_behind_s
        self.frames = 0  # frames submitted
        self.sent_frames = 0
        self.resyncs = 0
        self._origin: float | None = None
        self._queue: deque[tuple[int, PacketFrame]] = deque()
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lateness = LatenessWindow(window)

    def driving(self, tick: Callable[[], None]) -> Callable[[], None]:
        """A media tick carrying the hub: receive, then ``tick`` (the media loop), then build and hand over.

        A failure of the hub is logged; the tick goes on.
        """
        hub = self.hub

        def rtp_tick() -> None:
            if self._origin is None:
                self._origin = self.clock.now() + self.lead_s - self.frames * self.period_s
                self.start()
            try:
                hub.receive()
            except Exception:  # no caller audio this tick rather than no media thread
                log.exception("RTP receive failed")
            try:
                tick()
            finally:
                try:
                    hub.prepare()
                    self.submit(hub.take_prepared())
                except Exception:
                    log.exception("RTP send failed")

        return rtp_tick

    def start(self) -> None:
        """Start the sender thread (once)."""
        if self._thread is None:
            sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
            self._thread = threading.Thread(target=self._run, name="rtp-sender", daemon=True)
            self._thread.start()

    def submit(self, frame: PacketFrame | None) -> None:
        """The next tick's packets (None: nothing to send, the tick still counts)."""
        index = self.frames
        self.frames += 1
        if frame is None:
            return
        if self._stop.is_set():  # stopped (the hub is closing): nothing is sent any more, the frame is free again
            frame.free.set()
            return
        assert self._origin is not None
        now = self.clock.now()
        if now - (self._origin + index * self.period_s) > self.max_behind_s:
            self.resyncs += 1  # due the lead from now, as the first frame was
            self._origin = now + self.lead_s - index * self.period_s
        with self._ready:
            self._queue.append((index, frame))
            self._ready.notify()

    def stop(self) -> None:
        """Stop the thread after the frame in progress (the frames still queued are released unsent)."""
        self._stop.set()
        with self._ready:
            self._ready.notify()
        if self._thread is not None:
            self._thread.join(5)
        for _, frame in self._queue:
            frame.free.set()

    def _next(self) -> tuple[int, PacketFrame] | None:
        with self._ready:
            while not self._queue and not self._stop.is_set():
                self._ready.wait(0.5)
            return None if self._stop.is_set() else self._queue.popleft()

    def _run(self) -> None:
        self.short_slice = short_slice(SLICE_S)
        if self.realtime_priority:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.realtime_priority))  # this thread
                self.realtime = True
            except (OSError, AttributeError) as exc:
                log.warning("RTP sender: no real-time scheduling (%s); ordinary priority", exc)
        while (item := self._next()) is not None:
            index, frame = item
            try:
                self._send(index, frame)
            except Exception:
                log.exception("RTP sender: frame %d failed", index)
            finally:
                frame.free.set()

    def _send(self, index: int, frame: PacketFrame) -> None:
        clock, hub = self.clock, self.hub
        assert self._origin is not None
        due = self._origin + index * self.period_s
        for g in range(hub.outbound.groups):
            if not frame.group(g)[1]:
                continue
            at = due + g * self.spacing_s
            clock.sleep_until(at)
            hub.send_group(frame, g)
            self._lateness.record(clock.now() - at)
        self.sent_frames += 1

    def lateness(self) -> np.ndarray:
        """Each recent group's send lateness (s), oldest first: at most ``window`` of them."""
        return self._lateness.recent()

    def clear_lateness(self) -> None:
        """Forget the lateness recorded so far (after a warm-up)."""
        self._lateness.clear()


def carry(hub: RtpHub, pacer: Pacer, lead_periods: int = LIVE_LEAD_PERIODS) -> RtpSender:
    """Make ``pacer``'s tick carry ``hub`` through a sender on the pacer's clock; returns the sender.

    ``lead_periods``: how far ahead of their deadlines the packets are built (default :data:`LIVE_LEAD_PERIODS`).

    The live server's wiring (``engine.server.sip_glue``): ``sender = carry(hub, board.pacer)``;
    ``sender.stop()`` when the hub closes.
    """
    sender = RtpSender(hub, pacer.clock, pacer.period_s, lead_periods=lead_periods)
    pacer.tick = sender.driving(pacer.tick)
    return sender
